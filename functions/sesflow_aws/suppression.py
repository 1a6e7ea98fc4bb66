"""The suppression list (table ``(address, topic)``): entries, soft-bounce counts, lookups.

The policy (which feedback suppresses what) is ``sesflow_core.suppression``; this module
only reads and writes the table, for the feedback and unsubscribe functions, the campaign
planner and sender, and the CLI.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
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


def _topics(topic: str) -> set[str]:
    """The entries' topics that keep a send on ``topic`` from an address."""
    return {sp.ALL_TOPICS, topic, sp.SUBSCRIPTION_TOPICS if topic != "transactional" else sp.TRANSACTIONAL_CLASS}


def suppressed_among(ddb: Any, table: str, addresses: list[str], topic: str) -> set[str]:
    """Which of ``addresses`` a send on ``topic`` may not reach (entries for ``*``, the topic,
    or its class), with BatchGetItem (unprocessed keys retried by ``dynamo.batch_get``)."""
    keys = [{"address": {"S": a}, "topic": {"S": t}} for a in addresses for t in _topics(topic)]
    return {item["address"]["S"] for item in dynamo.batch_get(ddb, table, keys, "address")}


#: entries added over more days than this since a plan are looked up address by address instead
SINCE_MAX_DAYS = 7


def added_since(ddb: Any, table: str, since: str, topic: str, now: float | None = None) -> set[str] | None:
    """Addresses suppressed for ``topic`` (entries for ``*``, the topic, or its class) by entries
    added at or after ``since`` (ISO 8601, UTC), from the ``bySince`` index: a Query per day.
    None when ``since`` is more than SINCE_MAX_DAYS days ago (look the addresses up instead)."""
    first = dt.date.fromisoformat(since[:10])
    today = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC).date()
    if (today - first).days > SINCE_MAX_DAYS:
        return None
    topics = _topics(topic)
    found: set[str] = set()
    day = first
    while day <= today:
        condition, values = "firstDay = :d", {":d": {"S": day.isoformat()}}
        if day == first:  # that day's entries from ``since`` on
            condition, values[":since"] = condition + " AND firstSeen >= :since", {"S": since}
        pages = ddb.get_paginator("query").paginate(
            TableName=table, IndexName="bySince", KeyConditionExpression=condition, ExpressionAttributeValues=values
        )
        for page in pages:
            found.update(i["address"]["S"] for i in page["Items"] if i["topic"]["S"] in topics)
        day += dt.timedelta(days=1)
    return found


#: a plan reads the whole list (a Scan) instead of looking recipients up when that reads less
#: and the list has at most this many entries (the addresses are kept in the plan's memory)
SNAPSHOT_MAX_ENTRIES = 2_000_000
#: bytes per row of a recipients file, for the estimate of the lookups a plan would make
ROW_BYTES_ESTIMATE = 40
#: read units: a lookup is 3 keys of 0.5 (eventually consistent), a Scan 0.5 per 4 KB read
LOOKUP_RRU, SCAN_RRU_PER_BYTE = 1.5, 0.5 / 4096


def plan_lookup(ddb: Any, table: str, topic: str, list_bytes: int) -> Callable[[list[str]], set[str]]:
    """What a plan uses to find the suppressed among its recipients: a snapshot of the list
    (one Scan) when it reads fewer units than 3 keys per recipient would, else BatchGetItem.

    The table's size comes from DescribeTable (refreshed about every 6 hours): a Scan that
    finds more than SNAPSHOT_MAX_ENTRIES entries stops and the lookups are used instead.
    Entries added during or after the Scan are read by each batch (``added_since``)."""
    desc = ddb.describe_table(TableName=table)["Table"]
    lookups = list_bytes / ROW_BYTES_ESTIMATE * LOOKUP_RRU
    scan = int(desc.get("TableSizeBytes", 0)) * SCAN_RRU_PER_BYTE
    if int(desc.get("ItemCount", 0)) <= SNAPSHOT_MAX_ENTRIES and scan < lookups:
        blocked = snapshot(ddb, table, topic)
        if blocked is not None:
            return blocked.intersection
    return lambda addresses: suppressed_among(ddb, table, addresses, topic)


def snapshot(ddb: Any, table: str, topic: str) -> set[str] | None:
    """Every address suppressed for ``topic``, from one Scan (None past SNAPSHOT_MAX_ENTRIES)."""
    topics, seen = _topics(topic), 0
    found: set[str] = set()
    for page in ddb.get_paginator("scan").paginate(
        TableName=table, ProjectionExpression="address, topic", PaginationConfig={"PageSize": 1000}
    ):
        seen += len(page["Items"])
        if seen > SNAPSHOT_MAX_ENTRIES:
            return None
        found.update(i["address"]["S"] for i in page["Items"] if i["topic"]["S"] in topics)
    return found
