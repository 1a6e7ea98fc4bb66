"""Scheduled single sends (``sendAt``): when a request may be sent, and its schedule (plain Python).

A request with ``sendAt`` in the future is not sent by its own execution: the send machine
records it ``scheduled`` and a one-time EventBridge Scheduler schedule, named after the
emailId (:func:`schedule_name`, so a duplicate request is one schedule), starts the send
at that time with the request minus ``sendAt`` plus ``scheduledFor`` (kept for the record;
never checked against the clock, so a late delivery by Scheduler still sends).

Rules: an ISO 8601 date and time with a UTC offset (``Z`` or ``+HH:MM``); at most
:data:`MAX_AHEAD` ahead; not in the past, except within :data:`CLOCK_SKEW`, where it is
sent at once (the producer's clock may run behind ours).
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from .errors import InvalidEmailRequest

MAX_AHEAD: Final = timedelta(days=365)
CLOCK_SKEW: Final = timedelta(seconds=60)
#: a schedule is never created for a time closer than this: Scheduler's ``at()`` is in whole
#: seconds and the call takes time (its precision is a minute anyway)
MIN_LEAD: Final = timedelta(seconds=2)
EXAMPLE: Final = "2026-12-01T09:00:00+01:00"

_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?P<offset>[Zz]|[+-]\d{2}:?\d{2})?$")


def parse_instant(value: Any, name: str) -> datetime:
    """An ISO 8601 date and time with a UTC offset, as an aware UTC datetime; raise
    :class:`InvalidEmailRequest` naming ``name`` for anything else."""
    match = _FORM.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidEmailRequest(
            f"{name} must be an ISO 8601 date and time with a UTC offset, e.g. {EXAMPLE} or 2026-12-01T08:00:00Z"
        )
    if not match.group("offset"):
        raise InvalidEmailRequest(f"{name} {value} has no UTC offset: add Z (UTC) or +HH:MM, e.g. {EXAMPLE}")
    try:
        at = datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise InvalidEmailRequest(f"{name} {value} is not a valid date and time: {exc}") from None
    return at.astimezone(UTC)


def iso(at: datetime) -> str:
    """UTC, whole seconds, rounded up (a send never starts before the time asked for)."""
    seconds = math.ceil(at.timestamp())
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(at: datetime) -> str:
    """A time in a message: UTC, whole seconds (truncated)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def send_at(value: Any, now: datetime) -> tuple[datetime, bool]:
    """The time a ``sendAt`` asks for, and whether it lies ahead (False: it is due now, up to
    :data:`CLOCK_SKEW` in the past); raise :class:`InvalidEmailRequest` when it is malformed,
    further in the past, or more than :data:`MAX_AHEAD` ahead."""
    at = parse_instant(value, "sendAt")
    if at < now - CLOCK_SKEW:
        raise InvalidEmailRequest(
            f"sendAt {value} is in the past (now {_shown(now)}); a time up to "
            f"{int(CLOCK_SKEW.total_seconds())} s in the past is sent at once"
        )
    if at > now + MAX_AHEAD:
        raise InvalidEmailRequest(
            f"sendAt {value} is more than {MAX_AHEAD.days} days ahead (latest {_shown(now + MAX_AHEAD)})"
        )
    return at, at > now


def fire_time(at: datetime, now: datetime) -> datetime:
    """When the schedule fires: the time asked for, at least :data:`MIN_LEAD` from now."""
    return max(at, now + MIN_LEAD)


def epoch(value: str) -> float:
    """Seconds since the epoch of a normalised time (:func:`iso`)."""
    return datetime.fromisoformat(value.upper()).timestamp()


def schedule_name(email_id: str) -> str:
    """The Scheduler name (<= 64 of [0-9A-Za-z-_.]) of an email's scheduled send: one per
    emailId, so a duplicate request finds it (ConflictException) and a cancel can delete it."""
    return f"at-{hashlib.sha256(email_id.encode()).hexdigest()[:40]}"


def reason(at: str) -> str:
    """The status reason of a scheduled email."""
    return f"scheduled for {at}"
