"""The tracking item of an email (key ``emailId``): status, timeline, facts, the ledger.

Every applied event is recorded once: its key goes into the item's ``eventKeys`` set in
the same conditional write that appends it to the ``timeline``, so a duplicate delivery is
a no-op. The status moves only forward (``feedback_may_replace``): the same write carries
a condition listing the statuses it may replace, and increments ``statusSequence``, which
orders one email's status events (see ADR 0007).

An event whose effects live elsewhere (campaign counters, suppression entries, the status
event) is recorded *pending*: the same write adds its key to ``pendingEffects`` (and, for a
status write, keeps what its status event needs: the previous status and the sequence, in
two attributes named after the key). The caller applies the effects and then removes the
key with :func:`effects_done` (in the transaction of the counted effects); a retry that
finds the key still pending applies them again (see ``sesflow_aws.feedback``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sesflow_core import status
from sesflow_core.clock import now_iso
from sesflow_core.feedback import feedback_may_replace
from sesflow_core.request import SendRequest

from . import events, ledger

STATUS_EVENT = "Email Status Changed"
#: ``previousStatus`` of a first status write (there was none)
NO_STATUS = "none"
#: the string set of event keys recorded whose effects are not all applied yet
PENDING = "pendingEffects"


@dataclass
class Applied:
    first_time: bool  # False: this event was applied before (duplicate delivery)
    tracked: bool  # False: no tracking item for this emailId
    changed: bool = False
    previous: str | None = None
    item: dict[str, Any] | None = None
    sequence: int | None = None  # the email's status sequence after this write
    #: the key is in ``pendingEffects``: the caller applies the effects, then ``effects_done``
    pending: bool = False
    #: recorded by an earlier attempt that did not finish its effects (first_time is False)
    resumed: bool = False


def pending_names(event_key: str) -> tuple[str, str]:
    """The attributes that keep, while ``event_key`` is pending, the status it replaced and
    the status sequence of its write (what its status event carries)."""
    return f"pending#{event_key}#previousStatus", f"pending#{event_key}#sequence"


def effects_done(table: str, email_id: str, event_key: str) -> dict[str, Any]:
    """The write that ends an event's pending state (``UpdateItem`` parameters, also a
    ``TransactWriteItems`` ``Update``): it fails its condition when the key is no longer
    pending, i.e. another attempt already applied the effects."""
    previous, sequence = pending_names(event_key)
    return {
        "TableName": table,
        "Key": {"emailId": {"S": email_id}},
        "UpdateExpression": "DELETE #p :kset REMOVE #pp, #ps",
        "ConditionExpression": "contains(#p, :k)",
        "ExpressionAttributeNames": {"#p": PENDING, "#pp": previous, "#ps": sequence},
        "ExpressionAttributeValues": {":k": {"S": event_key}, ":kset": {"SS": [event_key]}},
    }


def s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


#: an execution that opened an item this long ago is over: the send machine's worst case is
#: under Express's 300 s (``python -m sesflow.staticcheck --durations``, checked by ``make lint``;
#: a STANDARD send machine runs the same states, so the same bound)
IN_FLIGHT_SECONDS = 300


def open_item(
    ddb: Any, table: str, request: SendRequest, expires_at: int, opened_by: str | None = None
) -> dict[str, Any]:
    """Create the tracking item as ``queued``; never overwrite what an earlier run wrote. A
    scheduled send also records the time it is for (``scheduledFor``); ``opened_by`` (the
    execution) is kept from the first opening. Returns the item as it was before (``{}``: new)."""
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
    if opened_by:
        values[":by"] = {"S": opened_by}
        sets.append("openedBy = if_not_exists(openedBy, :by)")
    old: dict[str, Any] = ddb.update_item(
        TableName=table,
        Key={"emailId": {"S": request.emailId}},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=values,
        ReturnValues="ALL_OLD",
    ).get("Attributes", {})
    return old


def repeat_outcome(old: dict[str, Any], request: SendRequest, opened_by: str, now: float) -> dict[str, Any] | None:
    """The outcome of a request for an email that another execution has sent or is sending
    (a redelivered event, a retried call): the first result, or ``queued`` while the first runs.
    None: this execution goes on (a new email, a later round after ``deferred``, ``scheduled``,
    ``failed``..., or an opener that can no longer be running). The machine's own next
    execution (a deferred round, ``sendRound``; a fired schedule, ``scheduledFor``) is never
    taken for a repeat in flight: its schedule can fire before the execution that made it has recorded
    ``deferred`` or ``scheduled``, and nothing would be left to send the email."""
    if not old:
        return None
    email_id, continuation = request.emailId, bool(request.sendRound or request.scheduledFor)
    current, message_id, sent_at = s(old, "status"), s(old, "messageId"), s(old, "sentAt")
    if s(old, "sendState") == ledger.SENT:
        if current in status.REPLACEABLE_BY_SEND or not (message_id and sent_at):
            return None  # sent, not recorded yet (or its recorder died): this one records it, once
        # sent and recorded: the first result, as the send step would return it, without the steps
        return {"emailId": email_id, "status": status.SENT, "messageId": message_id, "reason": None}
    first, created = s(old, "openedBy"), s(old, "createdAt")
    if continuation or current != status.QUEUED or not first or first == opened_by or not created:
        return None
    age = now - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
    if age >= IN_FLIGHT_SECONDS:
        return None  # its opener is over without a status: this one goes on (the ledger decides)
    return {
        "emailId": email_id,
        "status": status.QUEUED,
        "messageId": None,
        "reason": f"a repeat of a request being sent since {created} (execution {first}): this "
        "execution sends and records nothing; the first records the outcome",
    }


def record_event(
    ddb: Any,
    table: str,
    email_id: str,
    event_key: str,
    entry: dict[str, Any],
    new_status: str | None,
    reason: str | None,
    extra: dict[str, str] | None = None,
    *,
    pending: bool = False,
    count: tuple[str, str] | None = None,
) -> Applied:
    """Apply one event: one conditional write in the common case.

    The write appends the timeline entry, adds the event key and moves the status, on
    condition that the key is new and the current status may be replaced. When that fails
    (a duplicate, an untracked email, or an out-of-order event), a second write records the
    timeline entry alone, on condition that the key is new.

    ``pending``: the caller has effects to apply; the write also adds the key to
    ``pendingEffects``. When the key is known already, the item is read: if the key is still
    pending, an earlier attempt died before it finished, and the result says so
    (``pending`` and ``resumed``, with what its status event needs).
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
    adds = ["#k :kset"]
    if count:  # an engagement (opens, clicks): counted once per event, the first time kept
        names["#cn"], names["#cf"] = count
        values[":one1"] = {"N": "1"}
        adds.append("#cn :one1")
        sets.append("#cf = if_not_exists(#cf, :now)")
    if pending:
        names["#p"] = PENDING
        adds.append("#p :kset")
    if new_status:
        applied = _record_with_status(
            ddb, table, email_id, event_key, new_status, reason, names, values, sets, adds, fresh, pending
        )
        if applied is not None:
            return applied
    try:
        item = ddb.update_item(
            TableName=table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression="SET " + ", ".join(sets) + " ADD " + ", ".join(adds),
            ConditionExpression=fresh,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
    except ddb.exceptions.ConditionalCheckFailedException:
        return _known(ddb, table, email_id, event_key, new_status)
    return Applied(first_time=True, tracked=True, item=item, pending=pending)


def _known(ddb: Any, table: str, email_id: str, event_key: str, new_status: str | None) -> Applied:
    """After a failed conditional write: untracked, a duplicate, or pending (resume).

    Strongly consistent: the write that failed saw the key, an eventually consistent read
    might not see it yet, nor whether it is still pending."""
    previous_name, sequence_name = pending_names(event_key)
    item = ddb.get_item(
        TableName=table,
        Key={"emailId": {"S": email_id}},
        ConsistentRead=True,
        ProjectionExpression="emailId, #p, #pp, #ps, messageId, template, topic, campaignId, opens, clicks",
        ExpressionAttributeNames={"#p": PENDING, "#pp": previous_name, "#ps": sequence_name},
    ).get("Item")
    if item is None:
        return Applied(first_time=True, tracked=False)
    if event_key not in item.get(PENDING, {}).get("SS", []):
        return Applied(first_time=False, tracked=True)
    previous, sequence = s(item, previous_name), item.get(sequence_name, {}).get("N")
    if sequence is None:  # recorded by the timeline-only write: no status change to announce
        return Applied(first_time=False, tracked=True, item=item, pending=True, resumed=True)
    previous = None if previous == NO_STATUS else previous
    return Applied(
        first_time=False,
        tracked=True,
        changed=previous != new_status,
        previous=previous,
        item={**item, "status": {"S": new_status}} if new_status else item,
        sequence=int(sequence),
        pending=True,
        resumed=True,
    )


def _record_with_status(
    ddb: Any,
    table: str,
    email_id: str,
    event_key: str,
    new_status: str,
    reason: str | None,
    names: dict[str, str],
    values: dict[str, Any],
    sets: list[str],
    adds: list[str],
    fresh: str,
    pending: bool,
) -> Applied | None:
    replaceable = [st for st in status.RANK if feedback_may_replace(st, new_status)]
    status_names = {**names, "#s": "status"}
    status_values = {
        **values,
        ":new": {"S": new_status},
        ":none": {"S": NO_STATUS},
        ":one": {"N": "1"},
        **{f":r{i}": {"S": st} for i, st in enumerate(replaceable)},
    }
    status_sets = [*sets, "previousStatus = if_not_exists(#s, :none)", "#s = :new", "updatedAt = :now"]
    if pending:  # what the status event needs, should this attempt die before it is sent
        status_names["#pp"], status_names["#ps"] = pending_names(event_key)
        status_values[":zero"] = {"N": "0"}
        status_sets += ["#pp = if_not_exists(#s, :none)", "#ps = if_not_exists(statusSequence, :zero) + :one"]
    if reason:
        status_values[":reason"] = {"S": reason[:1000]}
        status_sets.append("reason = :reason")
    in_list = ", ".join(f":r{i}" for i in range(len(replaceable)))
    try:
        old = ddb.update_item(
            TableName=table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression="SET " + ", ".join(status_sets) + " ADD " + ", ".join([*adds, "statusSequence :one"]),
            ConditionExpression=f"{fresh} AND (attribute_not_exists(#s) OR #s IN ({in_list}))",
            ExpressionAttributeNames=status_names,
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
        pending=pending,
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
