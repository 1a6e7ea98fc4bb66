"""Feedback parsing (every event type, every envelope), status mapping, suppression policy."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from sesflow_core import feedback as fb
from sesflow_core import status
from sesflow_core import suppression as sp

ROOT = Path(__file__).resolve().parents[2]
MAIL = {
    "timestamp": "2026-11-23T10:00:00.000Z",
    "source": "no-reply@example.com",
    "messageId": "m-1",
    "destination": ["User@Example.org"],
    "tags": {"emailId": ["e-1"], "campaignId": ["c-1"], "stage": ["0"], "topic": ["newsletter"]},
}
EVENTS: dict[str, dict[str, Any]] = {
    "Send": {"eventType": "Send", "send": {}},
    "Delivery": {
        "eventType": "Delivery",
        "delivery": {"timestamp": "2026-11-23T10:00:01Z", "recipients": ["user@example.org"], "smtpResponse": "250 ok"},
    },
    "Bounce": {
        "eventType": "Bounce",
        "bounce": {
            "feedbackId": "fb-1",
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "timestamp": "t",
            "bouncedRecipients": [
                {"emailAddress": "user@example.org", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}
            ],
        },
    },
    "Complaint": {
        "eventType": "Complaint",
        "complaint": {
            "feedbackId": "fb-2",
            "complainedRecipients": [{"emailAddress": "user@example.org"}],
            "complaintFeedbackType": "abuse",
            "timestamp": "t",
        },
    },
    "Reject": {"eventType": "Reject", "reject": {"reason": "Bad content"}},
    "DeliveryDelay": {
        "eventType": "DeliveryDelay",
        "deliveryDelay": {
            "delayType": "TransientCommunicationFailure",
            "timestamp": "t",
            "delayedRecipients": [{"emailAddress": "user@example.org", "status": "4.4.1"}],
        },
    },
    "Rendering Failure": {"eventType": "Rendering Failure", "failure": {"errorMessage": "x", "templateName": "t"}},
}
EXPECTED_STATUS = {
    "Send": None,
    "Delivery": status.DELIVERED,
    "Bounce": status.BOUNCED,
    "Complaint": status.COMPLAINED,
    "Reject": status.FAILED,
    "DeliveryDelay": status.DELIVERY_DELAYED,
    "Rendering Failure": status.FAILED,
}


def ses_event(kind: str) -> dict[str, Any]:
    return {**copy.deepcopy(EVENTS[kind]), "mail": copy.deepcopy(MAIL)}


def eventbridge(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "x",
        "source": "aws.ses",
        "detail-type": fb.DETAIL_TYPES[obj["eventType"]],
        "detail": obj,
    }


def sns(obj: dict[str, Any]) -> dict[str, Any]:
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(obj)}}]}


def identity_notification(obj: dict[str, Any]) -> dict[str, Any]:
    obj = {("notificationType" if k == "eventType" else k): v for k, v in obj.items()}
    obj["mail"].pop("tags")  # identity notifications carry no message tags
    return obj


@pytest.mark.parametrize("kind", sorted(EVENTS))
@pytest.mark.parametrize("envelope", ["eventbridge", "sns", "sns-identity", "bare"])
def test_every_event_type_through_every_envelope(kind: str, envelope: str) -> None:
    obj = ses_event(kind)
    wrapped = {
        "eventbridge": lambda: eventbridge(obj),
        "sns": lambda: sns(obj),
        "bare": lambda: obj,
        "sns-identity": lambda: sns(identity_notification(obj)),
    }[envelope]()
    [ev] = fb.parse_envelope(wrapped)
    assert ev.kind == kind and ev.message_id == "m-1"
    assert ev.recipients == ("user@example.org",)
    assert ev.status == EXPECTED_STATUS[kind]
    if envelope == "sns-identity":
        assert ev.email_id is None
    else:
        assert (ev.email_id, ev.campaign_id, ev.stage, ev.topic) == ("e-1", "c-1", "0", "newsletter")


def test_the_same_event_has_the_same_key_through_any_envelope() -> None:
    obj = ses_event("Bounce")
    keys = {fb.parse_envelope(w)[0].key for w in (eventbridge(obj), sns(obj), obj)}
    assert len(keys) == 1
    other = ses_event("Bounce")
    other["bounce"]["feedbackId"] = "fb-other"
    assert fb.parse_envelope(other)[0].key not in keys


def test_bounce_details_are_kept() -> None:
    [ev] = fb.parse_envelope(ses_event("Bounce"))
    assert (ev.bounce_type, ev.bounce_subtype) == ("Permanent", "General")
    assert ev.diagnostics == {"user@example.org": "smtp; 550 5.1.1 user unknown"}
    assert ev.reason == "Permanent/General: smtp; 550 5.1.1 user unknown"
    assert ev.summary()["bounceType"] == "Permanent"


def test_eventbridge_detail_without_event_type_uses_the_detail_type() -> None:
    obj = ses_event("Delivery")
    obj.pop("eventType")
    assert fb.parse_envelope(eventbridge({**obj, "eventType": "Delivery"} | {}))[0].kind == "Delivery"
    env = {"source": "aws.ses", "detail-type": "Email Delivered", "detail": obj}
    assert fb.parse_envelope(env)[0].kind == "Delivery"


@pytest.mark.parametrize(
    "bad",
    [
        {"hello": "world"},
        {"source": "aws.ses", "detail": {"eventType": "Nope", "mail": {"messageId": "m"}}},
        {"eventType": "Bounce", "mail": {}},
        {"Records": [{"Sns": {"Message": "not json"}}]},
    ],
)
def test_garbage_is_a_parse_error(bad: dict[str, Any]) -> None:
    with pytest.raises(fb.FeedbackParseError):
        fb.parse_envelope(bad)


def test_sns_subscription_confirmation_is_skipped() -> None:
    assert fb.parse_envelope({"Records": [{"Sns": {"Type": "SubscriptionConfirmation", "Message": "{}"}}]}) == []


def test_sample_event_file_parses() -> None:
    [ev] = fb.parse_envelope(json.loads((ROOT / "events" / "fn-feedback.json").read_text()))
    assert ev.kind == "Bounce" and ev.email_id == "sample-feedback-0001"


def test_feedback_precedence() -> None:
    assert fb.feedback_may_replace(status.SENT, status.DELIVERED)
    assert not fb.feedback_may_replace(status.BOUNCED, status.DELIVERED)  # out of order
    assert fb.feedback_may_replace(status.DELIVERED, status.COMPLAINED)  # complaint after delivery
    assert fb.feedback_may_replace(status.SENT, status.FAILED)  # SES rejected after accepting
    assert not fb.feedback_may_replace(status.DELIVERED, status.FAILED)
    assert not fb.feedback_may_replace(status.DELIVERED, status.DELIVERY_DELAYED)


SETTINGS = sp.PolicySettings()


def decisions(kind: str, **bounce: str) -> list[tuple[str, str]]:
    obj = ses_event(kind)
    if bounce:
        obj["bounce"].update(bounce)
    [ev] = fb.parse_envelope(obj)
    return [(d.action, d.topic) for d in sp.decide(ev, SETTINGS)]


def test_policy_table() -> None:
    assert decisions("Bounce") == [("suppress", "*")]
    assert decisions("Bounce", bounceSubType="OnAccountSuppressionList") == [("suppress", "*")]
    assert decisions("Bounce", bounceType="Transient", bounceSubType="MailboxFull") == [("count-soft-bounce", "*")]
    assert decisions("Bounce", bounceType="Undetermined") == [("count-soft-bounce", "*")]
    assert decisions("Complaint") == [("suppress", "~subscription")]
    assert decisions("Delivery") == [] and decisions("Send") == [] and decisions("Reject") == []
    [ev] = fb.parse_envelope(ses_event("Complaint"))
    assert sp.decide(ev, sp.PolicySettings(complaint_scope="*"))[0].topic == "*"


def test_soft_bounce_window() -> None:
    day = 86400.0
    now = 100 * day
    assert sp.soft_bounces_exceeded([now - 1, now - 2], now, SETTINGS) == (False, [now - 2, now - 1])
    hit, recent = sp.soft_bounces_exceeded([now - 40 * day, now - 3, now - 2, now - 1], now, SETTINGS)
    assert hit and len(recent) == 3


def test_topic_matching() -> None:
    assert sp.topic_matches("*", "transactional")
    assert sp.topic_matches("~subscription", "newsletter")
    assert not sp.topic_matches("~subscription", "transactional")
    assert sp.topic_matches("newsletter", "newsletter") and not sp.topic_matches("newsletter", "offers")
