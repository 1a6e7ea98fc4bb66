"""Time as the stores record it (UTC, ISO 8601, second precision), and the clock a
campaign or a sequence enrollment runs on.

In AWS a :class:`Clock` is the wall clock. The embedded local AWS (only there: the function
environment has ``SESFLOW_LOCAL_STACK=1``) lets a test run one on a *time scale*: from a
chosen instant (``start``), ``scale`` seconds pass per real second, so a day of send windows,
daily caps or sequence waits takes seconds. Every wait is then ``virtual seconds / scale``
real seconds. Nothing else changes: Step Functions waits real seconds, as in AWS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

#: the fastest local clock: a day in one second
MAX_SCALE: Final = 86_400.0


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ClockError(ValueError):
    """A ``clock`` input that cannot be used (the caller turns it into its own domain error)."""


@dataclass(frozen=True)
class Clock:
    """``now() = start + (time.time() - anchor) * scale``; the wall clock when ``start`` is None."""

    scale: float = 1.0
    start: float | None = None  # epoch seconds the clock showed at ``anchor``
    anchor: float = 0.0  # real epoch seconds when it started

    def now(self) -> float:
        real = time.time()
        if self.start is None:
            return real
        return self.start + (real - self.anchor) * self.scale

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def real_time(self, t: float) -> float:
        """The real epoch seconds when this clock shows ``t``."""
        if self.start is None:
            return t
        return self.anchor + (t - self.start) / self.scale

    def real_seconds(self, seconds: float) -> float:
        """How long ``seconds`` of this clock's time take in real time."""
        return max(0.0, seconds) / self.scale

    @property
    def is_wall(self) -> bool:
        return self.start is None and self.scale == 1.0

    def as_dict(self) -> dict[str, Any]:
        """For a state machine's state (a plan, an enrollment): :meth:`from_dict` reads it back."""
        return {} if self.is_wall else {"scale": self.scale, "start": self.start, "anchor": self.anchor}

    @classmethod
    def from_dict(cls, raw: Any) -> Clock:
        if not raw:
            return cls()
        return cls(float(raw["scale"]), float(raw["start"]), float(raw["anchor"]))

    @classmethod
    def from_input(cls, raw: Any, *, allowed: bool, real_now: float | None = None) -> Clock:
        """A ``clock`` option of an input: ``{"scale": N, "start": "<ISO 8601 with offset>"}``
        (``start`` defaults to now). Only the local stack allows one (``allowed``)."""
        if raw in (None, {}):
            return cls()
        if not allowed:
            raise ClockError("clock (a time scale) is a local-stack test option: deployed stacks run on the wall clock")
        if not isinstance(raw, dict) or set(raw) - {"scale", "start"}:
            raise ClockError('clock must be {"scale": N, "start": "<ISO 8601 with offset>"}')
        scale = raw.get("scale", 1)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not 1 <= scale <= MAX_SCALE:
            raise ClockError(f"clock.scale must be a number, 1..{int(MAX_SCALE)} (a day per second)")
        real = time.time() if real_now is None else real_now
        start = raw.get("start")
        if start is None:
            at = real
        else:
            try:
                parsed = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
            except ValueError:
                raise ClockError(f"clock.start {start!r} is not an ISO 8601 date and time") from None
            if parsed.tzinfo is None:
                raise ClockError(f"clock.start {start!r} has no UTC offset")
            at = parsed.timestamp()
        return cls(float(scale), at, real)
