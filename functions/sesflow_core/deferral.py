"""When a send SES refused for rate or quota is tried again (plain Python).

An EXPRESS execution lives at most five minutes, so the send machine retries throttling
only briefly in place; past that it *defers*: it records ``deferred`` and a one-time
EventBridge Scheduler schedule starts a new execution of the same request later, numbered
by ``sendRound``. After ``max_rounds`` deferrals the email is ``failed``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_THROTTLE_DELAY_SECONDS = 15 * 60


@dataclass(frozen=True)
class Deferral:
    give_up: bool
    next_round: int
    at: datetime | None = None
    reason: str = ""


def plan(
    error: str,
    send_round: int,
    *,
    max_rounds: int,
    throttle_wait: int,
    quota_wait: int,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> Deferral:
    """The next try of a send refused with ``error`` (``SesThrottled`` or
    ``SesDailyQuotaExceeded``) in round ``send_round`` (0: the first execution)."""
    next_round = send_round + 1
    if next_round > max_rounds:
        return Deferral(True, next_round, None, f"{error}: SES still refused after {send_round} deferred round(s)")
    now = now or datetime.now(UTC)
    if error == "SesDailyQuotaExceeded":
        delay = float(quota_wait)
    else:  # exponential backoff with "equal jitter" (half fixed, half random), at least one second
        ceiling = min(MAX_THROTTLE_DELAY_SECONDS, throttle_wait * 2**send_round)
        delay = max(1.0, (rng or random).uniform(ceiling / 2, ceiling))
    at = (now + timedelta(seconds=delay)).replace(microsecond=0)
    return Deferral(
        False,
        next_round,
        at,
        f"{error}: deferred to {at.strftime('%Y-%m-%dT%H:%M:%SZ')} (round {next_round} of {max_rounds})",
    )


def schedule_name(email_id: str, send_round: int) -> str:
    """A Scheduler name (<= 64 of [0-9A-Za-z-_.]) unique per email and round, so a
    duplicate deferral of the same round is one schedule."""
    return f"send-{hashlib.sha256(email_id.encode()).hexdigest()[:40]}-{send_round}"


def at_expression(at: datetime) -> str:
    """EventBridge Scheduler's one-time expression (UTC)."""
    return f"at({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"
