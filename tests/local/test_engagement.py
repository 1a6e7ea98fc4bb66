"""Open and click tracking on the local stack (EngagementTracking=true there): the mailbox
simulator's ``success+open@`` / ``success+click@`` labels publish Open and Click events for
mail sent through the tracked configuration set, none for mail that opts out."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sesflow.cli.send import tracking_item
from sesflow.target import Target

from ..helpers import poll
from .test_campaigns import finish, start
from .test_send_machine import run

pytestmark = pytest.mark.local

ENGAGED = "success+open-click@simulator.amazonses.com"
WELCOME = {
    "template": "welcome",
    "to": ENGAGED,
    "data": {"name": "Ada", "product": "Acme", "login_url": "https://acme.example/login?t=secret"},
}


def engaged(stack: Target, email_id: str) -> dict[str, Any]:
    item: dict[str, Any] = poll(
        lambda: (i := tracking_item(stack, email_id)) and i.get("opens") and i.get("clicks") and i,
        timeout=30,
        what=f"{email_id} opened and clicked",
    )
    return item


def test_an_open_and_a_click_are_recorded_without_moving_the_status_back(stack: Target) -> None:
    email_id = f"eng-{uuid.uuid4().hex[:10]}"
    assert run(stack, WELCOME | {"emailId": email_id}).output["status"] == "sent"
    item = engaged(stack, email_id)
    assert item["opens"] == 1 and item["clicks"] == 1
    assert item["firstOpenedAt"] and item["lastOpenedAt"] and item["firstClickedAt"]
    assert item["lastClickedLink"] == "https://acme.example/login"  # no query: tokens stay out
    item = poll(
        lambda: (i := tracking_item(stack, email_id)) and i["status"] == "delivered" and i, 30, what="delivered"
    )
    events = [e["event"] for e in __import__("json").loads("[" + ",".join(item["timeline"]) + "]")]
    assert {"Open", "Click", "Delivery"} <= set(events)


def test_tracking_false_and_the_password_reset_are_never_tracked(stack: Target) -> None:
    opted_out = f"eng-{uuid.uuid4().hex[:10]}"
    reset = f"eng-{uuid.uuid4().hex[:10]}"
    assert run(stack, WELCOME | {"emailId": opted_out, "tracking": False}).output["status"] == "sent"
    data = {"product": "Acme", "reset_url": "https://acme.example/reset?t=secret", "expires_minutes": 30}
    request = {"template": "password-reset", "to": ENGAGED, "data": data, "emailId": reset}
    assert run(stack, request).output["status"] == "sent"
    tracked = f"eng-{uuid.uuid4().hex[:10]}"  # a tracked one sent after them: its events prove delivery ran
    assert run(stack, WELCOME | {"emailId": tracked}).output["status"] == "sent"
    engaged(stack, tracked)
    for email_id in (opted_out, reset):
        item = poll(
            lambda e=email_id: (i := tracking_item(stack, e)) and i["status"] == "delivered" and i, 30, what="delivered"
        )
        assert "opens" not in item and "clicks" not in item, item


def test_a_campaign_counts_unique_opens_and_clicks_per_stage(stack: Target) -> None:
    rows = [f"success+open-click-{i}@simulator.amazonses.com,N" for i in range(6)]
    rows += [f"success+open-{i}@simulator.amazonses.com,N" for i in range(4)]
    rows += [f"success+quiet{i}@simulator.amazonses.com,N" for i in range(5)]
    cid, arn = start(
        stack,
        rows,
        stages=[100],
        data={
            "title": "T",
            "intro": "I",
            "articles": [{"title": "A", "url": "https://acme.example/a", "summary": "S"}],
        },
    )
    finish(stack, arn)
    from sesflow.cli.campaign import counters

    c = poll(
        lambda: (x := counters(stack, cid, 0)) and x.get("opened") == 10 and x.get("clicked") == 6 and x,
        30,
        what="opens counted",
    )
    assert c["accepted"] == 15
