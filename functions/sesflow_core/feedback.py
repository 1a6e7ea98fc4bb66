"""SES feedback events: parse every envelope into one shape, map them to statuses.

Envelopes accepted (the same SES event object inside each):

* EventBridge, from a configuration set's EventBridge destination: ``source: aws.ses``,
  ``detail-type: Email Bounced`` ..., ``detail`` = the SES event (``eventType``);
* SNS event publishing (configuration set SNS destination): ``Records[].Sns.Message`` =
  JSON with ``eventType``;
* SNS identity notifications: the same, with ``notificationType`` (no ``mail.tags``);
* a bare SES event object (``eventType`` or ``notificationType`` at the top).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from . import status

#: SES event type -> EventBridge detail-type
DETAIL_TYPES = {
    "Send": "Email Sent",
    "Delivery": "Email Delivered",
    "Bounce": "Email Bounced",
    "Complaint": "Email Complaint Received",
    "Reject": "Email Rejected",
    "DeliveryDelay": "Email Delivery Delayed",
    "Rendering Failure": "Email Rendering Failed",
    "Open": "Email Opened",
    "Click": "Email Clicked",
    "Subscription": "Email Subscribed",
}
_TYPE_BY_DETAIL = {v: k for k, v in DETAIL_TYPES.items()}
#: the object key holding each event type's details
_DETAIL_KEY = {
    "Send": "send",
    "Delivery": "delivery",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Reject": "reject",
    "DeliveryDelay": "deliveryDelay",
    "Rendering Failure": "failure",
    "Open": "open",
    "Click": "click",
    "Subscription": "subscription",
}


class FeedbackParseError(ValueError):
    """Not an SES event we understand: the function fails, Lambda retries twice, then the
    event lands in the feedback failures queue (the on-failure destination) to be inspected."""


@dataclass(frozen=True)
class FeedbackEvent:
    kind: str  # SES eventType: Bounce, Complaint, Delivery, ...
    message_id: str
    recipients: tuple[str, ...]
    timestamp: str
    email_id: str | None = None
    campaign_id: str | None = None
    stage: str | None = None
    variant: str | None = None  # an A/B sample's variant (its SES tag)
    topic: str | None = None
    bounce_type: str | None = None
    bounce_subtype: str | None = None
    diagnostics: dict[str, str] = field(default_factory=dict)
    complaint_type: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    #: the ``ses:configuration-set`` tag SES adds to every event it publishes (absent on
    #: identity notifications): whose email this is when several stacks share an account
    configuration_set: str | None = None

    @property
    def key(self) -> str:
        """Idempotency key: the same SES event delivered twice (or through two envelopes)
        has the same key."""
        ident = self.detail.get("feedbackId") or self.timestamp
        raw = f"{self.kind}|{self.message_id}|{ident}|{','.join(sorted(self.recipients))}"
        return hashlib.sha256(raw.encode()).hexdigest()[:24]

    @property
    def status(self) -> str | None:
        """The tracking status this event moves the email to (None: no status change)."""
        return {
            # Sending is recorded by the sender (RecordSent, or the campaign's claim).
            "Send": None,
            "Delivery": status.DELIVERED,
            "Bounce": status.BOUNCED,
            "Complaint": status.COMPLAINED,
            "DeliveryDelay": status.DELIVERY_DELAYED,
            "Reject": status.FAILED,
            "Rendering Failure": status.FAILED,
        }.get(self.kind)

    @property
    def reason(self) -> str | None:
        if self.kind == "Bounce":
            diag = "; ".join(sorted(set(self.diagnostics.values())))
            return f"{self.bounce_type}/{self.bounce_subtype}" + (f": {diag}" if diag else "")
        if self.kind == "Complaint":
            return f"complaint: {self.complaint_type or 'unspecified'}"
        if self.kind == "Reject":
            return f"rejected by SES: {self.detail.get('reason', '')}"
        if self.kind == "Rendering Failure":
            return f"rendering failed: {self.detail.get('errorMessage', '')}"
        if self.kind == "DeliveryDelay":
            return f"delivery delayed: {self.detail.get('delayType', '')}"
        return None

    def facts(self) -> dict[str, str]:
        """Attributes the tracking item keeps about this event (bounce type, diagnostics...)."""
        facts: dict[str, str] = {}
        if self.bounce_type:
            facts = {"bounceType": self.bounce_type, "bounceSubType": self.bounce_subtype or ""}
            if self.diagnostics:
                facts["diagnosticCode"] = "; ".join(sorted(set(self.diagnostics.values())))[:1000]
        if self.complaint_type:
            facts["complaintFeedbackType"] = self.complaint_type
        if self.kind == "Open":
            facts["lastOpenedAt"] = self.timestamp
        if self.kind == "Click":
            facts["lastClickedAt"] = self.timestamp
            if self.link:
                facts["lastClickedLink"] = self.link
        return facts

    @property
    def link(self) -> str | None:
        """A click's link (without its query: tokens and personal data stay out of the item)."""
        link = self.detail.get("link")
        return str(link).split("?", 1)[0][:500] if link else None

    def engagement(self) -> tuple[str, str] | None:
        """(count attribute, first-time attribute) for an Open or a Click; None otherwise."""
        return {"Open": ("opens", "firstOpenedAt"), "Click": ("clicks", "firstClickedAt")}.get(self.kind)

    def summary(self) -> dict[str, Any]:
        """A compact timeline entry (no recipient addresses: they are on the item already)."""
        entry: dict[str, Any] = {"event": self.kind, "at": self.timestamp}
        for name, value in (
            ("bounceType", self.bounce_type),
            ("bounceSubType", self.bounce_subtype),
            ("complaintFeedbackType", self.complaint_type),
            ("reason", self.reason),
            ("link", self.link if self.kind == "Click" else None),
        ):
            if value:
                entry[name] = value
        return entry


def _tag(tags: dict[str, Any], name: str) -> str | None:
    value = tags.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value else None


def parse_ses_event(obj: dict[str, Any]) -> FeedbackEvent:
    """One SES event object (event publishing or identity notification)."""
    kind = obj.get("eventType") or obj.get("notificationType")
    if kind == "AmazonSnsSubscriptionSucceeded":
        raise FeedbackParseError("SNS subscription confirmation")
    if kind not in _DETAIL_KEY:
        raise FeedbackParseError(f"unknown SES event type {kind!r}")
    mail = obj.get("mail") or {}
    message_id = mail.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise FeedbackParseError("SES event without mail.messageId")
    detail = obj.get(_DETAIL_KEY[kind]) or {}
    tags = mail.get("tags") or {}
    recipients: list[str] = []
    diagnostics: dict[str, str] = {}
    if kind == "Bounce":
        for r in detail.get("bouncedRecipients", []):
            recipients.append(r["emailAddress"])
            if r.get("diagnosticCode"):
                diagnostics[r["emailAddress"].lower()] = str(r["diagnosticCode"])[:500]
    elif kind == "Complaint":
        recipients = [r["emailAddress"] for r in detail.get("complainedRecipients", [])]
    elif kind == "Delivery":
        recipients = list(detail.get("recipients", []))
    elif kind == "DeliveryDelay":
        recipients = [r["emailAddress"] for r in detail.get("delayedRecipients", [])]
    if not recipients:
        recipients = list(mail.get("destination", []))
    timestamp = detail.get("timestamp") or mail.get("timestamp") or ""
    return FeedbackEvent(
        kind=kind,
        message_id=message_id,
        recipients=tuple(r.lower() for r in recipients),
        timestamp=str(timestamp),
        email_id=_tag(tags, "emailId"),
        campaign_id=_tag(tags, "campaignId"),
        stage=_tag(tags, "stage"),
        variant=_tag(tags, "variant"),
        topic=_tag(tags, "topic"),
        bounce_type=detail.get("bounceType"),
        bounce_subtype=detail.get("bounceSubType"),
        diagnostics=diagnostics,
        complaint_type=detail.get("complaintFeedbackType"),
        configuration_set=_tag(tags, "ses:configuration-set"),
        detail={
            k: v
            for k, v in detail.items()
            if k not in ("bouncedRecipients", "complainedRecipients", "recipients", "delayedRecipients")
        },
    )


def parse_envelope(event: dict[str, Any]) -> list[FeedbackEvent]:
    """Every SES event in a Lambda event (EventBridge, SNS, or bare)."""
    if "Records" in event:
        out = []
        for record in event["Records"]:
            sns = record.get("Sns") or {}
            if sns.get("Type") == "SubscriptionConfirmation":
                continue
            try:
                message = json.loads(sns.get("Message") or "{}")
            except json.JSONDecodeError as exc:
                raise FeedbackParseError(f"SNS message is not JSON: {exc.msg}") from None
            out.append(parse_ses_event(message))
        return out
    if event.get("source") == "aws.ses" and isinstance(event.get("detail"), dict):
        detail = event["detail"]
        if "eventType" not in detail and event.get("detail-type") in _TYPE_BY_DETAIL:
            detail = {**detail, "eventType": _TYPE_BY_DETAIL[event["detail-type"]]}
        return [parse_ses_event(detail)]
    if "eventType" in event or "notificationType" in event:
        return [parse_ses_event(event)]
    raise FeedbackParseError("not an SES event envelope (EventBridge, SNS or bare)")


def feedback_may_replace(current: str | None, new: str) -> bool:
    """Status precedence for feedback: never regress, except that SES refusing a message it
    had accepted (Reject, Rendering Failure) turns ``sent`` (or a campaign claim still
    ``sending``) into ``failed``."""
    if new == status.FAILED:
        return current in (None, status.QUEUED, status.SENDING, status.SENT)
    return status.may_replace(current, new)
