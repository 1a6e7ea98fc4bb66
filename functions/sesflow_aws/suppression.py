"""The suppression list (table ``(address, topic)``): entries, soft-bounce counts, lookups.

The policy (which feedback suppresses what) is ``sesflow_core.suppression``; this module
only reads and writes the table, for the feedback and unsubscribe functions, the campaign
planner and sender, and the CLI.
"""

from __future__ import annotations

import time
from typing import Any

from sesflow_core import suppression as sp
from sesflow_core.clock import now_iso

from . import dynamo


def add(ddb: Any, table: str, address: str, topic: str, reason: str, source: str) -> None:
    """Suppress ``address`` for ``topic`` (first/last seen, hits, reason, source event)."""
    ddb.update_item(
        TableName=table,
        Key={"address": {"S": address}, "topic": {"S": topic}},
        UpdateExpression=sp.ENTRY_UPDATE,
        ExpressionAttributeValues=sp.entry_values(reason, source, now_iso()),
    )


def count_soft_bounce(ddb: Any, table: str, address: str, rules: sp.PolicySettings) -> bool:
    """Record a soft bounce; True when the address crossed the threshold in the window."""
    now = time.time()
    key = {"address": {"S": address}, "topic": {"S": sp.SOFT_BOUNCES}}
    item = ddb.update_item(
        TableName=table,
        Key=key,
        UpdateExpression="SET bounces = list_append(if_not_exists(bounces, :empty), :ts), lastSeen = :now",
        ExpressionAttributeValues={":ts": {"L": [{"N": str(int(now))}]}, ":empty": {"L": []}, ":now": {"S": now_iso()}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    stamps = [float(v["N"]) for v in item.get("bounces", {}).get("L", [])]
    exceeded, recent = sp.soft_bounces_exceeded(stamps, now, rules)
    if len(recent) < len(stamps):  # keep the list to the rolling window
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET bounces = :recent",
            ExpressionAttributeValues={":recent": {"L": [{"N": str(int(t))} for t in recent]}},
        )
    return exceeded


def suppressed_among(ddb: Any, table: str, addresses: list[str], topic: str) -> set[str]:
    """Which of ``addresses`` a send on ``topic`` may not reach (entries for ``*``, the topic,
    or its class), with BatchGetItem (unprocessed keys retried by ``dynamo.batch_get``)."""
    topic_class = sp.SUBSCRIPTION_TOPICS if topic != "transactional" else sp.TRANSACTIONAL_CLASS
    keys = [{"address": {"S": a}, "topic": {"S": t}} for a in addresses for t in (sp.ALL_TOPICS, topic, topic_class)]
    return {item["address"]["S"] for item in dynamo.batch_get(ddb, table, keys, "address")}
