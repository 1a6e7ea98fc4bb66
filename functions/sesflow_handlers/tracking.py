"""Tracking-item updates shared by the feedback and unsubscribe functions.

Every applied event is recorded once: its key goes into the item's ``eventKeys`` set in
the same conditional write that appends it to the ``timeline``, so a duplicate delivery is
a no-op. The status then moves only forward (``feedback_may_replace``), with an
optimistic condition on the status it replaces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

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


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def record_event(settings: Settings, email_id: str, event_key: str, entry: dict[str, Any],
                 new_status: str | None, reason: str | None,
                 extra: dict[str, str] | None = None) -> Applied:
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
    try:
        item: dict[str, Any] = ddb.update_item(
            TableName=settings.tracking_table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression="SET " + ", ".join(sets) + " ADD #k :kset",
            ConditionExpression="attribute_exists(emailId) AND NOT contains(#k, :k)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
    except ddb.exceptions.ConditionalCheckFailedException:
        exists = "Item" in ddb.get_item(TableName=settings.tracking_table, Key={"emailId": {"S": email_id}},
                                         ProjectionExpression="emailId")
        return Applied(first_time=not exists, tracked=exists)
    applied = Applied(first_time=True, tracked=True, item=item)
    if new_status:
        set_status(settings, email_id, new_status, reason, applied)
    return applied


def set_status(settings: Settings, email_id: str, new_status: str, reason: str | None, applied: Applied) -> None:
    """Move the status forward if precedence allows (optimistic on the current status)."""
    ddb = client("dynamodb")
    item = applied.item or {}
    for _ in range(5):
        current = _s(item, "status")
        if current == new_status or not feedback_may_replace(current, new_status):
            return
        values: dict[str, Any] = {":new": {"S": new_status}, ":now": {"S": now_iso()},
                                  ":old": {"S": current or "none"}}
        update = "SET #s = :new, previousStatus = :old, updatedAt = :now"
        if reason:
            values[":reason"] = {"S": reason[:1000]}
            update += ", reason = :reason"
        try:
            ddb.update_item(
                TableName=settings.tracking_table, Key={"emailId": {"S": email_id}},
                UpdateExpression=update,
                ConditionExpression="#s = :old" if current else "attribute_not_exists(#s)",
                ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues=values,
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            item = ddb.get_item(TableName=settings.tracking_table, Key={"emailId": {"S": email_id}},
                                ConsistentRead=True).get("Item", {})
            continue
        applied.changed, applied.previous = True, current
        return


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
                reason: str | None, timestamp: str | None = None) -> None:
    item = item or {}
    detail = {
        "emailId": email_id, "status": status, "previousStatus": previous,
        "messageId": _s(item, "messageId"), "template": _s(item, "template"), "topic": _s(item, "topic"),
        "campaignId": _s(item, "campaignId"), "reason": reason, "timestamp": timestamp or now_iso(),
    }
    client("events").put_events(Entries=[{
        "EventBusName": settings.event_bus, "Source": "sesflow", "DetailType": STATUS_EVENT,
        "Detail": json.dumps(detail),
    }])
