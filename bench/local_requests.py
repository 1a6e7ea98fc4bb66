"""The local stack's CPU per request, in one process with nothing else running: the stack is
brought up in this process (handlers in threads), then it times DynamoDB ``UpdateItem`` calls
made as the send function's role and ``ValidateFunction`` invocations made as the send
machine's role, both through the in-process path every call of the stack takes.

    python -m bench.local_requests [--calls 1500] [--rounds 3]

Each round measures with the stack's request shortcuts on (moto's handler without Flask,
own calls without SigV4 signatures) and then off, so the two are compared at the same moment
of a machine whose speed drifts. CPU time of the whole process (``time.process_time``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"


@contextmanager
def shortcuts(on: bool) -> Iterator[None]:
    """The stack's request shortcuts on or off for the block."""
    from botocore import auth

    from sesflow.local import server

    local_v4 = auth.AUTH_TYPE_MAPS["v4"]
    saved = server.DIRECT_DISPATCH
    server.DIRECT_DISPATCH = on
    if not on and getattr(local_v4, "_sesflow_local", False):
        auth.AUTH_TYPE_MAPS["v4"] = local_v4.__mro__[1]  # botocore's own signer
    try:
        yield
    finally:
        server.DIRECT_DISPATCH = saved
        auth.AUTH_TYPE_MAPS["v4"] = local_v4


def _cpu_ms(n: int, call: Callable[[int], None]) -> float:
    started = time.process_time()
    for i in range(n):
        call(i)
    return (time.process_time() - started) / n * 1000


def run(calls: int, rounds: int) -> dict[str, list[float]]:
    os.environ["SESFLOW_LOCAL_LAMBDA_WORKERS"] = "0"  # every invocation in this process
    import boto3

    from sesflow.local import iam as local_iam
    from sesflow.local import server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    srv, doc = server.bring_up(
        ROOT, Path(tempfile.mkdtemp(prefix="sesflow-bench-requests-")), port, None, "sesflow-local", REGION
    )
    try:
        outputs, resources = doc["outputs"], doc["resources"]
        lam = boto3.client("lambda", endpoint_url=doc["endpoint"], region_name=REGION)
        send_role = lam.get_function(FunctionName=resources["SendFunction"]["physicalId"])["Configuration"]["Role"]
        validate = resources["ValidateFunction"]["physicalId"]
        sfn = boto3.client("stepfunctions", endpoint_url=doc["endpoint"], region_name=REGION)
        machine_role = sfn.describe_state_machine(stateMachineArn=outputs["SendStateMachineArn"])["roleArn"]
        ddb = local_iam.client_as(send_role, "dynamodb", REGION)
        invoker = local_iam.client_as(machine_role, "lambda", REGION)
        table = outputs["TrackingTableName"]

        def update(i: int) -> None:
            ddb.update_item(
                TableName=table,
                Key={"emailId": {"S": f"bench-requests-{i % 200}"}},
                UpdateExpression="SET a = :a",
                ExpressionAttributeValues={":a": {"S": "x"}},
            )

        def invoke(i: int) -> None:
            request = {"template": "welcome", "to": f"r{i}@example.org", "data": {"name": "A", "product": "P"}}
            event = {"request": {**request, "emailId": f"bench-v-{i}-{time.monotonic_ns()}"}, "executionName": "x"}
            resp = invoker.invoke(FunctionName=validate, Payload=json.dumps(event))
            if resp.get("FunctionError"):
                raise RuntimeError(resp["Payload"].read())

        figures: dict[str, list[float]] = {"updateOn": [], "updateOff": [], "invokeOn": [], "invokeOff": []}
        _cpu_ms(50, update)
        _cpu_ms(10, invoke)  # warm: imports, caches
        for _ in range(rounds):
            for on in (True, False):
                with shortcuts(on):
                    figures["updateOn" if on else "updateOff"].append(_cpu_ms(calls, update))
                    figures["invokeOn" if on else "invokeOff"].append(_cpu_ms(max(calls // 5, 1), invoke))
        return figures
    finally:
        srv.shutdown()


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    figures = run(args.calls, args.rounds)

    def show(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    print(
        f"local requests, CPU per call in the stack's process ({args.rounds} rounds, shortcuts on / off): "
        f"UpdateItem {show(figures['updateOn'])} / {show(figures['updateOff'])} ms; "
        f"validate invocation (handler included) {show(figures['invokeOn'])} / {show(figures['invokeOff'])} ms"
    )
    return figures


if __name__ == "__main__":
    main()
    os._exit(0)  # the stack's threads (deliveries, clock) are daemons of this process
