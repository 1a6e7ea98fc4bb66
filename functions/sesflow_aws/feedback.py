"""Apply one parsed SES event: tracking (timeline, status), campaign counters, the
suppression policy, the status event. Duplicate and out-of-order deliveries are harmless:
each event is applied once per email (``eventKeys``) and statuses never regress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sesflow_core import feedback as fb
from sesflow_core import ids
from sesflow_core import suppression as sp
from sesflow_core.clock import now_iso

from . import suppression, tracking
from .settings import Settings

Client = Callable[[str], Any]

#: SES event type -> campaign counter (what the gates read; deliveries are not counted: a
#: write per delivered email costs more than the number is worth)
COUNTERS = {"Bounce": "bounced", "Complaint": "complained", "Reject": "rejected"}


def policy(settings: Settings) -> sp.PolicySettings:
    return sp.PolicySettings(settings.complaint_scope, settings.soft_bounce_threshold, settings.soft_bounce_window_days)


def apply_policy(client: Client, settings: Settings, event: fb.FeedbackEvent) -> int:
    """Suppress what the policy says; returns how many entries were written."""
    rules, ddb, written = policy(settings), client("dynamodb"), 0
    for decision in sp.decide(event, rules):
        if decision.action == "count-soft-bounce" and not suppression.count_soft_bounce(
            ddb, settings.suppression_table, decision.address, rules
        ):
            continue
        suppression.add(
            ddb,
            settings.suppression_table,
            decision.address,
            decision.topic,
            decision.reason,
            f"{event.kind}:{event.message_id}",
        )
        written += 1
        if settings.sync_account_suppression:
            client("sesv2").put_suppressed_destination(
                EmailAddress=decision.address, Reason="COMPLAINT" if event.kind == "Complaint" else "BOUNCE"
            )
    return written


def bump_counter(client: Client, settings: Settings, event: fb.FeedbackEvent) -> None:
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


def skipped(settings: Settings, event: fb.FeedbackEvent) -> str | None:
    """Why this event is not applied at all, or None."""
    if event.configuration_set and event.configuration_set != settings.configuration_set:
        return "another configuration set"  # the rules filter on the tag: this is the second line
    if event.campaign_id and (
        event.kind == "Send" or (event.kind == "Delivery" and not settings.campaign_delivery_tracking)
    ):
        return "campaign send/delivery not tracked"  # the batch sender recorded the send
    return None


def process(client: Client, settings: Settings, event: fb.FeedbackEvent) -> dict[str, Any]:
    result: dict[str, Any] = {
        "emailId": event.email_id,
        "event": event.kind,
        "duplicate": False,
        "statusChanged": False,
    }
    reason = skipped(settings, event)
    if reason:
        return {**result, "ignored": reason}
    ddb = client("dynamodb")
    email_id = event.email_id or tracking.find_email_id(ddb, settings.tracking_table, event.message_id)
    applied = tracking.Applied(first_time=True, tracked=False)
    if email_id:
        applied = tracking.record_event(
            ddb,
            settings.tracking_table,
            email_id,
            event.key,
            event.summary(),
            event.status,
            event.reason,
            event.facts(),
        )
    result["emailId"] = email_id
    if not applied.first_time:
        return {**result, "duplicate": True}
    if not (applied.tracked or event.configuration_set):
        # an identity notification (no configuration-set tag) for an email this stack does not
        # track: it may be another stack's, so it changes no suppression entry or counter
        return {**result, "ignored": "not tracked by this stack"}
    bump_counter(client, settings, event)
    result["suppressed"] = apply_policy(client, settings, event)
    if applied.changed and email_id and event.status:
        tracking.emit_status(
            client("events"),
            settings.event_bus,
            email_id,
            event.status,
            applied.previous,
            applied.item,
            event.reason,
            event.timestamp,
            applied.sequence,
        )
    return {**result, "statusChanged": applied.changed, "tracked": applied.tracked}
