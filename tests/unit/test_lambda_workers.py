"""Lambda handlers in worker processes (sesflow.local.lambda_workers): what an invocation sees
and returns is what the in-process runtime gives; a timed-out worker is replaced."""

from __future__ import annotations

import json
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sesflow.local import lambda_runtime, lambda_workers
from tests.helpers import poll

HANDLERS = """
import json, os, threading
import boto3


def _table_item(key):
    client = boto3.client("dynamodb")
    return client.get_item(TableName="t", Key={"k": {"S": key}})["Item"]["v"]["S"]


def env(event, context):
    print(json.dumps({"level": "INFO", "message": "hello"}))
    return {
        "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "setting": os.environ.get("SETTING"),
        "key": os.environ.get("AWS_ACCESS_KEY_ID"),
        "context": [context.function_name, context.memory_limit_in_mb, context.aws_request_id],
        "pid": os.getpid(),
        "event": event,
    }


def call(event, context):
    return _table_item(event["key"])


def together(event, context):
    out = {}
    threads = [threading.Thread(target=lambda k=k: out.__setitem__(k, _table_item(k))) for k in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def fail(event, context):
    raise ValueError("bad input")


def unserialisable(event, context):
    return {"when": object()}


def hang(event, context):
    threading.Event().wait(60)  # past its Timeout
"""


class Stack:
    """The stack's side of the calls: answers GetItem with the key it was asked for."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.barrier: threading.Barrier | None = None

    def answer(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        request = json.loads(body)
        self.requests.append({"url": url, "target": headers.get("X-Amz-Target"), "body": request})
        if self.barrier is not None:
            self.barrier.wait()  # both calls are in flight at once, or this times out
        key = request["Key"]["k"]["S"]
        item = {"Item": {"v": {"S": f"value of {key}"}}}
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, json.dumps(item).encode()


@pytest.fixture()
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[lambda_workers.Pool, Stack, Path]]:
    code = tmp_path / "code"
    code.mkdir()
    (code / "worker_probe.py").write_text(textwrap.dedent(HANDLERS))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: every call must be forwarded
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    stack = Stack()
    workers = lambda_workers.Pool(1, stack.answer)
    try:
        poll(lambda: len(workers._idle) == 1, timeout=60, what="a worker process ready")
        yield workers, stack, code
    finally:
        workers.close()


def _spec(code: Path, handler: str, timeout: float = 10) -> lambda_runtime.FunctionSpec:
    return lambda_runtime.FunctionSpec(
        function_name=f"probe-{handler}",
        function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:probe-{handler}",
        code_dir=code,
        handler=f"worker_probe.{handler}",
        environment={"SETTING": "on"},
        timeout=timeout,
        memory_mb=256,
        credentials={"AWS_ACCESS_KEY_ID": "ROLEKEY", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "t"},
    )


def _invoke(pool: lambda_workers.Pool, spec: lambda_runtime.FunctionSpec, event: Any) -> lambda_runtime.InvokeResult:
    worker = pool.acquire()
    assert worker is not None, "the worker is busy"
    return lambda_workers.invoke(pool, worker, spec, event)


def test_an_invocation_sees_its_function_environment_context_and_event(pool: Any) -> None:
    workers, _, code = pool
    lambda_runtime.log_stats(reset=True)
    result = _invoke(workers, _spec(code, "env"), {"n": 1})
    assert not result.failed, result.payload
    assert result.payload["name"] == "probe-env"
    assert result.payload["setting"] == "on"
    assert result.payload["key"] == "ROLEKEY"  # the role's session keys, as Lambda sets them
    assert result.payload["context"][:2] == ["probe-env", 256]
    assert result.payload["event"] == {"n": 1}
    assert result.payload["pid"] != __import__("os").getpid()  # another process
    logs = lambda_runtime.log_stats(reset=True)["probe-env"]
    assert logs["invocations"] == 1 and logs["INFO.events"] == 1


def test_aws_calls_come_back_to_the_stack_signed_by_the_function(pool: Any) -> None:
    workers, stack, code = pool
    result = _invoke(workers, _spec(code, "call"), {"key": "x"})
    assert result.payload == "value of x"
    [request] = stack.requests
    assert request["target"] == "DynamoDB_20120810.GetItem"
    assert request["body"]["Key"] == {"k": {"S": "x"}}


def test_calls_from_a_handlers_threads_are_in_flight_together(pool: Any) -> None:
    workers, stack, code = pool
    stack.barrier = threading.Barrier(2, timeout=20)
    result = _invoke(workers, _spec(code, "together"), {})
    assert result.payload == {"a": "value of a", "b": "value of b"}


def test_errors_are_returned_as_lambda_returns_them(pool: Any) -> None:
    workers, _, code = pool
    result = _invoke(workers, _spec(code, "fail"), {})
    assert result.error_type == "ValueError"
    assert result.payload["errorMessage"] == "bad input"
    result = _invoke(workers, _spec(code, "unserialisable"), {})
    assert result.error_type == "Runtime.MarshalError"


def test_a_timed_out_worker_is_killed_and_replaced(pool: Any) -> None:
    workers, _, code = pool
    first = _invoke(workers, _spec(code, "env"), {})
    result = _invoke(workers, _spec(code, "hang", timeout=1), {})
    assert result.error_type == lambda_runtime.TIMEOUT_ERROR
    assert result.payload["errorMessage"] == "Task timed out after 1.00 seconds"
    poll(lambda: len(workers._idle) == 1, timeout=60, what="a new worker process")
    again = _invoke(workers, _spec(code, "env"), {})
    assert again.payload["pid"] != first.payload["pid"]


def test_invocations_run_in_process_while_a_lambda_fault_rule_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from sesflow.local import faults

    class Busy:
        def acquire(self) -> None:
            raise AssertionError("a worker was asked for while a Lambda fault rule is set")

    monkeypatch.setattr(lambda_runtime, "WORKERS", Busy())
    monkeypatch.setattr(lambda_runtime, "IN_PROCESS_ONLY", faults.lambda_rules_active)
    faults.configure({"seed": 1, "rules": [{"kind": "lambdaCrash", "function": "nothing-matches", "p": 1}]})
    try:
        assert lambda_runtime._worker_for() is None
    finally:
        faults.clear()
    faults.configure({"seed": 1, "rules": [{"kind": "sesThrottle", "p": 1}]})
    try:
        with pytest.raises(AssertionError, match="a worker was asked for"):
            lambda_runtime._worker_for()
    finally:
        faults.clear()


def test_a_worker_that_died_while_idle_is_not_handed_out_and_is_replaced(pool: Any) -> None:
    workers, _, code = pool
    [dead] = list(workers._idle)
    dead.proc.kill()
    dead.proc.wait(10)
    assert workers.acquire() is None  # not the dead one: this invocation runs in a thread
    worker = poll(lambda: workers.acquire(), timeout=60, what="a new worker process")
    assert worker is not dead and worker.alive
    result = lambda_workers.invoke(workers, worker, _spec(code, "call"), {"key": "y"})
    assert result.payload == "value of y"


def test_workers_that_cannot_start_are_tried_three_times(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[int] = []

    class NoProcess:
        def __init__(self) -> None:
            tried.append(1)
            raise OSError("no fd passing here")

    monkeypatch.setattr(lambda_workers, "_Worker", NoProcess)
    workers = lambda_workers.Pool(2, Stack().answer, start=1)
    try:
        for _ in range(10):
            poll(lambda: workers._spawning == 0, timeout=10, what="the start attempt over")
            assert workers.acquire() is None
        assert len(tried) == 3 and workers.running == 0
    finally:
        workers.close()
