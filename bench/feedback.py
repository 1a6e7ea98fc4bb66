"""Feedback events processed per second by the handler in-process, and DynamoDB writes
per event (tables in moto, in memory; the figure includes moto's own overhead).

    python -m bench.feedback [--emails 300]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections import Counter
from typing import Any

SES_EVENTS = ("Send", "Delivery", "Bounce", "Complaint")


def _tables(ddb: Any) -> tuple[str, str]:
    ddb.create_table(
        TableName="tracking",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "emailId", "AttributeType": "S"},
            {"AttributeName": "messageId", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "emailId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byMessageId",
                "KeySchema": [{"AttributeName": "messageId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    ddb.create_table(
        TableName="suppression",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "address", "AttributeType": "S"},
            {"AttributeName": "topic", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "address", "KeyType": "HASH"}, {"AttributeName": "topic", "KeyType": "RANGE"}],
    )
    return "tracking", "suppression"


def _event(kind: str, i: int) -> dict[str, Any]:
    addr = f"user{i}@example.org"
    mail = {
        "messageId": f"m-{i}",
        "timestamp": "2026-11-23T10:00:00Z",
        "destination": [addr],
        "tags": {"emailId": [f"e-{i}"], "campaignId": ["bench"], "stage": ["1"]},
    }
    detail: dict[str, Any] = {"eventType": kind, "mail": mail}
    if kind == "Delivery":
        detail["delivery"] = {"timestamp": "2026-11-23T10:00:01Z", "recipients": [addr]}
    elif kind == "Bounce":
        detail["bounce"] = {
            "feedbackId": f"b-{i}",
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "timestamp": "t",
            "bouncedRecipients": [{"emailAddress": addr}],
        }
    elif kind == "Complaint":
        detail["complaint"] = {
            "feedbackId": f"c-{i}",
            "complainedRecipients": [{"emailAddress": addr}],
            "complaintFeedbackType": "abuse",
            "timestamp": "t",
        }
    else:
        detail["send"] = {}
    return {"source": "aws.ses", "detail-type": "x", "detail": detail}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=300)
    args = parser.parse_args(argv)
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "POWERTOOLS_METRICS_NAMESPACE": "bench",
            "POWERTOOLS_SERVICE_NAME": "bench",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "EVENT_BUS_NAME": "bench-bus",
        }
    )
    import warnings

    from moto import mock_aws

    warnings.filterwarnings("ignore", message="No application metrics to publish")

    with mock_aws():
        import boto3

        ddb = boto3.client("dynamodb")
        tracking_table, suppression_table = _tables(ddb)
        boto3.client("events").create_event_bus(Name="bench-bus")
        os.environ.update({"TRACKING_TABLE": tracking_table, "SUPPRESSION_TABLE": suppression_table})
        from sesflow_handlers import _common, feedback

        writes: Counter[str] = Counter()
        _common.client("dynamodb").meta.events.register(
            "before-call.dynamodb.*", lambda model, **_: writes.update([model.name])
        )
        for i in range(args.emails):  # tracked emails, as the send machine leaves them
            ddb.put_item(
                TableName=tracking_table,
                Item={"emailId": {"S": f"e-{i}"}, "status": {"S": "sent"}, "messageId": {"S": f"m-{i}"}},
            )

        class Ctx:
            function_name, memory_limit_in_mb, aws_request_id = "bench", 256, "r"
            invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

        # every email: Send, Delivery; a tenth bounce, a tenth complain; then all delivered again (duplicates)
        events = [_event(k, i) for i in range(args.emails) for k in ("Send", "Delivery")]
        events += [_event("Bounce", i) for i in range(0, args.emails, 10)]
        events += [_event("Complaint", i) for i in range(5, args.emails, 10)]
        events += [_event("Delivery", i) for i in range(args.emails)]
        start = time.perf_counter()
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # EMF metric lines
            for ev in events:
                feedback.handler(ev, Ctx())
        elapsed = time.perf_counter() - start
    writes_total = sum(n for op, n in writes.items() if op in ("UpdateItem", "PutItem", "DeleteItem"))
    rate = len(events) / elapsed
    print(f"feedback handler in-process (DynamoDB in moto, {len(events)} events, {args.emails} emails)")
    print(f"  events processed per second        {rate:8.0f}")
    print(f"  DynamoDB writes per event (mean)   {writes_total / len(events):8.2f}")
    print(f"  DynamoDB calls by operation        {dict(sorted(writes.items()))}")
    print("  per event: 1 conditional write (timeline + event key + status) in the common case; an")
    print("  out-of-order or duplicate event costs 1 more (failed conditional writes are billed too) + 1 read;")
    print("  +1 campaign counter for bounces/complaints/rejects; +1-2 suppression writes on bounce/complaint")
    return {"events_per_s": rate, "writes_per_event": writes_total / len(events)}


if __name__ == "__main__":
    main()
