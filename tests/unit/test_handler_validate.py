"""ValidateRequest: a valid request opens its tracking item as ``queued``; an invalid one is
returned for the machine to record as ``rejected``; a second validation changes nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sesflow_handlers import validate

from .conftest import ROOT, Aws, LambdaContext

WELCOME = {"template": "welcome", "to": "Ada@Example.org", "data": {"name": "Ada", "product": "Acme"}}


def run(ctx: LambdaContext, request: Any, execution_name: str | None = "exec-name") -> dict[str, Any]:
    event: dict[str, Any] = {"request": request}
    if execution_name is not None:
        event["executionName"] = execution_name
    result: dict[str, Any] = validate.handler(event, ctx)
    return result


def test_a_valid_request_opens_a_queued_tracking_item(aws: Aws, ctx: LambdaContext) -> None:
    before = time.time()
    out = run(ctx, {**WELCOME, "emailId": "v-1", "topic": "newsletter-x"})
    assert out["valid"] is True
    assert out["request"]["emailId"] == "v-1"
    assert out["request"]["recipient"] == "ada@example.org"  # the normalised key
    assert out["suppressionTopics"] == {"all": "*", "topic": "newsletter-x", "class": "~subscription"}
    item = aws.item("v-1")
    assert item["status"] == "queued"
    assert (item["recipient"], item["template"], item["topic"]) == ("ada@example.org", "welcome", "newsletter-x")
    # expiresAt: now + TrackingRetentionDays (180 by default), the same value the machine gets in meta
    assert item["expiresAt"] == int(out["meta"]["expiresAt"])
    assert before + 180 * 86400 - 5 <= item["expiresAt"] <= time.time() + 180 * 86400 + 5
    assert "campaignId" not in item and "sendState" not in item


def test_the_retention_and_the_campaign_id_come_from_the_request_and_environment(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACKING_RETENTION_DAYS", "7")
    out = run(ctx, {**WELCOME, "emailId": "v-2", "campaignId": "camp-1", "stage": 1})
    item = aws.item("v-2")
    assert item["campaignId"] == "camp-1"
    assert abs(item["expiresAt"] - (time.time() + 7 * 86400)) < 10
    assert int(out["meta"]["expiresAt"]) == item["expiresAt"]


def test_the_email_id_defaults_to_the_execution_name(aws: Aws, ctx: LambdaContext) -> None:
    out = run(ctx, WELCOME, execution_name="exec-42")
    assert out["valid"] and out["request"]["emailId"] == "exec-42"
    assert aws.item("exec-42")["status"] == "queued"


def test_an_invalid_request_is_rejected_with_its_reason_and_writes_nothing(aws: Aws, ctx: LambdaContext) -> None:
    out = run(ctx, {**WELCOME, "emailId": "v-3", "to": "not-an-address"})
    assert out["valid"] is False
    outcome = out["outcome"]
    assert outcome["emailId"] == "v-3" and outcome["status"] == "rejected" and outcome["messageId"] is None
    assert outcome["reason"].startswith("to is not a valid address")
    assert out["request"] == {"emailId": "v-3", "template": "welcome", "topic": None, "campaignId": None}
    assert int(out["meta"]["expiresAt"]) > time.time()  # RecordStatus needs it for the rejected item
    assert aws.item("v-3") == {}  # the machine's RecordStatus writes the rejection, not this step


def test_a_sender_outside_the_stack_identity_is_rejected(aws: Aws, ctx: LambdaContext) -> None:
    out = run(ctx, {**WELCOME, "emailId": "v-4", "from": "ceo@other.example"})
    assert out["valid"] is False
    assert out["outcome"]["reason"] == "from must belong to the sending identity example.com"


@pytest.mark.parametrize(
    ("request_", "execution_name", "email_id"),
    [
        ({**WELCOME, "emailId": "bad id with spaces"}, "exec-7", "exec-7"),  # a malformed id: the execution name
        ({**WELCOME, "emailId": "bad id", "to": "x"}, None, "unknown"),  # and no execution name either
        ("not an object", "exec-8", "exec-8"),
        ({**WELCOME, "emailId": "v-5", "surprise": 1}, "exec-9", "v-5"),  # a valid id is kept
    ],
)
def test_a_rejected_request_keeps_its_own_email_id_or_the_execution_name(
    aws: Aws, ctx: LambdaContext, request_: Any, execution_name: str | None, email_id: str
) -> None:
    out = run(ctx, request_, execution_name)
    assert out["valid"] is False
    assert out["outcome"]["emailId"] == out["request"]["emailId"] == email_id
    assert out["outcome"]["reason"]


def test_revalidation_never_overwrites_what_an_earlier_run_wrote(aws: Aws, ctx: LambdaContext) -> None:
    run(ctx, {**WELCOME, "emailId": "v-6"})
    first = aws.item("v-6")
    # the email was sent meanwhile (RecordSent); a redelivered request is validated again
    aws.put_item("v-6", **{**{k: v for k, v in first.items() if k != "emailId"}, "status": "sent", "statusSequence": 1})
    out = run(ctx, {**WELCOME, "emailId": "v-6", "to": "someone.else@example.org", "template": "newsletter"})
    assert out["valid"] is True
    again = aws.item("v-6")
    assert again["status"] == "sent"
    assert again["statusSequence"] == 1
    for name in ("recipient", "template", "topic", "createdAt", "expiresAt"):
        assert again[name] == first[name], name


def test_the_sample_event(aws: Aws, ctx: LambdaContext) -> None:
    event = json.loads((ROOT / "events" / "fn-validate.json").read_text())
    out = validate.handler(event, ctx)
    assert out["valid"] is True
    assert aws.item("sample-validate-0001")["status"] == "queued"


# ---------------------------------------------------------------- repeats (ADR 0002)
EXEC_A = "arn:aws:states:us-east-1:123456789012:express:SendEmail:a:1"
EXEC_B = "arn:aws:states:us-east-1:123456789012:express:SendEmail:b:2"


def run_as(ctx: LambdaContext, request: Any, execution_id: str) -> dict[str, Any]:
    result: dict[str, Any] = validate.handler(
        {"request": request, "executionName": execution_id.rsplit(":", 2)[1], "executionId": execution_id}, ctx
    )
    return result


def test_a_repeat_while_the_first_execution_runs_ends_queued_and_changes_nothing(aws: Aws, ctx: LambdaContext) -> None:
    first = run_as(ctx, {**WELCOME, "emailId": "r-1"}, EXEC_A)
    assert "repeat" not in first and aws.item("r-1")["openedBy"] == EXEC_A
    before = aws.item("r-1")
    second = run_as(ctx, {**WELCOME, "emailId": "r-1"}, EXEC_B)
    assert second["valid"] is True
    assert second["repeat"]["status"] == "queued" and second["repeat"]["messageId"] is None
    assert EXEC_A in second["repeat"]["reason"]
    assert aws.item("r-1") == before  # the opener stays the first execution
    # the first execution's own retry (a Lambda retry after its write) is not a repeat
    assert "repeat" not in run_as(ctx, {**WELCOME, "emailId": "r-1"}, EXEC_A)


def test_a_repeat_after_the_send_was_recorded_returns_the_first_result(aws: Aws, ctx: LambdaContext) -> None:
    run_as(ctx, {**WELCOME, "emailId": "r-2"}, EXEC_A)
    item = aws.item("r-2")
    sent = {"sendState": "sent", "sendOwner": EXEC_A, "messageId": "m-1", "sentAt": "2026-12-08T00:00:00Z"}
    aws.put_item("r-2", **{**{k: v for k, v in item.items() if k != "emailId"}, **sent, "status": "delivered"})
    out = run_as(ctx, {**WELCOME, "emailId": "r-2"}, EXEC_B)
    assert out["repeat"] == {"emailId": "r-2", "status": "sent", "messageId": "m-1", "reason": None}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"status": "deferred"}, "a later round after SES throttling"),
        ({"status": "scheduled"}, "the schedule's execution"),
        ({"status": "failed"}, "a request after a failure may send"),
        ({"openedBy": None}, "an item opened before openedBy was kept"),
        ({"createdAt": "2026-01-01T00:00:00Z"}, "the opener cannot still be running"),
        # the first send is done but RecordSent did not run: this one records it (the send step
        # returns the first result, RecordSent writes sent and EmitStatus announces it)
        ({"sendState": "sent", "messageId": "m-1"}, "sent, not recorded"),
    ],
)
def test_these_go_on_as_a_normal_send(aws: Aws, ctx: LambdaContext, change: dict[str, Any], why: str) -> None:
    run_as(ctx, {**WELCOME, "emailId": "r-3"}, EXEC_A)
    item = {k: v for k, v in aws.item("r-3").items() if k != "emailId"}
    aws.put_item("r-3", **{k: v for k, v in {**item, **change}.items() if v is not None})
    assert "repeat" not in run_as(ctx, {**WELCOME, "emailId": "r-3"}, EXEC_B), why


@pytest.mark.parametrize("continuation", [{"sendRound": 1}, {"scheduledFor": "2026-12-08T00:00:00Z"}])
def test_the_machines_own_next_execution_is_never_a_repeat_in_flight(
    aws: Aws, ctx: LambdaContext, continuation: dict[str, Any]
) -> None:
    """A deferred round's or a fired schedule's execution can start before the first one has
    recorded ``deferred`` or ``scheduled``: the item is still ``queued``, opened by the first."""
    run_as(ctx, {**WELCOME, "emailId": "r-5"}, EXEC_A)
    assert aws.item("r-5")["status"] == "queued"
    assert "repeat" not in run_as(ctx, {**WELCOME, "emailId": "r-5", **continuation}, EXEC_B)
    # a plain repeat at the same moment still ends at once
    assert run_as(ctx, {**WELCOME, "emailId": "r-5"}, EXEC_B)["repeat"]["status"] == "queued"


def test_without_an_execution_id_nothing_is_a_repeat(aws: Aws, ctx: LambdaContext) -> None:
    """``sam local invoke`` with a sample event: no execution, no opener kept."""
    run(ctx, {**WELCOME, "emailId": "r-4"})
    assert "openedBy" not in aws.item("r-4")
    assert "repeat" not in run(ctx, {**WELCOME, "emailId": "r-4"})
