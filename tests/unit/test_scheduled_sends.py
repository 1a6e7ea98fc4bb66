"""Scheduled single sends in moto: ValidateRequest keeps ``sendAt`` and the item long enough,
``ScheduleSend`` (the defer function's ``schedule`` action) creates one schedule per emailId,
the cancel (``sesflow_aws.scheduled.cancel``, behind ``sesflow cancel`` and
``sesflow.client.cancel_email``) moves ``scheduled`` to ``cancelled``, closes the ledger,
deletes the schedule and announces it, and a send that meets the closed ledger raises
``EmailCancelled``."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sesflow_aws import scheduled
from sesflow_core import errors, scheduling
from sesflow_core import request as req
from sesflow_handlers import defer, send, validate

from sesflow.client import build_request, cancel_email

from .conftest import BUS, SCHEDULE_GROUP, SCHEDULER_ROLE_ARN, SEND_MACHINE_ARN, TRACKING, Aws, LambdaContext

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


def cancel(aws: Aws, email_id: str, **kwargs: Any) -> dict[str, Any]:
    return scheduled.cancel(aws.client, table=TRACKING, group=SCHEDULE_GROUP, bus=BUS, email_id=email_id, **kwargs)


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


# ---------------------------------------------------------------- cancel
def test_cancel_closes_the_ledger_deletes_the_schedule_and_announces_it(aws: Aws, ctx: LambdaContext) -> None:
    send_at = in_hours(1)
    schedule_email(aws, ctx, "sc-1", send_at)
    result = cancel(aws, "sc-1", reason="the customer changed their mind")
    assert result == {
        "emailId": "sc-1",
        "cancelled": True,
        "alreadyCancelled": False,
        "status": "cancelled",
        "previousStatus": "scheduled",
        "sequence": 2,
        "scheduledFor": send_at,
        "scheduleDeleted": True,
        "reason": "the customer changed their mind",
    }
    item = aws.item("sc-1")
    assert (item["status"], item["previousStatus"], item["sendState"]) == ("cancelled", "scheduled", "cancelled")
    assert item["statusSequence"] == 2 and item["reason"] == "the customer changed their mind"
    assert schedules(aws) == {}
    [event] = aws.events("Email Status Changed")
    assert event["source"] == "sesflow"
    assert event["detail"] | {"timestamp": None} == {
        "emailId": "sc-1",
        "status": "cancelled",
        "previousStatus": "scheduled",
        "sequence": 2,
        "messageId": None,
        "template": "welcome",
        "topic": "transactional",
        "campaignId": None,
        "reason": "the customer changed their mind",
        "timestamp": None,
    }
    assert event["detail"]["timestamp"] == item["updatedAt"]

    # again: nothing changes, the schedule is gone, the same event (same sequence) is repeated
    again = cancel(aws, "sc-1")
    assert again | {"alreadyCancelled": False, "scheduleDeleted": True} == result
    assert again["alreadyCancelled"] and not again["scheduleDeleted"]
    assert [e["detail"]["sequence"] for e in aws.events("Email Status Changed")] == [2, 2]
    assert aws.item("sc-1")["statusSequence"] == 2


def test_a_schedule_that_fires_after_the_cancel_sends_nothing(aws: Aws, ctx: LambdaContext) -> None:
    schedule_email(aws, ctx, "sc-2", in_hours(1))
    fired_input = json.loads(schedules(aws)[scheduling.schedule_name("sc-2")]["Target"]["Input"])
    cancel(aws, "sc-2")
    fired = validate.handler({"request": fired_input}, ctx)
    assert fired["valid"] and aws.item("sc-2")["status"] == "cancelled"  # open_item never overwrites
    with pytest.raises(errors.EmailCancelled, match="emailId sc-2 was cancelled before it was sent"):
        send.handler({"request": fired["request"], "executionId": "fired-1"}, ctx)
    assert aws.sent() == []
    assert aws.item("sc-2")["sendState"] == "cancelled"


@pytest.mark.parametrize(
    ("attrs", "reason"),
    [
        ({"status": "scheduled", "sendState": "sending", "sendOwner": "x"}, "it is being sent"),
        ({"status": "sent", "sendState": "sent"}, "it was sent (status sent)"),
        ({"status": "delivered", "sendState": "sent"}, "it was sent (status delivered)"),
        ({"status": "queued"}, "it is queued, not scheduled: only a scheduled email can be cancelled"),
        (
            {"status": "failed", "sendState": "retryable"},
            "it is failed, not scheduled: only a scheduled email can be cancelled",
        ),
    ],
)
def test_what_is_not_scheduled_cannot_be_cancelled(
    aws: Aws, ctx: LambdaContext, attrs: dict[str, Any], reason: str
) -> None:
    aws.put_item("sc-3", statusSequence=1, **attrs)
    before = aws.item("sc-3")
    assert cancel(aws, "sc-3") == {"emailId": "sc-3", "cancelled": False, "status": attrs["status"], "reason": reason}
    assert aws.item("sc-3") == before and aws.events() == []


def test_a_scheduled_email_whose_ledger_was_freed_can_be_cancelled(aws: Aws, ctx: LambdaContext) -> None:
    """``retryable``: a fired run failed before SES (and has not recorded it yet): nothing was sent."""
    aws.put_item("sc-4", status="scheduled", sendState="retryable", statusSequence=1)
    assert cancel(aws, "sc-4")["cancelled"] is True
    assert aws.item("sc-4")["sendState"] == "cancelled"


def test_an_unknown_email_is_not_cancelled(aws: Aws) -> None:
    assert cancel(aws, "nope") == {"emailId": "nope", "cancelled": False, "status": None, "reason": "no such email"}
    assert aws.item("nope") == {}


def test_the_client_takes_the_names_from_the_environment(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    schedule_email(aws, ctx, "sc-5", in_hours(3))
    monkeypatch.setenv("SESFLOW_TRACKING_TABLE_NAME", TRACKING)
    monkeypatch.setenv("SESFLOW_SCHEDULE_GROUP_NAME", SCHEDULE_GROUP)
    monkeypatch.setenv("SESFLOW_EVENT_BUS_NAME", BUS)
    result = cancel_email("sc-5")
    assert result["cancelled"] and result["reason"] == scheduled.DEFAULT_REASON and schedules(aws) == {}


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
