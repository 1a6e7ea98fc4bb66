"""Apply one parsed SES event: tracking (timeline, status), campaign counters, the
suppression policy, the status event. Duplicate and out-of-order deliveries are harmless:
each event is applied once per email (``eventKeys``) and statuses never regress.

Every effect survives the function dying at any point (a crash, a timeout, DynamoDB
throttling: Lambda's asynchronous retry delivers the event again):

1. The tracking write that records the event key (``tracking.record_event``) also adds it to
   ``pendingEffects``, and keeps what the status event needs (the previous status, the
   sequence). A retry that finds the key recorded reads the item: still pending means an
   earlier attempt died before its effects were done, and this one applies them; otherwise
   it is a true duplicate.
2. The effects that are safe to repeat come next: the SES account suppression list
   (``PutSuppressedDestination``) and the status event (a repeated one carries the same
   ``sequence``; consumers apply ``(emailId, sequence)`` once, ADR 0007).
3. Then the counted effects in one ``TransactWriteItems``: the campaign stage counter, the
   suppression entries (``hits``), the soft-bounce count, and the removal of the key from
   ``pendingEffects`` on condition that it is still there. Either all of them are applied
   or none; a condition failure on the tracking item means another attempt (a duplicate
   delivery running at the same time) applied them first: this one is a duplicate. Any
   other cancellation (a conflicting transaction, throttling) raises, and Lambda retries.

A soft bounce decides whether it reaches the threshold from the count it read before the
transaction; the transaction writes that count + 1 on condition that the count's
``revision`` is still the one read. Two soft bounces of one address applied at the same
time therefore cannot both count from the same value (both below the threshold, say): the
second fails that condition, reads again and decides again (:data:`PLAN_ATTEMPTS`).

An event with nothing to count and no status change (a single send's ``Send``) is recorded
without ``pendingEffects``; one whose only effect is the status event ends with a plain
conditional ``UpdateItem`` instead of a transaction.

An event of this stack's configuration set for an email without a tracking item (expired,
or sent outside the send paths) has no item to hold the pending key: its transaction
creates a marker item ``feedback#<event key>`` in the tracking table (conditional on its
absence, expiring with the tracking retention), so its counted effects are applied once too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
COUNTERS = {"Bounce": "bounced", "Complaint": "complained", "Reject": "rejected", "Open": "opened", "Click": "clicked"}
#: counted per stage once per email (unique opens and clicks: the email's first one)
UNIQUE = frozenset({"Open", "Click"})
#: a transaction whose soft-bounce count was written by another event meanwhile is planned
#: again (read, decide, write) at most this many times; then the error goes to Lambda's retry
PLAN_ATTEMPTS = 4
_CONDITION_FAILED = "ConditionalCheckFailed"


def policy(settings: Settings) -> sp.PolicySettings:
    return sp.PolicySettings(settings.complaint_scope, settings.soft_bounce_threshold, settings.soft_bounce_window_days)


def decisions(settings: Settings, event: fb.FeedbackEvent) -> list[sp.Decision]:
    """The policy's decisions, each (address, action, topic) once: a transaction may not
    write one item twice."""
    return list({(d.address, d.action, d.topic): d for d in sp.decide(event, policy(settings))}.values())


def counter_update(settings: Settings, event: fb.FeedbackEvent) -> dict[str, Any] | None:
    """The campaign stage counter's increment (an ``Update`` of the transaction), or None."""
    counter = COUNTERS.get(event.kind)
    if not (counter and event.campaign_id):
        return None
    return {
        "TableName": settings.tracking_table,
        "Key": {"emailId": {"S": ids.stage_counter_key(event.campaign_id, event.stage)}},
        "UpdateExpression": "ADD #c :one SET updatedAt = :now",
        "ExpressionAttributeNames": {"#c": counter},
        "ExpressionAttributeValues": {":one": {"N": "1"}, ":now": {"S": now_iso()}},
    }


def marker_key(event_key: str) -> str:
    """The tracking-table key of the once-only marker of an event without a tracking item."""
    return f"feedback#{event_key}"


def marker_update(settings: Settings, event_key: str) -> dict[str, Any]:
    """Create the marker; fails its condition when the event was applied before."""
    return {
        "TableName": settings.tracking_table,
        "Key": {"emailId": {"S": marker_key(event_key)}},
        "UpdateExpression": "SET appliedAt = :now, expiresAt = :exp",
        "ConditionExpression": "attribute_not_exists(emailId)",
        "ExpressionAttributeValues": {":now": {"S": now_iso()}, ":exp": {"N": str(settings.expires_at())}},
    }


@dataclass
class Plan:
    """The counted effects of one event, ready to be written in one transaction (at most 100
    items: this stack's emails have one recipient; SES allows 50, 2 items each at worst)."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    soft_bounces: set[int] = field(default_factory=set)  # indexes in ``updates``
    suppressed: list[str] = field(default_factory=list)  # one address per entry written


def plan(
    client: Client, settings: Settings, event: fb.FeedbackEvent, todo: list[sp.Decision], counter: bool = True
) -> Plan:
    """The counter, the suppression entries and the soft-bounce counts of ``event``.

    A soft bounce reads the address's count first (:func:`suppression.soft_bounce`): the
    entry is part of the plan when this bounce reaches the threshold."""
    out, ddb = Plan(), client("dynamodb")
    update = counter_update(settings, event) if counter else None
    if update:
        out.updates.append(update)
        if event.variant:  # an A/B sample's email: its variant's counter too (the winner's numbers)
            variant_key = ids.stage_counter_key(str(event.campaign_id), f"{event.stage}#variant#{event.variant}")
            out.updates.append({**update, "Key": {"emailId": {"S": variant_key}}})
    for decision in todo:
        if decision.action == "count-soft-bounce":
            soft = suppression.soft_bounce(ddb, settings.suppression_table, decision.address, policy(settings))
            out.soft_bounces.add(len(out.updates))
            out.updates.append(soft.update)
            if not soft.exceeded:
                continue
        out.updates.append(
            suppression.entry_update(
                settings.suppression_table,
                decision.address,
                decision.topic,
                decision.reason,
                f"{event.kind}:{event.message_id}",
            )
        )
        out.suppressed.append(decision.address)
    return out


def apply_effects(
    client: Client,
    settings: Settings,
    event: fb.FeedbackEvent,
    todo: list[sp.Decision],
    anchor: dict[str, Any],
    counter: bool = True,
) -> int | None:
    """Sync the account suppression list, then write the counted effects with ``anchor`` (the
    write that says this event's effects are done) in one transaction.

    Returns how many suppression entries were written, or None when another attempt applied
    them first (``anchor`` failed its condition)."""
    ddb, synced = client("dynamodb"), set[str]()
    for attempt in range(PLAN_ATTEMPTS):
        todo_plan = plan(client, settings, event, todo, counter)
        if settings.sync_account_suppression:  # idempotent: before the transaction ends the event
            for address in dict.fromkeys(todo_plan.suppressed):
                if address in synced:
                    continue
                client("sesv2").put_suppressed_destination(
                    EmailAddress=address, Reason="COMPLAINT" if event.kind == "Complaint" else "BOUNCE"
                )
                synced.add(address)
        writes = [anchor, *todo_plan.updates]
        if len(writes) == 1:
            try:
                ddb.update_item(**anchor)
            except ddb.exceptions.ConditionalCheckFailedException:
                return None
            return 0
        try:
            ddb.transact_write_items(TransactItems=[{"Update": w} for w in writes])
        except ddb.exceptions.TransactionCanceledException as exc:
            codes = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if codes[:1] == [_CONDITION_FAILED]:
                return None  # the event's effects are done already
            recount = [i + 1 for i in todo_plan.soft_bounces]  # + 1: the anchor comes first
            if (
                attempt + 1 < PLAN_ATTEMPTS
                and any(codes[i] == _CONDITION_FAILED for i in recount if i < len(codes))
                and all(c in (None, "None", _CONDITION_FAILED) for c in codes)
            ):
                continue  # another soft bounce of the address was counted meanwhile: plan again
            raise
        return len(todo_plan.suppressed)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _count_of(item: dict[str, Any] | None, event: fb.FeedbackEvent) -> int:
    engagement = event.engagement()
    if not (item and engagement):
        return 1
    return int((item.get(engagement[0]) or {}).get("N", "1"))


def skipped(settings: Settings, event: fb.FeedbackEvent) -> str | None:
    """Why this event is not applied at all, or None."""
    if event.configuration_set and not settings.is_ours(event.configuration_set):
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
    todo = decisions(settings, event)
    counted = bool(todo) or counter_update(settings, event) is not None
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
            pending=counted or event.status is not None,
            count=event.engagement(),
        )
    result["emailId"] = email_id
    if not (applied.first_time or applied.pending):
        return {**result, "duplicate": True}
    if not (applied.tracked or event.configuration_set):
        # an identity notification (no configuration-set tag) for an email this stack does not
        # track: it may be another stack's, so it changes no suppression entry or counter
        return {**result, "ignored": "not tracked by this stack"}
    if applied.tracked and email_id:
        if not applied.pending:  # nothing to count, no status change (a single send's Send)
            return {**result, "tracked": True, "suppressed": 0}
        anchor = tracking.effects_done(settings.tracking_table, email_id, event.key)
    elif counted:
        anchor = marker_update(settings, event.key)
    else:
        return {**result, "tracked": False, "suppressed": 0}
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
    # an open or a click counts for the stage once per email: its first (unique opens, clicks)
    first = event.kind not in UNIQUE or _count_of(applied.item, event) <= 1
    written = apply_effects(client, settings, event, todo, anchor, counter=first)
    if written is None:
        return {**result, "duplicate": True}
    if applied.resumed:
        result["resumed"] = True
    return {**result, "statusChanged": applied.changed, "tracked": applied.tracked, "suppressed": written}
