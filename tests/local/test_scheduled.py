"""Scheduled single sends (``sendAt``), through the real ASL and the local EventBridge
Scheduler (one-time schedules fire when due)."""

from __future__ import annotations

import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sesflow_core import scheduling

from sesflow import executions
from sesflow.cli.send import tracking_item
from sesflow.local.ses import outbox_entries
from sesflow.target import Target

from ..helpers import EventCapture, assert_status_chain, poll, statuses

pytestmark = pytest.mark.local

WELCOME = {"template": "welcome", "to": "success@simulator.amazonses.com", "data": {"name": "Ada", "product": "Acme"}}
SCHEDULED_PATH = ["ValidateRequest", "IsRequestValid", "ScheduleSend", "RecordStatus", "EmitStatus"]


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def run(stack: Target, request: dict[str, Any]) -> executions.ExecutionReport:
    sfn = stack.clients.client("stepfunctions")
    arn = executions.start(sfn, stack.outputs["SendStateMachineArn"], request)
    executions.wait(sfn, arn, timeout=120)
    return executions.report(sfn, arn)


def visited(rep: executions.ExecutionReport) -> list[str]:
    return [s.name for s in rep.states]


def messages_for(stack: Target, email_id: str) -> list[dict[str, Any]]:
    return [e for e in outbox_entries(Path(stack.state["outbox"])) if e["tags"].get("emailId") == email_id]


def group(stack: Target) -> str:
    return stack.physical_id("ScheduleGroup", "AWS::Scheduler::ScheduleGroup")


def schedule_of(stack: Target, email_id: str) -> dict[str, Any] | None:
    scheduler = stack.clients.client("scheduler")
    try:
        found: dict[str, Any] = scheduler.get_schedule(Name=scheduling.schedule_name(email_id), GroupName=group(stack))
    except scheduler.exceptions.ResourceNotFoundException:
        return None
    return found


def events_of(capture: EventCapture, email_id: str, wanted: set[str], timeout: float = 30.0) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]]:
        events = capture.matching(lambda e: e["detail"]["emailId"] == email_id)
        return events if wanted <= statuses(events) else []

    return poll(found, timeout, what=f"status events {sorted(wanted)} of {email_id}")


@pytest.fixture(autouse=True)
def _subscribe(status_capture: EventCapture) -> None:
    """Capture status events from before the first send."""


def test_scheduled_sends_go_out_in_send_at_order_once_each(stack: Target, status_capture: EventCapture) -> None:
    """Three sends a few seconds ahead, requested out of order: each is recorded and announced
    ``scheduled`` with its own one-time schedule, then goes out once, in sendAt order, never
    before its time."""
    tag = uuid.uuid4().hex[:8]
    t0 = math.ceil(time.time()) + 6
    at = {f"at-a-{tag}": t0, f"at-b-{tag}": t0 + 3, f"at-c-{tag}": t0 + 6}
    a, b, c = at
    for email_id in (c, a, b):  # request order is not send order
        rep = run(stack, WELCOME | {"emailId": email_id, "sendAt": iso(at[email_id])})
        assert rep.status == "SUCCEEDED"
        assert rep.output == {
            "emailId": email_id,
            "status": "scheduled",
            "messageId": None,
            "reason": f"scheduled for {iso(at[email_id])}",
        }
        assert visited(rep) == SCHEDULED_PATH

    for email_id, epoch in at.items():
        item = tracking_item(stack, email_id)
        assert item is not None and item["scheduledFor"] == iso(epoch)
        assert item["status"] in ("scheduled", "sent", "delivered")
        schedule = schedule_of(stack, email_id)
        if schedule is not None:  # not fired yet
            assert schedule["ScheduleExpression"] == f"at({iso(epoch)[:-1]})"
            assert schedule["ActionAfterCompletion"] == "DELETE"
            payload = json.loads(schedule["Target"]["Input"])
            assert "sendAt" not in payload and payload["scheduledFor"] == iso(epoch)
            assert payload["emailId"] == email_id

    sent = {email_id: poll(lambda e=email_id: messages_for(stack, e), 60, what=f"{email_id} sent") for email_id in at}
    assert [len(m) for m in sent.values()] == [1, 1, 1]
    times = {email_id: m[0]["timestamp"] for email_id, m in sent.items()}
    assert times[a] < times[b] < times[c], times
    for email_id, ts in times.items():
        assert ts >= at[email_id], f"{email_id} sent {at[email_id] - ts:.2f} s before its sendAt"
    for email_id in at:
        events = events_of(status_capture, email_id, {"scheduled", "delivered"})
        chain = assert_status_chain(events)
        assert chain[0] == "scheduled" and chain[-1] == "delivered", chain
        [scheduled] = [e for e in events if e["detail"]["status"] == "scheduled"]
        assert scheduled["detail"]["reason"] == f"scheduled for {iso(at[email_id])}"
        assert schedule_of(stack, email_id) is None  # fired and deleted itself
        item = tracking_item(stack, email_id)
        assert item is not None and item["scheduledFor"] == iso(at[email_id]) and item["sendState"] == "sent"


@pytest.mark.parametrize(
    ("send_at", "reason"),
    [
        (lambda now: iso(now - 120), "is in the past"),
        (lambda now: "next tuesday", "sendAt must be an ISO 8601 date and time with a UTC offset"),
        (lambda now: iso(now + 3600)[:-1], "has no UTC offset"),
        (lambda now: iso(now + 366 * 86400), "is more than 365 days ahead"),
        (lambda now: "2026-02-30T09:00:00Z", "is not a valid date and time"),
    ],
    ids=["past", "malformed", "no-offset", "over-a-year", "no-such-day"],
)
def test_bad_send_at_is_rejected_with_its_reason(stack: Target, send_at: Any, reason: str) -> None:
    email_id = f"at-bad-{uuid.uuid4().hex[:10]}"
    rep = run(stack, WELCOME | {"emailId": email_id, "sendAt": send_at(time.time())})
    assert rep.output["status"] == "rejected" and reason in rep.output["reason"], rep.output
    assert visited(rep) == ["ValidateRequest", "IsRequestValid", "RecordStatus", "EmitStatus"]
    item = tracking_item(stack, email_id)
    assert item is not None and item["status"] == "rejected" and reason in item["reason"]
    assert schedule_of(stack, email_id) is None and messages_for(stack, email_id) == []


def test_send_at_within_the_clock_skew_is_sent_at_once(stack: Target) -> None:
    email_id = f"at-skew-{uuid.uuid4().hex[:10]}"
    when = iso(time.time() - 30)
    rep = run(stack, WELCOME | {"emailId": email_id, "sendAt": when})
    assert rep.output["status"] == "sent"
    assert "ScheduleSend" not in visited(rep) and "SendEmail" in visited(rep)
    item = tracking_item(stack, email_id)
    assert item is not None and item["scheduledFor"] == when
    assert len(messages_for(stack, email_id)) == 1
