"""Drip sequences (journeys), plain Python: a definition, its checks, and one step's decision.

A definition (``sequences/<name>.yaml``, schema ``schemas/sequence.schema.json``)::

    name: onboarding
    topic: onboarding                 # the sends' default topic (subscription mail)
    steps:
      - {id: welcome, type: send, template: welcome, topic: transactional}
      - {id: pause, type: wait, duration: 2d}
      - {id: tips, type: send, template: onboarding-tips}
      - {id: check, type: branch, when: [{if: bounced, goto: end}], else: next}
      - {id: later, type: wait, until: "09:30"}   # the next 09:30 in the enrollment's zone
      - {id: ask, type: send, template: feedback-ask}
      - {id: end, type: exit}

Steps run in order; ``next`` (or a branch's ``goto``) jumps forward to another step's id, and
the end of the list completes the enrollment. A branch looks at the previous email: its
status (``delivered``, ``bounced``, ``complained``, ``suppressed``, ``failed``) or engagement
(``opened``, ``clicked``, ``not-opened``, ``not-clicked``: needs ``EngagementTracking``).
Before every send the address's suppression for the step's topic is checked: an unsubscribe
or a suppression ends the enrollment (``exited``).

Refused at deploy, with the reason: unknown fields or types, duplicate ids, a ``next``/``goto``
to no step, a cycle (a sequence runs forward: one STANDARD execution, bounded history), a wait
that is not a duration or a local time, waits adding up to more than :data:`MAX_TOTAL_WAIT`
(an execution lasts at most a year), more than :data:`MAX_STEPS` steps.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import InvalidSequence as InvalidSequence

MAX_STEPS: Final = 50
MAX_TOTAL_WAIT: Final = timedelta(days=360)
CONDITIONS: Final = (
    "delivered",
    "bounced",
    "complained",
    "suppressed",
    "failed",
    "opened",
    "clicked",
    "not-opened",
    "not-clicked",
)
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_TEMPLATE = re.compile(r"^[a-z0-9_-]{1,64}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def duration(value: Any, where: str) -> timedelta:
    """``2d``, ``36h``, ``90m``, ``1d12h`` or ISO 8601 ``P2D``/``PT36H``."""
    text = str(value).strip() if isinstance(value, str | int) else ""
    match = _DURATION.match(text) or _ISO_DURATION.match(text.upper())
    if not text or match is None or not any(match.groups()):
        raise InvalidSequence(f"{where}: duration must look like 2d, 36h, 90m or P2D, not {value!r}")
    d, h, m, s = (int(g or 0) for g in match.groups())
    return timedelta(days=d, hours=h, minutes=m, seconds=s)


def zone(name: Any, where: str) -> ZoneInfo:
    if not isinstance(name, str) or not name or ".." in name or name.startswith("/"):
        raise InvalidSequence(f"{where}: not an IANA time zone: {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSequence(f"{where}: not a known IANA time zone: {name!r}") from None


@dataclass(frozen=True)
class Step:
    id: str
    type: str  # send | wait | branch | exit
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def template(self) -> str:
        return str(self.raw["template"])


@dataclass(frozen=True)
class Sequence:
    name: str
    topic: str
    steps: tuple[Step, ...]
    description: str = ""

    def index(self, step_id: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.id == step_id)

    def after(self, i: int, target: str | None = None) -> str | None:
        """The step after ``steps[i]``: ``target`` (an id, ``next``, ``exit``), its ``next``, or the
        following one; None at the end (completed)."""
        target = target or self.steps[i].raw.get("next") or "next"
        if target == "next":
            return self.steps[i + 1].id if i + 1 < len(self.steps) else None
        return str(target)

    def templates(self) -> list[str]:
        return sorted({s.template for s in self.steps if s.type == "send"})

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic": self.topic,
            "description": self.description,
            "steps": [{"id": s.id, "type": s.type, **s.raw} for s in self.steps],
        }

    @classmethod
    def parse(cls, raw: Any) -> Sequence:
        if not isinstance(raw, dict):
            raise InvalidSequence("a sequence definition must be an object with name and steps")
        unknown = set(raw) - {"name", "topic", "description", "steps"}
        if unknown:
            raise InvalidSequence(f"unknown field(s): {', '.join(sorted(map(str, unknown)))}")
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidSequence("name must match [a-z0-9][a-z0-9-]{0,39}")
        topic = raw.get("topic") or "transactional"
        if not isinstance(topic, str) or not _TEMPLATE.match(topic):
            raise InvalidSequence("topic must match [a-z0-9_-]{1,64}")
        steps_raw = raw.get("steps")
        if not isinstance(steps_raw, list) or not 1 <= len(steps_raw) <= MAX_STEPS:
            raise InvalidSequence(f"steps must be a list of 1-{MAX_STEPS} steps")
        steps = tuple(_step(s, i) for i, s in enumerate(steps_raw))
        ids = [s.id for s in steps]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise InvalidSequence(f"step ids must differ: {', '.join(dupes)}")
        if not any(s.type == "send" for s in steps):
            raise InvalidSequence("a sequence needs at least one send step")
        seq = cls(name, topic, steps, str(raw.get("description") or ""))
        seq._check_graph()
        return seq

    def _edges(self, i: int) -> list[str]:
        step = self.steps[i]
        if step.type == "exit":
            return []
        if step.type == "branch":
            targets = [str(rule["goto"]) for rule in step.raw["when"]] + [str(step.raw.get("else") or "next")]
            found = [self.after(i, t) for t in targets]
        else:
            found = [self.after(i)]
        return [t for t in found if t is not None and t != "exit"]

    def _check_graph(self) -> None:
        ids = {s.id for s in self.steps}
        for i, step in enumerate(self.steps):
            for target in self._edges(i):
                if target not in ids:
                    raise InvalidSequence(f"step {step.id}: goes to {target!r}, which is no step")
        # a cycle: depth-first search with colours
        colour: dict[str, int] = {}

        def visit(step_id: str, path: list[str]) -> None:
            colour[step_id] = 1
            for target in self._edges(self.index(step_id)):
                if colour.get(target) == 1:
                    loop = " -> ".join([*path[path.index(target) :], target])
                    raise InvalidSequence(f"the steps form a cycle: {loop} (a sequence runs forward only)")
                if colour.get(target) is None:
                    visit(target, [*path, target])
            colour[step_id] = 2

        visit(self.steps[0].id, [self.steps[0].id])
        longest = self._longest_wait(self.steps[0].id, {})
        if longest > MAX_TOTAL_WAIT:
            raise InvalidSequence(
                f"the waits add up to {longest.days} days on the longest path; at most {MAX_TOTAL_WAIT.days} "
                "(a Step Functions execution lasts at most a year)"
            )

    def _longest_wait(self, step_id: str, memo: dict[str, timedelta]) -> timedelta:
        if step_id in memo:
            return memo[step_id]
        i = self.index(step_id)
        step = self.steps[i]
        own = timedelta(0)
        if step.type == "wait":
            own = duration(step.raw["duration"], step.id) if "duration" in step.raw else timedelta(days=1)
        rest = max((self._longest_wait(t, memo) for t in self._edges(i)), default=timedelta(0))
        memo[step_id] = own + rest
        return memo[step_id]


def _step(raw: Any, i: int) -> Step:
    where = f"steps[{i}]"
    if not isinstance(raw, dict):
        raise InvalidSequence(f"{where} must be an object with id and type")
    sid, kind = raw.get("id"), raw.get("type")
    if not isinstance(sid, str) or not _ID.match(sid) or sid in ("next", "exit"):
        raise InvalidSequence(f"{where}.id must match [a-z0-9][a-z0-9_-]{{0,39}} (not next or exit)")
    where = f"step {sid}"
    allowed = {
        "send": {"template", "topic", "data", "next"},
        "wait": {"duration", "until", "timezone", "next"},
        "branch": {"when", "else"},
        "exit": set(),
    }
    if kind not in allowed:
        raise InvalidSequence(f"{where}: type must be send, wait, branch or exit")
    unknown = set(raw) - {"id", "type"} - allowed[str(kind)]
    if unknown:
        raise InvalidSequence(f"{where}: unknown field(s) for a {kind} step: {', '.join(sorted(map(str, unknown)))}")
    body = {k: v for k, v in raw.items() if k not in ("id", "type")}
    {"send": _check_send, "wait": _check_wait, "branch": _check_branch}.get(str(kind), lambda r, w: None)(raw, where)
    return Step(sid, str(kind), body)


def _check_send(raw: dict[str, Any], where: str) -> None:
    if not isinstance(raw.get("template"), str) or not _TEMPLATE.match(raw["template"]):
        raise InvalidSequence(f"{where}: template must match [a-z0-9_-]{{1,64}}")
    if raw.get("topic") is not None and (not isinstance(raw["topic"], str) or not _TEMPLATE.match(raw["topic"])):
        raise InvalidSequence(f"{where}: topic must match [a-z0-9_-]{{1,64}}")
    if raw.get("data") is not None and not isinstance(raw["data"], dict):
        raise InvalidSequence(f"{where}: data must be an object")


def _check_wait(raw: dict[str, Any], where: str) -> None:
    if ("duration" in raw) == ("until" in raw):
        raise InvalidSequence(f"{where}: give duration (2d, 36h) or until (a local time HH:MM)")
    if "duration" in raw:
        if duration(raw["duration"], where) <= timedelta(0):
            raise InvalidSequence(f"{where}: duration must be positive")
    elif not isinstance(raw["until"], str) or not _HHMM.match(raw["until"]):
        raise InvalidSequence(f"{where}: until must be a local time HH:MM, not {raw['until']!r}")
    if raw.get("timezone") is not None:
        zone(raw["timezone"], where)


def _check_branch(raw: dict[str, Any], where: str) -> None:
    rules = raw.get("when")
    if not isinstance(rules, list) or not rules:
        raise InvalidSequence(f"{where}: when must be a list of {{if: condition, goto: step}}")
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) != {"if", "goto"}:
            raise InvalidSequence(f"{where}: each rule is {{if: condition, goto: step id, next or exit}}")
        if rule["if"] not in CONDITIONS:
            raise InvalidSequence(f"{where}: unknown condition {rule['if']!r}; one of {', '.join(CONDITIONS)}")


# ---------------------------------------------------------------- running one step
def enrollment_key(sequence: str, address: str, enrollment_id: str) -> str:
    """The enrollment's key and its execution's name: no address in it (a hash)."""
    digest = hashlib.sha256(f"{sequence}\x00{address.lower()}\x00{enrollment_id}".encode()).hexdigest()
    return f"{sequence}-{digest[:32]}"


def email_id(key: str, step_id: str) -> str:
    """The emailId of one step's email: the same on every retry (the send ledger's key)."""
    return f"seq-{hashlib.sha256(f'{key}|{step_id}'.encode()).hexdigest()[:40]}"


def branch_target(step: Step, facts: dict[str, Any]) -> str:
    """A branch's target for the previous email's ``facts`` (its tracking item)."""
    status = facts.get("status")
    opened, clicked = bool(facts.get("opens")), bool(facts.get("clicks"))
    truth = {
        "delivered": status == "delivered" or opened or clicked,
        "bounced": status == "bounced",
        "complained": status == "complained",
        "suppressed": status == "suppressed",
        "failed": status in ("failed", "rejected"),
        "opened": opened,
        "clicked": clicked,
        "not-opened": not opened,
        "not-clicked": not clicked,
    }
    for rule in step.raw["when"]:
        if truth[str(rule["if"])]:
            return str(rule["goto"])
    return str(step.raw.get("else") or "next")


def wait_seconds(step: Step, now: float, default_zone: str = "UTC") -> float:
    """How long a wait step lasts from ``now`` (the enrollment clock's seconds)."""
    if "duration" in step.raw:
        return duration(step.raw["duration"], step.id).total_seconds()
    tz = zone(step.raw.get("timezone") or default_zone, step.id)
    hh, mm = (int(x) for x in str(step.raw["until"]).split(":"))
    local = datetime.fromtimestamp(now, UTC).astimezone(tz)
    at = datetime.combine(local.date(), time(hh, mm), tz)
    if at.timestamp() <= now:
        at = datetime.combine(local.date() + timedelta(days=1), time(hh, mm), tz)
    return at.timestamp() - now
