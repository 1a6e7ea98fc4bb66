"""Tracking-item updates shared by the feedback and unsubscribe functions.

Every applied event is recorded once: its key goes into the item's ``eventKeys`` set in
the same conditional write that appends it to the ``timeline``, so a duplicate delivery is
a no-op. The status moves only forward (``feedback_may_replace``): the same write carries
a condition listing the statuses it may replace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sesflow_core import status
from sesflow_core.feedback import feedback_may_replace

from ._common import Settings, client, now_iso

STATUS_EVENT = "Email Status Changed"


@dataclass
class Applied:
    first_time: bool  # False: this event was applied before (duplicate delivery)
    tracked: bool  # False: no tracking item for this emailId
    changed: bool = False
    previous: str | None = None
    item: dict[str, Any] | None = None
    sequence: int | None = None  # the email's status sequence after this write


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def record_event(settings: Settings, email_id: str, event_key: str, entry: dict[str, Any],
                 new_status: str | None, reason: str | None,
                 extra: dict[str, str] | None = None) -> Applied:
    """Apply one event: one conditional write in the common case.

    The write appends the timeline entry, adds the event key and moves the status, on
    condition that the key is new and the current status may be replaced. When that fails
    (a duplicate, an untracked email, or an out-of-order event), a second write records the
    timeline entry alone, on condition that the key is new.
    """
    ddb = client("dynamodb")
    names = {"#k": "eventKeys"}
    values: dict[str, Any] = {
        ":k": {"S": event_key}, ":kset": {"SS": [event_key]}, ":now": {"S": now_iso()},
        ":entry": {"L": [{"S": json.dumps(entry, separators=(",", ":"))}]}, ":empty": {"L": []},
    }
    sets = ["timeline = list_append(if_not_exists(timeline, :empty), :entry)", "lastEventAt = :now"]
    for i, (k, v) in enumerate((extra or {}).items()):
        names[f"#x{i}"] = k
        values[f":x{i}"] = {"S": v}
        sets.append(f"#x{i} = :x{i}")
    fresh = "attribute_exists(emailId) AND NOT contains(#k, :k)"
    if new_status:
        replaceable = [s for s in status.RANK if feedback_may_replace(s, new_status)]
        status_values = {**values, ":new": {"S": new_status}, ":none": {"S": "none"}, ":one": {"N": "1"},
                         **{f":r{i}": {"S": s} for i, s in enumerate(replaceable)}}
        status_sets = [*sets, "previousStatus = if_not_exists(#s, :none)", "#s = :new", "updatedAt = :now"]
        if reason:
            status_values[":reason"] = {"S": reason[:1000]}
            status_sets.append("reason = :reason")
        in_list = ", ".join(f":r{i}" for i in range(len(replaceable)))
        try:
            old = ddb.update_item(
                TableName=settings.tracking_table, Key={"emailId": {"S": email_id}},
                UpdateExpression="SET " + ", ".join(status_sets) + " ADD #k :kset, statusSequence :one",
                ConditionExpression=f"{fresh} AND (attribute_not_exists(#s) OR #s IN ({in_list}))",
                ExpressionAttributeNames={**names, "#s": "status"}, ExpressionAttributeValues=status_values,
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
            previous = _s(old, "status")
            item = {**old, "status": {"S": new_status}}
            # the ADD above is atomic with the read of the old item: this is the new value
            sequence = int(old.get("statusSequence", {}).get("N", "0")) + 1
            return Applied(True, True, changed=previous != new_status, previous=previous, item=item,
                           sequence=sequence)
        except ddb.exceptions.ConditionalCheckFailedException:
            pass
    try:
        item = ddb.update_item(
            TableName=settings.tracking_table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression="SET " + ", ".join(sets) + " ADD #k :kset",
            ConditionExpression=fresh,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
    except ddb.exceptions.ConditionalCheckFailedException:
        exists = "Item" in ddb.get_item(TableName=settings.tracking_table, Key={"emailId": {"S": email_id}},
                                         ProjectionExpression="emailId")
        return Applied(first_time=not exists, tracked=exists)
    return Applied(first_time=True, tracked=True, item=item)


def find_email_id(settings: Settings, message_id: str) -> str | None:
    """The emailId of an SES message (identity notifications carry no tags)."""
    resp = client("dynamodb").query(
        TableName=settings.tracking_table, IndexName="byMessageId",
        KeyConditionExpression="messageId = :m", ExpressionAttributeValues={":m": {"S": message_id}},
        Limit=1,
    )
    items = resp.get("Items", [])
    return _s(items[0], "emailId") if items else None


def emit_status(settings: Settings, email_id: str, status: str, previous: str | None, item: dict[str, Any] | None,
                reason: str | None, timestamp: str | None = None, sequence: int | None = None) -> None:
    """Announce a status change. ``sequence`` orders one email's events (each status write
    increments it atomically); ``timestamp`` is when the change happened (for SES
    feedback, the SES event's own time)."""
    item = item or {}
    detail = {
        "emailId": email_id, "status": status, "previousStatus": previous, "sequence": sequence,
        "messageId": _s(item, "messageId"), "template": _s(item, "template"), "topic": _s(item, "topic"),
        "campaignId": _s(item, "campaignId"), "reason": reason, "timestamp": timestamp or now_iso(),
    }
    client("events").put_events(Entries=[{
        "EventBusName": settings.event_bus, "Source": "sesflow", "DetailType": STATUS_EVENT,
        "Detail": json.dumps(detail),
    }])
