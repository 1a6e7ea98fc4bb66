"""What a drip sequence costs: one enrollment of a 5-step sequence on the local stack, its
state transitions and invocations counted from the execution history, priced per 1,000.

    python -m bench.sequence_cost [--enrollments 5]

The sequence: send -> wait 1d -> send -> wait 2d -> send (5 steps), run on a clock of a day per
second. Prices (us-east-1, 2026): Step Functions STANDARD $25 per million state transitions;
Lambda $0.20 per million requests plus $0.0000133334 per GB-second (arm64, 256 MB, ~40 ms a
step: a DynamoDB read or two, a write, an EventBridge event); DynamoDB on-demand $0.625 per
million writes, $0.125 per million reads; EventBridge $1.00 per million custom events; each
email through the send machine $9.0 per million (README, *What it costs*; SES not included).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from sesflow import executions
from sesflow.cli import sequence as seq_cli
from sesflow.local import control
from sesflow.target import local_target

ROOT = Path(__file__).resolve().parent.parent
FIVE_STEPS = {
    "name": "bench-five",
    "topic": "onboarding",
    "steps": [
        {"id": "one", "type": "send", "template": "onboarding-tips"},
        {"id": "pause", "type": "wait", "duration": "1d"},
        {"id": "two", "type": "send", "template": "onboarding-tips"},
        {"id": "pause-2", "type": "wait", "duration": "2d"},
        {"id": "three", "type": "send", "template": "feedback-ask"},
    ],
}
STANDARD_TRANSITION = 25 / 1e6
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND = 0.0000133334
DDB_WRITE, DDB_READ = 0.625 / 1e6, 0.125 / 1e6
EVENT = 1.00 / 1e6
SEND_MACHINE_EMAIL = 9.0 / 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--enrollments", type=int, default=5)
    args = parser.parse_args(argv)
    from sesflow_aws import sequences as store

    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-seq-"))
    control.up(ROOT, port=0, sdir=sdir)
    transitions, invocations = [], []
    try:
        target = local_target(ROOT, sdir)
        store.deploy(
            target.clients.client("dynamodb"),
            target.clients.client("s3"),
            target.outputs["SequencesTableName"],
            target.outputs["TemplatesBucketName"],
            FIVE_STEPS,
        )
        sfn = target.clients.client("stepfunctions")
        arns = [
            seq_cli.enroll(
                target,
                "bench-five",
                f"success+b{uuid.uuid4().hex[:6]}@simulator.amazonses.com",
                data={"product": "Acme"},
                clock={"scale": 86400},
            )["executionArn"]
            for _ in range(args.enrollments)
        ]
        started = time.time()
        for arn in arns:
            assert executions.wait(sfn, arn, timeout=300) == "SUCCEEDED", arn
            events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            kinds = Counter(e["type"] for e in events)
            transitions.append(sum(n for k, n in kinds.items() if k.endswith("StateEntered")))
            invocations.append(kinds["TaskScheduled"])
        seconds = time.time() - started
    finally:
        control.down(ROOT, sdir=sdir)
    t, inv = max(transitions), max(invocations)
    sends = 3
    per_enrollment = {
        "Step Functions: STANDARD transitions": t * STANDARD_TRANSITION,
        "Lambda: requests": inv * LAMBDA_REQUEST,
        "Lambda: duration (256 MB, 40 ms each)": inv * 0.25 * 0.040 * LAMBDA_GB_SECOND,
        # start: 1 read + 1 write; each step: a read of the enrollment + a history write;
        # sends: a suppression lookup (3 keys); branches: a tracking read
        "DynamoDB: writes": (1 + inv) * DDB_WRITE,
        "DynamoDB: reads": (2 + inv + sends * 3) * DDB_READ,
        "EventBridge: Sequence Enrolled/Step/Completed": (2 + sends) * EVENT,
        "the 3 emails through the send machine": sends * SEND_MACHINE_EMAIL,
    }
    total = sum(per_enrollment.values())
    print(f"drip sequence, 5 steps (3 sends, 2 waits), {args.enrollments} enrollments, local stack, {seconds:.0f} s")
    print(f"  per enrollment: {t} state transitions, {inv} function invocations, {len(FIVE_STEPS['steps'])} steps")
    for line, cost in per_enrollment.items():
        print(f"  {line:<48} ${cost * 1000:8.4f} per 1,000 enrollments")
    print(f"  {'total (SES not included)':<48} ${total * 1000:8.4f} per 1,000 enrollments")
    print(json.dumps({"transitions": t, "invocations": inv, "perThousand": round(total * 1000, 4)}))


if __name__ == "__main__":
    main()
