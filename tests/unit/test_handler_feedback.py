"""Feedback: SES events through every envelope -> status (forward only), timeline (once),
suppression policy, campaign counters and one status event per change; other stacks'
events are left alone."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from sesflow_core import feedback as fb
from sesflow_handlers import feedback

from .conftest import CONFIGURATION_SET, ROOT, Aws, LambdaContext

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

ADDRESS = "user@example.org"


def ses_event(
    kind: str,
    email_id: str | None = "f-1",
    message_id: str = "m-1",
    configuration_set: str | None = CONFIGURATION_SET,
    campaign: tuple[str, str] | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """An SES event object as event publishing writes it."""
    tags: dict[str, list[str]] = {"template": ["welcome"]}
    if configuration_set:
        tags["ses:configuration-set"] = [configuration_set]
    if email_id:
        tags["emailId"] = [email_id]
    if campaign:
        tags["campaignId"], tags["stage"] = [campaign[0]], [campaign[1]]
    obj: dict[str, Any] = {
        "eventType": kind,
        "mail": {
            "timestamp": "2026-11-23T10:00:00.000Z",
            "messageId": message_id,
            "destination": [ADDRESS],
            "tags": tags,
        },
    }
    if kind == "Bounce":
        obj["bounce"] = {
            "feedbackId": "fb-1",
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "timestamp": "2026-11-23T10:00:02.000Z",
            "bouncedRecipients": [{"emailAddress": ADDRESS, "diagnosticCode": "smtp; 550 5.1.1 user unknown"}],
        }
    elif kind == "Delivery":
        obj["delivery"] = {"timestamp": "2026-11-23T10:00:01.000Z", "recipients": [ADDRESS]}
    elif kind == "Complaint":
        obj["complaint"] = {
            "feedbackId": "fb-2",
            "complainedRecipients": [{"emailAddress": ADDRESS}],
            "complaintFeedbackType": "abuse",
            "timestamp": "2026-11-23T10:00:03.000Z",
        }
    else:
        obj[kind.lower()] = {}
    obj[next(k for k in obj if k not in ("eventType", "mail"))].update(detail)
    return obj


def eventbridge(obj: dict[str, Any]) -> dict[str, Any]:
    return {"version": "0", "source": "aws.ses", "detail-type": fb.DETAIL_TYPES[obj["eventType"]], "detail": obj}


def sns(*objs: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(o)}} for o in objs]
    }


def bare(obj: dict[str, Any]) -> dict[str, Any]:
    return obj


def identity_notification(obj: dict[str, Any]) -> dict[str, Any]:
    """SES identity notifications: ``notificationType`` and no message tags."""
    obj = copy.deepcopy(obj)
    obj["notificationType"] = obj.pop("eventType")
    obj["mail"].pop("tags")
    return obj


def run(ctx: LambdaContext, event: dict[str, Any]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = feedback.handler(event, ctx)["results"]
    return results


def tracked(aws: Aws, email_id: str = "f-1", message_id: str = "m-1", **attrs: Any) -> None:
    """A tracking item as the send machine leaves it after RecordSent."""
    fields: dict[str, Any] = {"status": "sent", "messageId": message_id, "recipient": ADDRESS, "template": "welcome"}
    fields.update({"topic": "transactional", "statusSequence": 1, **attrs})
    aws.put_item(email_id, **fields)


@pytest.mark.parametrize("envelope", ["eventbridge", "sns", "bare"])
def test_a_bounce_through_every_envelope(aws: Aws, ctx: LambdaContext, envelope: str) -> None:
    tracked(aws, campaignId="camp-1")
    obj = ses_event("Bounce", campaign=("camp-1", "0"))
    wrap: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"eventbridge": eventbridge, "sns": sns, "bare": bare}
    event = wrap[envelope](obj)
    [result] = run(ctx, event)
    assert result == {
        "emailId": "f-1",
        "event": "Bounce",
        "duplicate": False,
        "statusChanged": True,
        "tracked": True,
        "suppressed": 1,
    }
    item = aws.item("f-1")
    assert (item["status"], item["previousStatus"], item["statusSequence"]) == ("bounced", "sent", 2)
    assert item["reason"] == "Permanent/General: smtp; 550 5.1.1 user unknown"
    assert (item["bounceType"], item["bounceSubType"]) == ("Permanent", "General")
    [entry] = aws.timeline("f-1")
    assert entry["event"] == "Bounce" and entry["at"] == "2026-11-23T10:00:02.000Z"
    entries = aws.suppressions()
    assert list(entries) == [(ADDRESS, "*")]
    assert entries[(ADDRESS, "*")]["reason"] == "permanent bounce (Permanent/General)"
    assert entries[(ADDRESS, "*")]["sourceEvent"] == "Bounce:m-1"
    assert aws.item("campaign#camp-1#stage#0")["bounced"] == 1
    [status_event] = aws.events("Email Status Changed")
    assert status_event["source"] == "sesflow"
    assert status_event["detail"] | {"timestamp": None} == {
        "emailId": "f-1",
        "status": "bounced",
        "previousStatus": "sent",
        "sequence": 2,
        "messageId": "m-1",
        "template": "welcome",
        "topic": "transactional",
        "campaignId": "camp-1",
        "reason": "Permanent/General: smtp; 550 5.1.1 user unknown",
        "timestamp": None,
    }
    assert status_event["detail"]["timestamp"] == "2026-11-23T10:00:02.000Z"  # SES's own time


def test_a_duplicate_delivery_writes_nothing_twice(aws: Aws, ctx: LambdaContext) -> None:
    tracked(aws)
    obj = ses_event("Bounce", campaign=("camp-1", "0"))
    run(ctx, eventbridge(obj))
    before = aws.item("f-1")
    [again] = run(ctx, sns(obj))  # the same SES event through another envelope
    assert again["duplicate"] is True and again["statusChanged"] is False
    assert aws.item("f-1") == before  # timeline, eventKeys, sequence, lastEventAt: untouched
    assert len(aws.timeline("f-1")) == 1
    assert aws.item("campaign#camp-1#stage#0")["bounced"] == 1
    assert aws.suppressions()[(ADDRESS, "*")]["hits"] == 1
    assert len(aws.events("Email Status Changed")) == 1


def test_another_configuration_sets_event_is_ignored(aws: Aws, ctx: LambdaContext) -> None:
    tracked(aws)
    before = aws.item("f-1")
    [result] = run(ctx, eventbridge(ses_event("Bounce", configuration_set="prod-stack-cs")))
    assert result["ignored"] == "another configuration set"
    assert aws.item("f-1") == before
    assert aws.suppressions() == {}
    assert aws.events() == []


def test_an_identity_notification_for_an_untracked_email_is_ignored(aws: Aws, ctx: LambdaContext) -> None:
    [result] = run(ctx, sns(identity_notification(ses_event("Bounce", message_id="m-unknown"))))
    assert result["ignored"] == "not tracked by this stack"
    assert result["emailId"] is None
    assert aws.suppressions() == {}
    assert aws.events() == []


def test_an_identity_notification_finds_the_email_by_message_id(aws: Aws, ctx: LambdaContext) -> None:
    tracked(aws, email_id="f-2", message_id="m-2")
    [result] = run(ctx, sns(identity_notification(ses_event("Bounce", email_id=None, message_id="m-2"))))
    assert result["emailId"] == "f-2" and result["statusChanged"] is True and result["suppressed"] == 1
    assert aws.item("f-2")["status"] == "bounced"


@pytest.mark.parametrize(("tracking", "applied"), [("false", False), ("true", True)])
def test_a_campaign_delivery_is_tracked_only_when_configured(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch, tracking: str, applied: bool
) -> None:
    monkeypatch.setenv("CAMPAIGN_DELIVERY_TRACKING", tracking)
    tracked(aws, campaignId="camp-1")
    [result] = run(ctx, eventbridge(ses_event("Delivery", campaign=("camp-1", "1"))))
    assert ("ignored" in result) is not applied
    assert aws.item("f-1")["status"] == ("delivered" if applied else "sent")
    assert len(aws.events("Email Status Changed")) == int(applied)


def test_a_campaign_send_event_is_never_applied(aws: Aws, ctx: LambdaContext) -> None:
    tracked(aws, campaignId="camp-1")
    [result] = run(ctx, eventbridge(ses_event("Send", campaign=("camp-1", "1"))))
    assert result["ignored"] == "campaign send/delivery not tracked"
    assert "timeline" not in aws.item("f-1")


def test_a_late_delivery_after_a_bounce_is_timeline_only(aws: Aws, ctx: LambdaContext) -> None:
    tracked(aws)
    run(ctx, eventbridge(ses_event("Bounce")))
    [late] = run(ctx, eventbridge(ses_event("Delivery")))
    assert late["duplicate"] is False and late["statusChanged"] is False
    item = aws.item("f-1")
    assert (item["status"], item["statusSequence"]) == ("bounced", 2)
    assert [e["event"] for e in aws.timeline("f-1")] == ["Bounce", "Delivery"]
    assert [e["detail"]["status"] for e in aws.events("Email Status Changed")] == ["bounced"]


def test_soft_bounces_suppress_at_the_threshold(aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFT_BOUNCE_THRESHOLD", "3")
    suppressed = []
    for i in range(4):
        tracked(aws, email_id=f"soft-{i}", message_id=f"ms-{i}")
        obj = ses_event(
            "Bounce", email_id=f"soft-{i}", message_id=f"ms-{i}", bounceType="Transient", bounceSubType="MailboxFull"
        )
        obj["bounce"]["feedbackId"] = f"fb-soft-{i}"
        [result] = run(ctx, eventbridge(obj))
        suppressed.append(result["suppressed"])
        if i == 1:
            assert aws.suppressions().keys() == {(ADDRESS, "#soft-bounces")}  # counted, not suppressed yet
    assert suppressed == [0, 0, 1, 1]
    entries = aws.suppressions()
    assert entries[(ADDRESS, "*")]["reason"] == "repeated soft bounces (Transient/MailboxFull)"
    assert len(entries[(ADDRESS, "#soft-bounces")]["bounces"]) == 4


@pytest.mark.parametrize(("scope", "topic"), [(None, "~subscription"), ("*", "*")])
def test_a_complaint_suppresses_the_configured_scope(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch, scope: str | None, topic: str
) -> None:
    if scope:
        monkeypatch.setenv("COMPLAINT_SUPPRESSION_SCOPE", scope)
    tracked(aws, status="delivered")
    [result] = run(ctx, eventbridge(ses_event("Complaint")))
    assert result["statusChanged"] is True
    assert list(aws.suppressions()) == [(ADDRESS, topic)]
    item = aws.item("f-1")
    assert (item["status"], item["previousStatus"], item["complaintFeedbackType"]) == (
        "complained",
        "delivered",
        "abuse",
    )


def test_several_sns_records_are_each_applied(aws: Aws, ctx: LambdaContext) -> None:
    tracked(aws)
    results = run(ctx, sns(ses_event("Delivery"), ses_event("Complaint")))
    assert [(r["event"], r["statusChanged"]) for r in results] == [("Delivery", True), ("Complaint", True)]
    details = sorted((e["detail"] for e in aws.events("Email Status Changed")), key=lambda d: d["sequence"])
    assert [(d["status"], d["previousStatus"], d["sequence"]) for d in details] == [
        ("delivered", "sent", 2),
        ("complained", "delivered", 3),
    ]


@pytest.mark.parametrize(
    "garbage",
    [
        {"hello": "world"},
        {"source": "aws.ses", "detail-type": "Email Bounced", "detail": {"eventType": "Nope", "mail": {}}},
        {"Records": [{"Sns": {"Type": "Notification", "Message": "not json"}}]},
    ],
)
def test_garbage_is_a_feedback_parse_error(aws: Aws, ctx: LambdaContext, garbage: dict[str, Any]) -> None:
    with pytest.raises(fb.FeedbackParseError):
        feedback.handler(garbage, ctx)


def test_the_sample_event(aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch) -> None:
    event = json.loads((ROOT / "events" / "fn-feedback.json").read_text())
    monkeypatch.setenv("CONFIGURATION_SET", event["detail"]["mail"]["tags"]["ses:configuration-set"][0])
    tracked(aws, email_id="sample-feedback-0001", message_id=event["detail"]["mail"]["messageId"])
    [result] = run(ctx, event)
    assert result["statusChanged"] is True and result["suppressed"] == 1
    assert aws.item("sample-feedback-0001")["status"] == "bounced"


def test_suppressions_reach_the_account_list_when_configured(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sesflow_handlers import _common

    monkeypatch.setenv("SYNC_ACCOUNT_SUPPRESSION", "true")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(_common.client("sesv2"), "put_suppressed_destination", lambda **kw: calls.append(kw))
    tracked(aws)
    run(ctx, eventbridge(ses_event("Bounce")))
    run(ctx, eventbridge(ses_event("Complaint")))
    assert calls == [{"EmailAddress": ADDRESS, "Reason": "BOUNCE"}, {"EmailAddress": ADDRESS, "Reason": "COMPLAINT"}]


def test_opens_and_clicks_are_counted_once_each_without_a_status_change(aws: Aws, ctx: LambdaContext) -> None:
    tracked(aws, campaignId="camp-1", status="delivered")
    first_open = ses_event("Open", campaign=("camp-1", "0"), timestamp="2026-11-23T11:00:00.000Z")
    second_open = ses_event("Open", campaign=("camp-1", "0"), timestamp="2026-11-23T12:00:00.000Z")
    click = ses_event(
        "Click", campaign=("camp-1", "0"), timestamp="2026-11-23T12:01:00.000Z", link="https://acme.example/a?t=secret"
    )
    for obj in (first_open, second_open, first_open, click):  # the first open arrives twice
        run(ctx, eventbridge(obj))
    item = aws.item("f-1")
    assert (item["status"], item["opens"], item["clicks"]) == ("delivered", 2, 1)
    assert item["lastOpenedAt"] == "2026-11-23T12:00:00.000Z" and item["lastClickedLink"] == "https://acme.example/a"
    assert item["firstOpenedAt"] and item["firstClickedAt"]
    # the stage counts unique opens and clicks: this email once each
    stage = aws.item("campaign#camp-1#stage#0")
    assert (stage["opened"], stage["clicked"]) == (1, 1)
    assert aws.events("Email Status Changed") == []


def test_an_event_of_the_untracked_configuration_set_is_ours(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNTRACKED_CONFIGURATION_SET", "sesflow-untracked")
    tracked(aws)
    [result] = run(ctx, eventbridge(ses_event("Delivery", configuration_set="sesflow-untracked")))
    assert "ignored" not in result and aws.item("f-1")["status"] == "delivered"
