"""The tracking item of an email (key ``emailId``): status, timeline, facts, the ledger.

Every applied event is recorded once: its key goes into the item's ``eventKeys`` set in
the same conditional write that appends it to the ``timeline``, so a duplicate delivery is
a no-op. The status moves only forward (``feedback_may_replace``): the same write carries
a condition listing the statuses it may replace, and increments ``statusSequence``, which
orders one email's status events (see ADR 0007).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sesflow_core import status
from sesflow_core.clock import now_iso
from sesflow_core.feedback import feedback_may_replace
from sesflow_core.request import SendRequest

from . import events, ledger

STATUS_EVENT = "Email Status Changed"


@dataclass
class Applied:
    first_time: bool  # False: this event was applied before (duplicate delivery)
    tracked: bool  # False: no tracking item for this emailId
    changed: bool = False
    previous: str | None = None
    item: dict[str, Any] | None = None
    sequence: int | None = None  # the email's status sequence after this write


def s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def open_item(ddb: Any, table: str, request: SendRequest, expires_at: int) -> None:
    """Create the tracking item as ``queued``; never overwrite what an earlier run wrote. A
    scheduled send also records the time it is for (``scheduledFor``)."""
    values: dict[str, Any] = {
        ":queued": {"S": status.QUEUED},
        ":rcpt": {"S": request.recipient},
        ":tpl": {"S": request.template},
        ":topic": {"S": request.topic},
        ":now": {"S": now_iso()},
        ":exp": {"N": str(expires_at)},
    }
    sets = [
        "#s = if_not_exists(#s, :queued)",
        "recipient = if_not_exists(recipient, :rcpt)",
        "template = if_not_exists(template, :tpl)",
        "topic = if_not_exists(topic, :topic)",
        "createdAt = if_not_exists(createdAt, :now)",
        "expiresAt = if_not_exists(expiresAt, :exp)",
    ]
    if request.campaignId:
        values[":cid"] = {"S": request.campaignId}
        sets.append("campaignId = if_not_exists(campaignId, :cid)")
    if request.sendAt or request.scheduledFor:
        values[":sf"] = {"S": request.sendAt or request.scheduledFor}
        sets.append("scheduledFor = if_not_exists(scheduledFor, :sf)")
    ddb.update_item(
        TableName=table,
        Key={"emailId": {"S": request.emailId}},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=values,
    )


def record_event(
    ddb: Any,
    table: str,
    email_id: str,
    event_key: str,
    entry: dict[str, Any],
    new_status: str | None,
    reason: str | None,
    extra: dict[str, str] | None = None,
) -> Applied:
    """Apply one event: one conditional write in the common case.

    The write appends the timeline entry, adds the event key and moves the status, on
    condition that the key is new and the current status may be replaced. When that fails
    (a duplicate, an untracked email, or an out-of-order event), a second write records the
    timeline entry alone, on condition that the key is new.
    """
    names = {"#k": "eventKeys"}
    values: dict[str, Any] = {
        ":k": {"S": event_key},
        ":kset": {"SS": [event_key]},
        ":now": {"S": now_iso()},
        ":entry": {"L": [{"S": json.dumps(entry, separators=(",", ":"))}]},
        ":empty": {"L": []},
    }
    sets = ["timeline = list_append(if_not_exists(timeline, :empty), :entry)", "lastEventAt = :now"]
    for i, (k, v) in enumerate((extra or {}).items()):
        names[f"#x{i}"] = k
        values[f":x{i}"] = {"S": v}
        sets.append(f"#x{i} = :x{i}")
    fresh = "attribute_exists(emailId) AND NOT contains(#k, :k)"
    if new_status:
        applied = _record_with_status(ddb, table, email_id, new_status, reason, names, values, sets, fresh)
        if applied is not None:
            return applied
    try:
        item = ddb.update_item(
            TableName=table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression="SET " + ", ".join(sets) + " ADD #k :kset",
            ConditionExpression=fresh,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
    except ddb.exceptions.ConditionalCheckFailedException:
        exists = "Item" in ddb.get_item(
            TableName=table, Key={"emailId": {"S": email_id}}, ProjectionExpression="emailId"
        )
        return Applied(first_time=not exists, tracked=exists)
    return Applied(first_time=True, tracked=True, item=item)


def _record_with_status(
    ddb: Any,
    table: str,
    email_id: str,
    new_status: str,
    reason: str | None,
    names: dict[str, str],
    values: dict[str, Any],
    sets: list[str],
    fresh: str,
) -> Applied | None:
    replaceable = [st for st in status.RANK if feedback_may_replace(st, new_status)]
    status_values = {
        **values,
        ":new": {"S": new_status},
        ":none": {"S": "none"},
        ":one": {"N": "1"},
        **{f":r{i}": {"S": st} for i, st in enumerate(replaceable)},
    }
    status_sets = [*sets, "previousStatus = if_not_exists(#s, :none)", "#s = :new", "updatedAt = :now"]
    if reason:
        status_values[":reason"] = {"S": reason[:1000]}
        status_sets.append("reason = :reason")
    in_list = ", ".join(f":r{i}" for i in range(len(replaceable)))
    try:
        old = ddb.update_item(
            TableName=table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression="SET " + ", ".join(status_sets) + " ADD #k :kset, statusSequence :one",
            ConditionExpression=f"{fresh} AND (attribute_not_exists(#s) OR #s IN ({in_list}))",
            ExpressionAttributeNames={**names, "#s": "status"},
            ExpressionAttributeValues=status_values,
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})
    except ddb.exceptions.ConditionalCheckFailedException:
        return None
    previous = s(old, "status")
    # the ADD above is atomic with the read of the old item: this is the new value
    sequence = int(old.get("statusSequence", {}).get("N", "0")) + 1
    return Applied(
        True,
        True,
        changed=previous != new_status,
        previous=previous,
        item={**old, "status": {"S": new_status}},
        sequence=sequence,
    )


@dataclass
class Cancel:
    """What :func:`cancel_scheduled` found: ``item`` is the item after the write when it
    cancelled, else as it was (None: no such email)."""

    cancelled: bool  # this write cancelled it
    item: dict[str, Any] | None

    @property
    def status(self) -> str | None:
        return s(self.item, "status") if self.item else None

    @property
    def sequence(self) -> int | None:
        value = (self.item or {}).get("statusSequence", {}).get("N")
        return int(value) if value is not None else None


def cancel_scheduled(ddb: Any, table: str, email_id: str, reason: str) -> Cancel:
    """``scheduled`` -> ``cancelled`` and the send ledger closed (``sendState`` cancelled), in
    one conditional write: only while the email is scheduled and its ledger free (absent or
    ``retryable``), so it cannot meet a send in progress or done. A schedule that fires later
    finds the ledger closed (``EmailCancelled``) and sends nothing."""
    try:
        item = ddb.update_item(
            TableName=table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression=(
                "SET previousStatus = #s, #s = :cancelled, reason = :reason, updatedAt = :now, "
                "sendState = :closed, sendFinishedAt = :now ADD statusSequence :one"
            ),
            ConditionExpression="#s = :scheduled AND (attribute_not_exists(sendState) OR sendState = :retryable)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":cancelled": {"S": status.CANCELLED},
                ":scheduled": {"S": status.SCHEDULED},
                ":closed": {"S": ledger.CANCELLED},
                ":retryable": {"S": ledger.RETRYABLE},
                ":reason": {"S": reason[:1000]},
                ":now": {"S": now_iso()},
                ":one": {"N": "1"},
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )["Attributes"]
    except ddb.exceptions.ConditionalCheckFailedException as exc:
        return Cancel(False, exc.response.get("Item") or None)
    return Cancel(True, item)


def find_email_id(ddb: Any, table: str, message_id: str) -> str | None:
    """The emailId of an SES message (identity notifications carry no tags)."""
    resp = ddb.query(
        TableName=table,
        IndexName="byMessageId",
        KeyConditionExpression="messageId = :m",
        ExpressionAttributeValues={":m": {"S": message_id}},
        Limit=1,
    )
    items = resp.get("Items", [])
    return s(items[0], "emailId") if items else None


def emit_status(
    events_client: Any,
    bus: str,
    email_id: str,
    new_status: str,
    previous: str | None,
    item: dict[str, Any] | None,
    reason: str | None,
    timestamp: str | None = None,
    sequence: int | None = None,
) -> None:
    """Announce a status change. ``sequence`` orders one email's events (each status write
    increments it atomically); ``timestamp`` is when the change happened (for SES
    feedback, the SES event's own time)."""
    item = item or {}
    events.put(
        events_client,
        bus,
        STATUS_EVENT,
        {
            "emailId": email_id,
            "status": new_status,
            "previousStatus": previous,
            "sequence": sequence,
            "messageId": s(item, "messageId"),
            "template": s(item, "template"),
            "topic": s(item, "topic"),
            "campaignId": s(item, "campaignId"),
            "reason": reason,
            "timestamp": timestamp or now_iso(),
        },
    )
