"""The suppression list (table ``(address, topic)``): entries, soft-bounce counts, lookups.

The policy (which feedback suppresses what) is ``sesflow_core.suppression``; this module
only reads and writes the table, for the feedback and unsubscribe functions, the campaign
planner and sender, and the CLI.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sesflow_core import suppression as sp
from sesflow_core.clock import now_iso

from . import dynamo


def entry_update(table: str, address: str, topic: str, reason: str, source: str) -> dict[str, Any]:
    """The write that suppresses ``address`` for ``topic`` (first/last seen, ``hits`` + 1,
    reason, source event): ``UpdateItem`` parameters, also a ``TransactWriteItems`` ``Update``."""
    return {
        "TableName": table,
        "Key": {"address": {"S": address}, "topic": {"S": topic}},
        "UpdateExpression": sp.ENTRY_UPDATE,
        "ExpressionAttributeValues": sp.entry_values(reason, source, now_iso()),
    }


def add(ddb: Any, table: str, address: str, topic: str, reason: str, source: str) -> None:
    """Suppress ``address`` for ``topic`` (first/last seen, hits, reason, source event)."""
    ddb.update_item(**entry_update(table, address, topic, reason, source))


@dataclass(frozen=True)
class SoftBounce:
    """One more soft bounce of an address, not written yet: ``update`` (a
    ``TransactWriteItems`` ``Update``) keeps the bounces of the rolling window plus this
    one, on condition that nobody wrote the count since it was read (``revision``);
    ``exceeded``: with this bounce the address reaches the threshold."""

    update: dict[str, Any]
    exceeded: bool


def soft_bounce(ddb: Any, table: str, address: str, rules: sp.PolicySettings) -> SoftBounce:
    """Read the address's soft-bounce count and prepare the write that adds one bounce.

    The read is strongly consistent and the write is conditional on the ``revision`` read
    (absent on a count no write of this code made yet), so two soft bounces of one address
    applied at the same time cannot both count from the same list: the second write fails
    its condition and its caller reads again (optimistic concurrency)."""
    key = {"address": {"S": address}, "topic": {"S": sp.SOFT_BOUNCES}}
    item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item", {})
    now = time.time()
    stamps = [float(v["N"]) for v in item.get("bounces", {}).get("L", [])]
    exceeded, recent = sp.soft_bounces_exceeded([*stamps, float(int(now))], now, rules)
    revision = item.get("revision", {}).get("N")
    values: dict[str, Any] = {
        ":recent": {"L": [{"N": str(int(t))} for t in recent]},
        ":now": {"S": now_iso()},
        ":next": {"N": str(int(revision or 0) + 1)},
    }
    if revision is None:
        condition = "attribute_not_exists(revision)"
    else:
        condition = "revision = :seen"
        values[":seen"] = {"N": revision}
    update = {
        "TableName": table,
        "Key": key,
        # the list kept to the rolling window, in the same write
        "UpdateExpression": "SET bounces = :recent, lastSeen = :now, revision = :next",
        "ConditionExpression": condition,
        "ExpressionAttributeValues": values,
    }
    return SoftBounce(update, exceeded)


def suppressed_among(ddb: Any, table: str, addresses: list[str], topic: str) -> set[str]:
    """Which of ``addresses`` a send on ``topic`` may not reach (entries for ``*``, the topic,
    or its class), with BatchGetItem (unprocessed keys retried by ``dynamo.batch_get``)."""
    topic_class = sp.SUBSCRIPTION_TOPICS if topic != "transactional" else sp.TRANSACTIONAL_CLASS
    keys = [{"address": {"S": a}, "topic": {"S": t}} for a in addresses for t in (sp.ALL_TOPICS, topic, topic_class)]
    return {item["address"]["S"] for item in dynamo.batch_get(ddb, table, keys, "address")}
