"""The send ledger on the tracking item (``sendState``/``sendOwner``), see ADR 0001.

It is taken with a conditional write *before* the SES call and completed after it, so a
retried state, a redelivered event or a second execution for the same emailId never sends
twice. States: absent / ``retryable`` (free), ``sending`` (held by ``sendOwner``), ``sent``,
``rejected``, ``cancelled`` (closed by a cancel of a scheduled email: never sent).
Hand-written (no library models a claim like this one): one conditional ``UpdateItem`` is
the whole mechanism, and a campaign creates the tracking item with it.
"""

from __future__ import annotations

from typing import Any

from sesflow_core.clock import now_iso

RETRYABLE, SENDING, SENT, REJECTED, CANCELLED = "retryable", "sending", "sent", "rejected", "cancelled"


def _value(v: str | int) -> dict[str, str]:
    return {"N": str(v)} if isinstance(v, int) and not isinstance(v, bool) else {"S": str(v)}


def take(
    ddb: Any,
    table: str,
    email_id: str,
    owner: str,
    fields: dict[str, str | int] | None = None,
    overwrite: dict[str, str | int] | None = None,
) -> dict[str, Any] | None:
    """Take the ledger; return None when taken, else the item that holds it.

    ``fields`` are written once (``if_not_exists``) with the claim: campaigns create the
    tracking item this way (no ValidateRequest step before them). ``overwrite`` fields are
    written whatever the item held (a taken ledger was free: nothing was sent before)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {
        ":sending": {"S": SENDING},
        ":owner": {"S": owner},
        ":now": {"S": now_iso()},
        ":retryable": {"S": RETRYABLE},
    }
    sets = ["sendState = :sending", "sendOwner = :owner", "sendStartedAt = :now"]
    for i, (k, v) in enumerate((fields or {}).items()):
        names[f"#f{i}"] = k
        values[f":f{i}"] = _value(v)
        sets.append(f"#f{i} = if_not_exists(#f{i}, :f{i})")
    for i, (k, v) in enumerate((overwrite or {}).items()):
        names[f"#o{i}"] = k
        values[f":o{i}"] = _value(v)
        sets.append(f"#o{i} = :o{i}")
    try:
        ddb.update_item(
            TableName=table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_not_exists(sendState) OR sendState = :retryable",
            ExpressionAttributeValues=values,
            # the holder comes back with the refusal: no GetItem (a read and a round trip; no
            # read units are billed for it), and it is the item the condition was evaluated on
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
            **({"ExpressionAttributeNames": names} if names else {}),
        )
        return None
    except ddb.exceptions.ConditionalCheckFailedException as exc:
        item: dict[str, Any] = exc.response.get("Item") or {}
        return item


def release(ddb: Any, table: str, email_id: str, state: str, **fields: str) -> None:
    """Complete or free the ledger (``state``), recording ``fields`` (messageId, reason...)."""
    _release(ddb, table, email_id, state, fields, indexed=False)


def release_indexed(ddb: Any, table: str, email_id: str, state: str, **fields: str) -> None:
    """``release``, and ``createdAt`` set when the item has none: a campaign claim has none
    (ADR 0014), so that it stays out of the byRecipient and byCampaign indexes until something
    goes wrong with it."""
    _release(ddb, table, email_id, state, fields, indexed=True)


def _release(ddb: Any, table: str, email_id: str, state: str, fields: dict[str, str], indexed: bool) -> None:
    names = {"#st": "sendState"}
    values = {":st": {"S": state}, ":now": {"S": now_iso()}}
    sets = ["#st = :st", "sendFinishedAt = :now"]
    if indexed:
        sets.append("createdAt = if_not_exists(createdAt, :now)")
    for i, (k, v) in enumerate(fields.items()):
        names[f"#f{i}"] = k
        values[f":f{i}"] = {"S": v}
        sets.append(f"#f{i} = :f{i}")
    ddb.update_item(
        TableName=table,
        Key={"emailId": {"S": email_id}},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def attr(item: dict[str, Any], name: str) -> str | None:
    """A string attribute of a raw item (None when absent)."""
    value = item.get(name, {})
    return value.get("S") if isinstance(value, dict) else None
