"""A scripted, seeded fault plan for the local stack (chaos runs, tests); off by default.

A plan is a seed and a list of rules, set with ``POST /_sesflow/faults``
``{"seed": 7, "rules": [...]}`` (``GET`` reports what fired, ``DELETE`` clears it). Each rule
names a ``kind``, filters saying where it applies, and when it fires at a matching decision
point: with probability ``p``, at the listed occurrences ``nth`` (1-based, counted per rule),
at most ``times`` times in all. Every rule draws from its own random stream, seeded by the
plan's seed and the rule's position, once per matching decision point: the same seed gives
the same decisions for the same sequence of matching calls (threads decide which request
is the n-th; the n-th decision itself is fixed).

==================  =========================  ==================================================
kind                decision point             effect
==================  =========================  ==================================================
sesThrottle         SES SendEmail              ``TooManyRequestsException`` (429), nothing sent
ses5xx              SES SendEmail              ``InternalFailure`` (500), nothing sent
sesAcceptThenFail   SES SendEmail              the message is accepted (outbox, SES events), then
                                               the answer is ``InternalFailure`` (500): a lost reply
lambdaCrash         an AWS call made by a      the invocation dies (``Runtime.ExitError``) before
                    function, or its return    the call is sent, after its answer came back, or
                                               after the handler returned (``when``); it makes no
                                               further AWS call
lambdaTimeout       the same                   the invocation hangs there past its ``Timeout``
                                               (``Sandbox.Timedout``, reported at once: the wait
                                               is not spent) and makes no further AWS call
dynamodbThrottle    a DynamoDB request         ``ProvisionedThroughputExceededException`` for it
                                               and the same caller's next ``burst - 1`` requests
                                               of that operation on that table and key (a hot
                                               key: a burst of 3 outlasts the SDK's standard
                                               mode, 3 attempts, and a state's 2 retries)
eventDuplicate      an EventBridge delivery    delivered twice
                    to a Lambda or Step
                    Functions target
eventDelay          the same                   delivered after ``uniform(0, window)`` seconds, so
                                               events overtake each other (out of order)
scheduleDuplicate   a one-time schedule fires  its target is invoked twice (Scheduler delivers at
                                               least once)
==================  =========================  ==================================================

Filters (substrings, case-insensitive; absent = everything): ``recipient`` (SES kinds),
``function`` and ``call`` (``"sesv2:SendEmail"``, ``"dynamodb:UpdateItem"``, ``"return"``)
and ``when`` (``before`` | ``after`` | ``return`` | ``any``, default ``any``: before or after,
drawn) for the Lambda kinds, ``operation``, ``table`` and ``caller`` (the signing role's name
and session: a function's name, or a state machine's role) for ``dynamodbThrottle``,
``target`` (ARN) and ``detailType`` for the event kinds. Parameters: ``burst`` (default 3),
``window`` (seconds, default 0.5).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

SES_KINDS = ("sesThrottle", "ses5xx", "sesAcceptThenFail")
LAMBDA_KINDS = ("lambdaCrash", "lambdaTimeout")
KINDS = (*SES_KINDS, *LAMBDA_KINDS, "dynamodbThrottle", "eventDuplicate", "eventDelay", "scheduleDuplicate")
_FILTERS = ("recipient", "function", "call", "operation", "table", "caller", "target", "detailType")

#: SES's answers (code, message, HTTP status)
SES_ERRORS = {
    "sesThrottle": ("TooManyRequestsException", "Maximum sending rate exceeded.", 429),
    "ses5xx": ("InternalFailure", "An internal error occurred.", 500),
    "sesAcceptThenFail": ("InternalFailure", "An internal error occurred.", 500),
}
DYNAMODB_THROTTLED = (
    "ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API.",
)
LOG_LIMIT = 50_000


@dataclass
class Rule:
    kind: str
    p: float
    nth: frozenset[int]
    times: int | None
    filters: dict[str, str]
    when: str
    burst: int
    window: float
    rng: random.Random
    seen: int = 0
    fired: int = 0

    @classmethod
    def from_dict(cls, doc: dict[str, Any], seed: int, index: int) -> Rule:
        kind = str(doc.get("kind", ""))
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
        when = str(doc.get("when", "any"))
        if when not in ("before", "after", "return", "any"):
            raise ValueError(f"when must be before, after, return or any, not {when!r}")
        unknown = set(doc) - {"kind", "p", "nth", "times", "when", "burst", "window", *_FILTERS}
        if unknown:
            raise ValueError(f"rule {index}: unknown keys {sorted(unknown)}")
        times = doc.get("times")
        return cls(
            kind=kind,
            p=float(doc.get("p", 0.0)),
            nth=frozenset(int(n) for n in doc.get("nth", ())),
            times=None if times is None else int(times),
            filters={k: str(doc[k]).lower() for k in _FILTERS if doc.get(k) not in (None, "")},
            when=when,
            burst=max(1, int(doc.get("burst", 3))),
            window=float(doc.get("window", 0.5)),
            rng=random.Random(f"{seed}:{index}:{kind}"),
        )

    def matches(self, **values: str) -> bool:
        return all(wanted in values.get(name, "").lower() for name, wanted in self.filters.items())

    def decide(self) -> bool:
        """One matching decision point: does the rule fire here?"""
        self.seen += 1
        draw = self.rng.random()  # drawn every time: the n-th decision does not depend on earlier hits
        if self.times is not None and self.fired >= self.times:
            return False
        hit = self.seen in self.nth or draw < self.p
        self.fired += hit
        return hit


@dataclass
class _Plan:
    seed: int = 0
    rules: list[Rule] = field(default_factory=list)
    injected: Counter[str] = field(default_factory=Counter)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))
    #: (caller, operation, table, key) -> throttled requests still due in a DynamoDB burst
    bursts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)


_lock = threading.Lock()
_plan = _Plan()


def configure(doc: dict[str, Any]) -> None:
    """Replace the plan: ``{"seed": int, "rules": [rule, ...]}`` (no rules: off)."""
    seed = int(doc.get("seed", 0))
    rules = [Rule.from_dict(r, seed, i) for i, r in enumerate(doc.get("rules", []))]
    global _plan
    with _lock:
        _plan = _Plan(seed=seed, rules=rules)


def clear() -> None:
    configure({})


def active() -> bool:
    return bool(_plan.rules)


def lambda_rules_active() -> bool:
    """A ``lambdaCrash``/``lambdaTimeout`` rule is set: invocations run where it can act."""
    return any(rule.kind in LAMBDA_KINDS for rule in _plan.rules)


def snapshot(with_log: bool = False) -> dict[str, Any]:
    """The plan's seed, each rule's decision points and hits, faults injected by kind."""
    with _lock:
        doc: dict[str, Any] = {
            "seed": _plan.seed,
            "rules": [{"kind": r.kind, **r.filters, "seen": r.seen, "fired": r.fired} for r in _plan.rules],
            "injected": dict(_plan.injected),
        }
        if with_log:
            doc["log"] = list(_plan.log)
    return doc


def _record(kind: str, **detail: Any) -> None:
    """Under the lock."""
    _plan.injected[kind] += 1
    _plan.log.append({"t": round(time.time(), 3), "kind": kind, **detail})


def _first(kinds: tuple[str, ...], **values: str) -> Rule | None:
    """The first rule of these kinds that matches and fires (under the lock)."""
    for rule in _plan.rules:
        if rule.kind in kinds and rule.matches(**values) and rule.decide():
            return rule
    return None


# ---------------------------------------------------------------- SES
def ses_send_email(recipients: list[str], tags: list[dict[str, str]]) -> tuple[str, str, str, int] | None:
    """(kind, code, message, status) for this SendEmail call, or None."""
    if not _plan.rules:
        return None
    rcpt = ",".join(recipients).lower()
    with _lock:
        rule = _first(SES_KINDS, recipient=rcpt)
        if rule is None:
            return None
        tag = {t.get("Name"): t.get("Value") for t in tags}
        _record(rule.kind, recipients=recipients, emailId=tag.get("emailId"), campaignId=tag.get("campaignId"))
    return (rule.kind, *SES_ERRORS[rule.kind])


# ---------------------------------------------------------------- Lambda invocations
def lambda_call(function: str, call: str, subject: str = "") -> tuple[str, str] | None:
    """(effect, when) for one AWS call of an invocation of ``function`` (``call`` is
    ``service:Operation``, or ``return`` when the handler has returned); effect is
    ``crash`` or ``timeout``, when is ``before``/``after``/``return``."""
    if not _plan.rules:
        return None
    at_return = call == "return"
    with _lock:
        for rule in _plan.rules:
            if rule.kind not in LAMBDA_KINDS or (rule.when == "return") != at_return:
                continue
            if not rule.matches(function=function, call=call) or not rule.decide():
                continue
            when = rule.when if rule.when != "any" else rule.rng.choice(("before", "after"))
            effect = "crash" if rule.kind == "lambdaCrash" else "timeout"
            _record(rule.kind, function=function, call=call, when=when, subject=subject)
            return effect, when
    return None


def subject_of(event: Any) -> str:
    """What an invocation is about, for the fault log: an emailId, a batch, an SES message."""
    if not isinstance(event, dict):
        return ""
    request = event.get("request")
    if isinstance(request, dict) and request.get("emailId"):
        return f"emailId={request['emailId']}"
    batch = event.get("batch")
    if isinstance(batch, dict):
        return f"batch={batch.get('campaignId')}:{batch.get('stage')}:{batch.get('batch')}"
    detail = event.get("detail")
    if isinstance(detail, dict) and isinstance(detail.get("mail"), dict):
        tags = detail["mail"].get("tags") or {}
        email_id = (tags.get("emailId") or [""])[0]
        return f"ses={detail.get('eventType')} emailId={email_id} messageId={detail['mail'].get('messageId')}"
    if event.get("mode"):
        return f"mode={event['mode']} campaignId={event.get('campaignId')}"
    return ""


# ---------------------------------------------------------------- DynamoDB
def dynamodb_request(operation: str, tables: list[str], caller: str, key: str = "") -> bool:
    """Is this DynamoDB request throttled?"""
    if not _plan.rules:
        return False
    table = ",".join(tables)
    with _lock:
        burst_key = (caller, operation, table, key)
        left = _plan.bursts.get(burst_key, 0)
        if left:
            _plan.bursts[burst_key] = left - 1
            _plan.log.append(
                {
                    "t": round(time.time(), 3),
                    "kind": "dynamodbThrottle",
                    "operation": operation,
                    "table": table,
                    "caller": caller,
                    "key": key,
                    "burst": True,
                }
            )
            return True
        rule = _first(("dynamodbThrottle",), operation=operation, table=table, caller=caller)
        if rule is None:
            return False
        if rule.burst > 1:
            _plan.bursts[burst_key] = rule.burst - 1
        _record("dynamodbThrottle", operation=operation, table=table, caller=caller, key=key)
    return True


# ---------------------------------------------------------------- EventBridge, Scheduler
def delivery_delays(target: str, detail_type: str = "") -> list[float]:
    """Seconds before each delivery of one event to one target: ``[0.0]`` without faults."""
    if not _plan.rules:
        return [0.0]
    with _lock:
        copies = 2 if _first(("eventDuplicate",), target=target, detailType=detail_type) else 1
        if copies > 1:
            _record("eventDuplicate", target=target, detailType=detail_type)
        delays = []
        for _ in range(copies):
            rule = _first(("eventDelay",), target=target, detailType=detail_type)
            delays.append(rule.rng.uniform(0.0, rule.window) if rule else 0.0)
            if rule:
                _record("eventDelay", target=target, detailType=detail_type, delay=round(delays[-1], 3))
    return delays


def schedule_copies(target: str) -> int:
    """How many times a firing schedule invokes its target (1 without faults)."""
    if not _plan.rules:
        return 1
    with _lock:
        if _first(("scheduleDuplicate",), target=target) is None:
            return 1
        _record("scheduleDuplicate", target=target)
    return 2
