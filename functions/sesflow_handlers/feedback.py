"""Feedback: SES events -> tracking status, suppression list, campaign counters, status events.

Input: an EventBridge event from SES (``source: aws.ses``), an SNS event (event publishing
or identity notifications), or a bare SES event. Duplicate and out-of-order deliveries are
harmless: each SES event is applied once per email (``eventKeys``) and statuses never
regress. An envelope that is not an SES event raises ``FeedbackParseError`` (it ends in the
dead-letter queue, where it can be inspected).
"""

from __future__ import annotations

import os
import time
from typing import Any

from sesflow_core import feedback as fb
from sesflow_core import ids
from sesflow_core import suppression as sp

from . import tracking
from ._common import Settings, client, logger, metrics, now_iso

#: SES event type -> campaign counter
#: What the gates read. (Deliveries are not counted: a write per delivered email costs more
#: than the number is worth; the campaign sender counts what SES accepted.)
COUNTERS = {"Bounce": "bounced", "Complaint": "complained", "Reject": "rejected"}


def policy(settings: Settings) -> sp.PolicySettings:
    return sp.PolicySettings(settings.complaint_scope, settings.soft_bounce_threshold,
                             settings.soft_bounce_window_days)


def suppress(settings: Settings, address: str, topic: str, reason: str, source: str) -> None:
    client("dynamodb").update_item(
        TableName=settings.suppression_table,
        Key={"address": {"S": address}, "topic": {"S": topic}},
        UpdateExpression=sp.ENTRY_UPDATE,
        ExpressionAttributeValues=sp.entry_values(reason, source, now_iso()),
    )
    metrics.add_metric(name="AddressesSuppressed", unit="Count", value=1)


def count_soft_bounce(settings: Settings, address: str, rules: sp.PolicySettings) -> bool:
    """Record a soft bounce; True when the address crossed the threshold in the window."""
    now = time.time()
    ddb = client("dynamodb")
    item = ddb.update_item(
        TableName=settings.suppression_table,
        Key={"address": {"S": address}, "topic": {"S": sp.SOFT_BOUNCES}},
        UpdateExpression="SET bounces = list_append(if_not_exists(bounces, :empty), :ts), lastSeen = :now",
        ExpressionAttributeValues={":ts": {"L": [{"N": str(int(now))}]}, ":empty": {"L": []},
                                   ":now": {"S": now_iso()}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    stamps = [float(v["N"]) for v in item.get("bounces", {}).get("L", [])]
    exceeded, recent = sp.soft_bounces_exceeded(stamps, now, rules)
    if len(recent) < len(stamps):  # keep the list to the rolling window
        ddb.update_item(
            TableName=settings.suppression_table,
            Key={"address": {"S": address}, "topic": {"S": sp.SOFT_BOUNCES}},
            UpdateExpression="SET bounces = :recent",
            ExpressionAttributeValues={":recent": {"L": [{"N": str(int(t))} for t in recent]}},
        )
    return exceeded


def apply_policy(settings: Settings, event: fb.FeedbackEvent) -> None:
    rules = policy(settings)
    for decision in sp.decide(event, rules):
        source = f"{event.kind}:{event.message_id}"
        if decision.action == "count-soft-bounce" and not count_soft_bounce(settings, decision.address, rules):
            continue
        suppress(settings, decision.address, decision.topic, decision.reason, source)
        if settings.sync_account_suppression:
            client("sesv2").put_suppressed_destination(
                EmailAddress=decision.address, Reason="COMPLAINT" if event.kind == "Complaint" else "BOUNCE")


def bump_counter(settings: Settings, event: fb.FeedbackEvent) -> None:
    counter = COUNTERS.get(event.kind)
    if not (counter and event.campaign_id):
        return
    client("dynamodb").update_item(
        TableName=settings.tracking_table,
        Key={"emailId": {"S": ids.stage_counter_key(event.campaign_id, event.stage)}},
        UpdateExpression="ADD #c :one SET updatedAt = :now",
        ExpressionAttributeNames={"#c": counter},
        ExpressionAttributeValues={":one": {"N": "1"}, ":now": {"S": now_iso()}},
    )


def process(settings: Settings, event: fb.FeedbackEvent) -> dict[str, Any]:
    if event.configuration_set and event.configuration_set != settings.configuration_set:
        # another stack's email (the rules filter on the tag; this is the second line)
        metrics.add_metric(name="FeedbackForeign", unit="Count", value=1)
        return {"emailId": event.email_id, "event": event.kind, "ignored": "another configuration set"}
    if event.campaign_id and (event.kind == "Send" or (
            event.kind == "Delivery" and os.environ.get("CAMPAIGN_DELIVERY_TRACKING", "true") == "false")):
        # a campaign's sender already recorded the send; deliveries are tracked only when asked
        return {"emailId": event.email_id, "event": event.kind, "duplicate": False, "statusChanged": False}
    email_id = event.email_id or tracking.find_email_id(settings, event.message_id)
    extra: dict[str, str] = {}
    if event.bounce_type:
        extra = {"bounceType": event.bounce_type, "bounceSubType": event.bounce_subtype or ""}
        if event.diagnostics:
            extra["diagnosticCode"] = "; ".join(sorted(set(event.diagnostics.values())))[:1000]
    if event.complaint_type:
        extra["complaintFeedbackType"] = event.complaint_type
    applied = tracking.Applied(first_time=True, tracked=False)
    if email_id:
        applied = tracking.record_event(settings, email_id, event.key, event.summary(), event.status,
                                        event.reason, extra)
    if not applied.first_time:
        metrics.add_metric(name="FeedbackDuplicates", unit="Count", value=1)
        return {"emailId": email_id, "event": event.kind, "duplicate": True}
    if not (applied.tracked or event.configuration_set):
        # an identity notification (no configuration-set tag) for an email this stack does not
        # track: it may be another stack's, so it changes no suppression entry or counter
        logger.info("feedback for an untracked email ignored", extra={"event": event.kind})
        return {"emailId": email_id, "event": event.kind, "ignored": "not tracked by this stack"}
    bump_counter(settings, event)
    apply_policy(settings, event)
    if applied.changed and email_id and event.status:
        tracking.emit_status(settings, email_id, event.status, applied.previous, applied.item, event.reason,
                             event.timestamp, applied.sequence)
    metrics.add_metric(name=f"Feedback{event.kind.replace(' ', '')}", unit="Count", value=1)
    logger.info("feedback applied", extra={"emailId": email_id, "event": event.kind, "tracked": applied.tracked,
                                           "statusChanged": applied.changed})
    return {"emailId": email_id, "event": event.kind, "duplicate": False, "statusChanged": applied.changed}


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    try:
        parsed = fb.parse_envelope(event)
    except fb.FeedbackParseError as exc:
        logger.warning("not an SES event", extra={"reason": str(exc)})
        raise
    return {"results": [process(settings, ev) for ev in parsed]}
