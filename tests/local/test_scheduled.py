"""Scheduled single sends (``sendAt``) and their cancel, through the real ASL, the local
EventBridge Scheduler (one-time schedules fire when due) and ``sesflow.client.cancel_email``."""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any

import pytest
from sesflow_core import scheduling

from sesflow.cli.send import tracking_item
from sesflow.client import cancel_email
from sesflow.target import Target

from ..helpers import EventCapture, assert_status_chain, poll, status_events
from .test_send_machine import messages_for, run, visited

pytestmark = pytest.mark.local

WELCOME = {"template": "welcome", "to": "success@simulator.amazonses.com", "data": {"name": "Ada", "product": "Acme"}}
SCHEDULED_PATH = ["ValidateRequest", "IsRequestValid", "ScheduleSend", "RecordStatus", "EmitStatus"]


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def group(stack: Target) -> str:
    return stack.physical_id("ScheduleGroup", "AWS::Scheduler::ScheduleGroup")


def schedule_of(stack: Target, email_id: str) -> dict[str, Any] | None:
    scheduler = stack.clients.client("scheduler")
    try:
        found: dict[str, Any] = scheduler.get_schedule(Name=scheduling.schedule_name(email_id), GroupName=group(stack))
    except scheduler.exceptions.ResourceNotFoundException:
        return None
    return found


def cancel(stack: Target, email_id: str) -> dict[str, Any]:
    return cancel_email(
        email_id,
        tracking_table=stack.outputs["TrackingTableName"],
        schedule_group=group(stack),
        event_bus=stack.outputs["EventBusName"],
        aws=stack.clients.client,
    )


def events_of(capture: EventCapture, email_id: str, wanted: set[str], timeout: float = 30.0) -> list[dict[str, Any]]:
    return status_events(capture, email_id, lambda s: wanted <= s, timeout)


@pytest.fixture(autouse=True)
def _subscribe(status_capture: EventCapture) -> None:
    """Capture status events from before the first send."""


def test_scheduled_sends_go_out_in_send_at_order_once_each_and_a_cancelled_one_never(
    stack: Target, status_capture: EventCapture
) -> None:
    """Four sends a few seconds ahead, requested out of order: each is recorded and announced
    ``scheduled`` with its own one-time schedule; the one cancelled at once is never sent; the
    other three go out once each, in sendAt order, never before their time."""
    tag = uuid.uuid4().hex[:8]
    t0 = math.ceil(time.time()) + 8
    at = {f"at-a-{tag}": t0, f"at-b-{tag}": t0 + 3, f"at-x-{tag}": t0 + 4, f"at-c-{tag}": t0 + 6}
    a, b, x, c = at
    for email_id in (c, x, b, a):  # request order is not send order
        rep = run(stack, WELCOME | {"emailId": email_id, "sendAt": iso(at[email_id])})
        assert rep.status == "SUCCEEDED"
        assert rep.output == {
            "emailId": email_id,
            "status": "scheduled",
            "messageId": None,
            "reason": f"scheduled for {iso(at[email_id])}",
        }
        assert visited(rep) == SCHEDULED_PATH
        if email_id == x:  # cancelled before it fires
            result = cancel(stack, x)
            assert result | {"sequence": None} == {
                "emailId": x,
                "cancelled": True,
                "alreadyCancelled": False,
                "status": "cancelled",
                "previousStatus": "scheduled",
                "sequence": None,
                "scheduledFor": iso(at[x]),
                "scheduleDeleted": True,
                "reason": "cancelled before its scheduled time",
            }
            assert schedule_of(stack, x) is None

    for email_id, epoch in at.items():
        item = tracking_item(stack, email_id)
        assert item is not None and item["scheduledFor"] == iso(epoch)
        if email_id != x:
            assert item["status"] in ("scheduled", "sent", "delivered")
            schedule = schedule_of(stack, email_id)
            if schedule is not None:  # not fired yet
                assert schedule["ScheduleExpression"] == f"at({iso(epoch)[:-1]})"
                assert schedule["ActionAfterCompletion"] == "DELETE"
                payload = json.loads(schedule["Target"]["Input"])
                assert "sendAt" not in payload and payload["scheduledFor"] == iso(epoch)
                assert payload["emailId"] == email_id

    sent = {
        email_id: poll(lambda e=email_id: messages_for(stack, e), 60, what=f"{email_id} sent") for email_id in (a, b, c)
    }
    assert [len(m) for m in sent.values()] == [1, 1, 1]
    times = {email_id: m[0]["timestamp"] for email_id, m in sent.items()}
    assert times[a] < times[b] < times[c], times
    for email_id, ts in times.items():
        assert ts >= at[email_id], f"{email_id} sent {at[email_id] - ts:.2f} s before its sendAt"

    # c went out after x's time: x's schedule would have fired by now
    assert messages_for(stack, x) == []
    cancelled = tracking_item(stack, x)
    assert cancelled is not None and cancelled["status"] == "cancelled" and cancelled["sendState"] == "cancelled"
    assert assert_status_chain(events_of(status_capture, x, {"cancelled"})) == ["scheduled", "cancelled"]
    for email_id in (a, b, c):
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


def test_a_schedule_that_fires_after_the_cancel_sends_nothing(stack: Target, status_capture: EventCapture) -> None:
    """A duplicate request finds the schedule; after a cancel, the execution a schedule would
    start (the request without sendAt, with scheduledFor) meets the closed ledger."""
    email_id = f"at-late-{uuid.uuid4().hex[:10]}"
    when = iso(time.time() + 600)
    request = WELCOME | {"emailId": email_id, "sendAt": when}
    assert run(stack, request).output["reason"] == f"scheduled for {when}"
    again = run(stack, request)  # the same request again: one schedule
    assert again.output["status"] == "scheduled" and again.output["reason"].startswith("already scheduled")
    schedule = schedule_of(stack, email_id)
    assert schedule is not None
    fired_input = json.loads(schedule["Target"]["Input"])
    expected = {k: v for k, v in request.items() if k != "sendAt"} | {"topic": "transactional", "sendRound": 0}
    assert fired_input == expected | {"scheduledFor": when}

    assert cancel(stack, email_id)["cancelled"] is True
    rep = run(stack, fired_input)  # as if Scheduler had started it just before the delete
    assert rep.status == "SUCCEEDED"
    assert rep.output == {
        "emailId": email_id,
        "status": "cancelled",
        "messageId": None,
        "reason": f"emailId {email_id} was cancelled before it was sent",
    }
    assert [s.error for s in rep.states if s.name == "SendEmail"] == ["EmailCancelled"]
    assert visited(rep)[-4:] == ["ClassifyFailure", "Cancelled", "RecordStatus", "Finish"]  # nothing announced
    assert messages_for(stack, email_id) == []
    item = tracking_item(stack, email_id)
    assert item is not None and item["status"] == "cancelled" and item["sendState"] == "cancelled"
    events = events_of(status_capture, email_id, {"cancelled"})
    assert assert_status_chain(events) == ["scheduled", "scheduled", "cancelled"]  # the duplicate announced again

    # cancelling again completes an interrupted cancel: same status, same sequence, no schedule
    again_result = cancel(stack, email_id)
    assert again_result["cancelled"] and again_result["alreadyCancelled"] and not again_result["scheduleDeleted"]
    assert again_result["sequence"] == item["statusSequence"]


def test_what_cannot_be_cancelled(stack: Target) -> None:
    email_id = f"at-sent-{uuid.uuid4().hex[:10]}"
    assert run(stack, WELCOME | {"emailId": email_id}).output["status"] == "sent"
    result = cancel(stack, email_id)
    assert result["cancelled"] is False and result["status"] in ("sent", "delivered")
    assert result["reason"].startswith("it was sent")
    assert tracking_item(stack, email_id)["status"] in ("sent", "delivered")  # type: ignore[index]
    assert cancel(stack, f"at-none-{uuid.uuid4().hex[:10]}") | {"emailId": None} == {
        "emailId": None,
        "cancelled": False,
        "status": None,
        "reason": "no such email",
    }
