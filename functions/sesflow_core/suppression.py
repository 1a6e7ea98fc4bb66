"""Suppression policy: which feedback suppresses which address for which topics.

One table drives it (:data:`POLICY`); the handler only applies the decisions.

A suppression entry is an item ``(address, topic)`` in the Suppression table. ``topic`` is
``*`` (every topic), a topic name, or a class: ``~subscription`` (every non-transactional
topic). The send machine's ``CheckSuppression`` matches ``*``, the email's topic and its
class. Soft (transient) bounces are counted in a pseudo-entry ``#soft-bounces``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .feedback import FeedbackEvent

ALL_TOPICS = "*"
SUBSCRIPTION_TOPICS = "~subscription"
TRANSACTIONAL_CLASS = "~transactional"
SOFT_BOUNCES = "#soft-bounces"
UNSUBSCRIBED_REASON = "unsubscribed"


@dataclass(frozen=True)
class PolicySettings:
    complaint_scope: str = SUBSCRIPTION_TOPICS  # or ALL_TOPICS
    soft_bounce_threshold: int = 3
    soft_bounce_window_days: int = 30


@dataclass(frozen=True)
class Rule:
    kind: str
    bounce_type: str | None  # None: any
    bounce_subtype: str | None  # None: any
    action: str  # "suppress" or "count-soft-bounce"
    scope: str  # ALL_TOPICS, SUBSCRIPTION_TOPICS, or "complaint-scope"
    reason: str


#: first matching rule wins
POLICY: tuple[Rule, ...] = (
    Rule("Bounce", None, "OnAccountSuppressionList", "suppress", ALL_TOPICS, "on the SES account suppression list"),
    Rule("Bounce", "Permanent", None, "suppress", ALL_TOPICS, "permanent bounce"),
    Rule("Bounce", "Transient", None, "count-soft-bounce", ALL_TOPICS, "repeated soft bounces"),
    Rule("Bounce", "Undetermined", None, "count-soft-bounce", ALL_TOPICS, "repeated soft bounces"),
    Rule("Complaint", None, None, "suppress", "complaint-scope", "complaint"),
)


@dataclass(frozen=True)
class Decision:
    address: str
    action: str
    topic: str
    reason: str


def decide(event: FeedbackEvent, settings: PolicySettings) -> list[Decision]:
    """The suppression decisions an event implies, one per recipient."""
    for rule in POLICY:
        if rule.kind != event.kind:
            continue
        if rule.bounce_type and rule.bounce_type != event.bounce_type:
            continue
        if rule.bounce_subtype and rule.bounce_subtype != event.bounce_subtype:
            continue
        topic = settings.complaint_scope if rule.scope == "complaint-scope" else rule.scope
        reason = rule.reason
        if event.kind == "Bounce" and event.bounce_subtype:
            reason = f"{rule.reason} ({event.bounce_type}/{event.bounce_subtype})"
        return [Decision(r, rule.action, topic, reason) for r in event.recipients]
    return []


def soft_bounces_exceeded(timestamps: list[float], now: float, settings: PolicySettings) -> tuple[bool, list[float]]:
    """(threshold reached, the timestamps still inside the rolling window)."""
    window_start = now - settings.soft_bounce_window_days * 86400
    recent = sorted(t for t in timestamps if t >= window_start)
    return len(recent) >= settings.soft_bounce_threshold, recent


def topic_matches(entry_topic: str, topic: str) -> bool:
    """Does a suppression entry for ``entry_topic`` stop a send on ``topic``?"""
    if entry_topic == ALL_TOPICS or entry_topic == topic:
        return True
    transactional = topic == "transactional"
    return (entry_topic == SUBSCRIPTION_TOPICS and not transactional) or (
        entry_topic == TRANSACTIONAL_CLASS and transactional
    )


def send_topics(topic: str) -> dict[str, str]:
    """The entry topics that stop a send on ``topic`` (the send machine's CheckSuppression
    query): every topic, the topic itself, and its class."""
    return {
        "all": ALL_TOPICS,
        "topic": topic,
        "class": TRANSACTIONAL_CLASS if topic == "transactional" else SUBSCRIPTION_TOPICS,
    }


def entry_values(reason: str, source: str, now_iso: str) -> dict[str, Any]:
    """Attribute values of a suppression entry (the handler and the CLI write the same)."""
    return {
        ":reason": {"S": reason},
        ":source": {"S": source},
        ":now": {"S": now_iso},
        ":day": {"S": now_iso[:10]},
        ":one": {"N": "1"},
    }


#: ``firstDay``/``firstSeen`` are the keys of the ``bySince`` index (KEYS_ONLY, written once per
#: entry): a campaign batch reads the entries added since its plan looked the list up, one
#: Query, instead of looking every recipient up again (ADR 0014)
ENTRY_UPDATE = (
    "SET reason = :reason, sourceEvent = :source, lastSeen = :now, "
    "firstSeen = if_not_exists(firstSeen, :now), firstDay = if_not_exists(firstDay, :day) ADD hits :one"
)
