"""Scheduled single sends in moto: ValidateRequest keeps ``sendAt`` and the item long enough,
``ScheduleSend`` (the defer function's ``schedule`` action) creates one schedule per emailId
that starts the request then, and the client's ``send_at``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sesflow_core import request as req
from sesflow_core import scheduling
from sesflow_handlers import defer, validate

from sesflow.client import build_request

from .conftest import SCHEDULE_GROUP, SCHEDULER_ROLE_ARN, SEND_MACHINE_ARN, TRACKING, Aws, LambdaContext

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

WELCOME = {"template": "welcome", "to": "Ada@Example.org", "data": {"name": "Ada", "product": "Acme"}}


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def in_hours(hours: float) -> str:
    return iso(datetime.now(UTC) + timedelta(hours=hours))


def schedule_email(aws: Aws, ctx: LambdaContext, email_id: str, send_at: str) -> dict[str, Any]:
    """What the send machine does for a request with sendAt: validate, schedule, record."""
    out = validate.handler({"request": {**WELCOME, "emailId": email_id, "sendAt": send_at}}, ctx)
    assert out["valid"] and out["request"]["sendAt"] == send_at
    outcome: dict[str, Any] = defer.handler(
        {"action": "schedule", "request": out["request"], "stateMachineArn": SEND_MACHINE_ARN}, ctx
    )
    # RecordStatus
    aws.client("dynamodb").update_item(
        TableName=TRACKING,
        Key={"emailId": {"S": email_id}},
        UpdateExpression="SET previousStatus = #s, #s = :st, reason = :r ADD statusSequence :one",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":st": {"S": outcome["status"]}, ":r": {"S": outcome["reason"]}, ":one": {"N": "1"}},
    )
    return outcome


def schedules(aws: Aws) -> dict[str, dict[str, Any]]:
    scheduler = aws.client("scheduler")
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=SCHEDULE_GROUP)["Schedules"]]
    return {n: scheduler.get_schedule(GroupName=SCHEDULE_GROUP, Name=n) for n in names}


# ---------------------------------------------------------------- validate + schedule
def test_validate_keeps_send_at_and_the_item_until_long_after_it(aws: Aws, ctx: LambdaContext) -> None:
    send_at = iso(datetime.now(UTC) + timedelta(days=300))
    out = validate.handler({"request": {**WELCOME, "emailId": "sv-1", "sendAt": send_at}}, ctx)
    item = aws.item("sv-1")
    assert item["status"] == "queued" and item["scheduledFor"] == send_at
    # TrackingRetentionDays (180) after the send, not after now: the item outlives the wait
    expected = scheduling.epoch(send_at) + 180 * 86400
    assert abs(item["expiresAt"] - expected) < 5 and int(out["meta"]["expiresAt"]) == item["expiresAt"]


def test_schedule_creates_one_schedule_per_email_that_starts_the_request_then(aws: Aws, ctx: LambdaContext) -> None:
    send_at = in_hours(2)
    outcome = schedule_email(aws, ctx, "sv-2", send_at)
    assert outcome == {
        "emailId": "sv-2",
        "status": "scheduled",
        "messageId": None,
        "reason": f"scheduled for {send_at}",
    }
    [(name, schedule)] = schedules(aws).items()
    assert name == scheduling.schedule_name("sv-2")
    assert schedule["ScheduleExpression"] == f"at({send_at[:-1]})"
    assert schedule["ActionAfterCompletion"] == "DELETE" and schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert (target["Arn"], target["RoleArn"]) == (SEND_MACHINE_ARN, SCHEDULER_ROLE_ARN)
    payload = json.loads(target["Input"])
    assert payload == {
        "emailId": "sv-2",
        "template": "welcome",
        "to": "Ada@example.org",
        "data": {"name": "Ada", "product": "Acme"},
        "topic": "transactional",
        "sendRound": 0,
        "scheduledFor": send_at,
    }
    # the execution it starts is accepted whenever it runs, and sent at once (no sendAt)
    fired = req.validate(payload, identity="example.com", now=datetime.now(UTC) + timedelta(days=30))
    assert (fired.sendAt, fired.scheduledFor) == (None, send_at)

    again: dict[str, Any] = defer.handler(
        {
            "action": "schedule",
            "request": req.validate(
                {**WELCOME, "emailId": "sv-2", "sendAt": in_hours(5)}, identity="example.com"
            ).to_dict(),
            "stateMachineArn": SEND_MACHINE_ARN,
        },
        ctx,
    )
    assert again["status"] == "scheduled" and again["reason"].startswith("already scheduled")
    assert list(schedules(aws)) == [name]  # a duplicate request is one schedule; the first time stands
    assert schedules(aws)[name]["ScheduleExpression"] == f"at({send_at[:-1]})"


# ---------------------------------------------------------------- the client's send_at
def test_send_at_as_an_aware_datetime_or_a_string() -> None:
    aware = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert build_request("welcome", "a@example.org", send_at=aware)["sendAt"] == "2026-12-01T09:00:00+00:00"
    assert build_request("welcome", "a@example.org", send_at="2026-12-01T09:00Z")["sendAt"] == "2026-12-01T09:00Z"
    assert "sendAt" not in build_request("welcome", "a@example.org")
    with pytest.raises(ValueError, match="timezone-aware"):
        build_request("welcome", "a@example.org", send_at=datetime(2026, 12, 1, 9, 0))


def test_a_send_at_string_made_by_the_client_is_valid() -> None:
    when = datetime.fromtimestamp(time.time() + 3600, UTC)
    request = build_request("welcome", "a@example.org", send_at=when)
    assert req.validate(request, identity="example.com").sendAt == scheduling.iso(when)
