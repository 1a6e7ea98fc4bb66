"""When a campaign may send: its start time, its send window and its daily cap (plain Python).

- ``startAt``: nothing goes out before it (ISO 8601 with an offset, at most a year ahead).
- ``window``: ``{"days": ["mon", ...], "from": "09:00", "to": "17:00", "timezone": "Europe/Berlin"}``:
  sending happens on those days between those local times (``from`` < ``to``, the same day);
  ``days`` defaults to every day, ``timezone`` to the campaign's ``timezone`` (else UTC).
- ``dailyCap``: at most that many emails per calendar day in that zone (counted by the batch
  sender, ``sesflow_aws.campaign_flow``); once reached, the campaign waits for the next day's
  window.

Local times go through ``zoneinfo``: a window follows daylight saving time (09:00 in Berlin is
08:00 UTC in winter, 07:00 UTC in summer). A ``from``/``to`` that does not exist on a
spring-forward day (02:30 in a 02:00-03:00 gap) is read with the offset before the change, as
``zoneinfo`` does (fold 0): the window opens the same absolute instant a wall clock jumping
forward would show it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidCampaign

DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_AHEAD: Final = timedelta(days=365)
CLOCK_SKEW: Final = timedelta(seconds=60)
EXAMPLE_WINDOW: Final = (
    '{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:00", "timezone": "Europe/Berlin"}'
)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})$")


def zone(name: Any, field: str) -> ZoneInfo:
    """An IANA time zone, or :class:`InvalidCampaign` naming ``field``."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise InvalidCampaign(f"{field} must be an IANA time zone name such as Europe/Berlin, not {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidCampaign(
            f"{field} {name!r} is not a known IANA time zone (e.g. Europe/Berlin, America/New_York)"
        ) from None


def local_time(value: Any, field: str) -> time:
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidCampaign(f"{field} must be a local time HH:MM (24 h), e.g. 09:30, not {value!r}")
    return time(int(match.group(1)), int(match.group(2)))


def instant(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or not _INSTANT.match(value):
        raise InvalidCampaign(
            f"{field} must be an ISO 8601 date and time with a UTC offset, e.g. 2026-12-01T09:00:00+01:00"
        )
    try:
        return datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)
    except ValueError as exc:
        raise InvalidCampaign(f"{field} {value} is not a valid date and time: {exc}") from None


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time

    def opening(self, day: date, tz: ZoneInfo) -> tuple[float, float] | None:
        """The window's [open, close) on ``day`` (local), in epoch seconds; None on a closed day."""
        if day.weekday() not in self.days:
            return None
        return (
            datetime.combine(day, self.start, tz).timestamp(),
            datetime.combine(day, self.end, tz).timestamp(),
        )


@dataclass(frozen=True)
class SendSchedule:
    """A campaign's start, window and daily cap. Times are epoch seconds of the campaign's clock."""

    timezone: str = "UTC"
    start_at: float | None = None
    window: Window | None = None
    daily_cap: int | None = None
    #: ``localTime``: each recipient at this time of their own zone (send slots by UTC offset)
    local_time: time | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_always_open(self) -> bool:
        return self.start_at is None and self.window is None and self.daily_cap is None

    # ------------------------------------------------------------ input, state
    @classmethod
    def from_input(cls, raw: dict[str, Any], now: float) -> SendSchedule:
        """``startAt``, ``window``, ``dailyCap`` and ``timezone`` of a campaign input, checked
        against ``now`` (the campaign's clock); :class:`InvalidCampaign` with the reason."""
        tz_name = raw.get("timezone") or "UTC"
        zone(tz_name, "timezone")
        start_at = None
        if raw.get("startAt") is not None:
            at = instant(raw["startAt"], "startAt")
            moment = datetime.fromtimestamp(now, UTC)
            if at < moment - CLOCK_SKEW:
                raise InvalidCampaign(
                    f"startAt {raw['startAt']} is in the past (now {moment:%Y-%m-%dT%H:%M:%SZ}): "
                    "leave it out to start now"
                )
            if at > moment + MAX_AHEAD:
                raise InvalidCampaign(
                    f"startAt {raw['startAt']} is more than a year ahead (at most {moment + MAX_AHEAD:%Y-%m-%d})"
                )
            start_at = at.timestamp() if at > moment else None
        window = None
        w = raw.get("window")
        if w is not None:
            if not isinstance(w, dict) or set(w) - {"days", "from", "to", "timezone"}:
                raise InvalidCampaign(f"window must be an object like {EXAMPLE_WINDOW}")
            if w.get("timezone") is not None:
                zone(w["timezone"], "window.timezone")
                if raw.get("timezone") and raw["timezone"] != w["timezone"]:
                    raise InvalidCampaign(
                        f"window.timezone {w['timezone']!r} differs from timezone {raw['timezone']!r}: give one"
                    )
                tz_name = w["timezone"]
            days = w.get("days", list(DAYS))
            if (
                not isinstance(days, list)
                or not days
                or any(not isinstance(d, str) or d.lower()[:3] not in DAYS for d in days)
            ):
                raise InvalidCampaign(f"window.days must be a non-empty list of {', '.join(DAYS)}")
            start, end = local_time(w.get("from"), "window.from"), local_time(w.get("to"), "window.to")
            if start >= end:
                raise InvalidCampaign(
                    f"window.from {w.get('from')} must be before window.to {w.get('to')} (a window within one day)"
                )
            window = Window(frozenset(DAYS.index(d.lower()[:3]) for d in days), start, end)
        cap = raw.get("dailyCap")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise InvalidCampaign(f"dailyCap must be a whole number of emails per day, at least 1, not {cap!r}")
        local = None
        if raw.get("localTime") is not None:
            local = local_time(raw["localTime"], "localTime")
            if window is not None and not window.start <= local < window.end:
                raise InvalidCampaign(
                    f"localTime {raw['localTime']} is outside the window "
                    f"{window.start:%H:%M}-{window.end:%H:%M}: "
                    "nobody could receive it (with localTime the window's days and hours are each recipient's own)"
                )
        return cls(str(tz_name), start_at, window, cap, local)

    def as_dict(self) -> dict[str, Any]:
        """For the plan (the state machine's state and the campaign item)."""
        out: dict[str, Any] = {"timezone": self.timezone}
        if self.start_at is not None:
            out["startAt"] = self.start_at
        if self.window is not None:
            out["window"] = {
                "days": [DAYS[d] for d in sorted(self.window.days)],
                "from": self.window.start.strftime("%H:%M"),
                "to": self.window.end.strftime("%H:%M"),
            }
        if self.daily_cap is not None:
            out["dailyCap"] = self.daily_cap
        if self.local_time is not None:
            out["localTime"] = self.local_time.strftime("%H:%M")
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> SendSchedule:
        raw = raw or {}
        w = raw.get("window")
        window = None
        if w:
            window = Window(
                frozenset(DAYS.index(d) for d in w["days"]),
                local_time(w["from"], "window.from"),
                local_time(w["to"], "window.to"),
            )
        start = raw.get("startAt")
        cap = raw.get("dailyCap")
        local = local_time(raw["localTime"], "localTime") if raw.get("localTime") else None
        return cls(
            str(raw.get("timezone") or "UTC"),
            float(start) if start is not None else None,
            window,
            int(cap) if cap else None,
            local,
        )

    # ------------------------------------------------------------ questions
    def day_key(self, t: float) -> str:
        """The calendar day of ``t`` in the campaign's zone (the daily cap's counter)."""
        return datetime.fromtimestamp(t, self.tz).strftime("%Y-%m-%d")

    def is_open(self, t: float) -> bool:
        """May an email go out at ``t`` (start time and window; not the cap)?"""
        return self.next_open(t) <= t

    def next_open(self, t: float) -> float:
        """The first instant >= ``t`` when sending may happen (start time and window)."""
        t = max(t, self.start_at or t)
        if self.window is None or self.local_time is not None:
            return t  # with localTime, each send slot's time follows the window (slot_target)
        tz = self.tz
        day = datetime.fromtimestamp(t, tz).date()
        for offset in range(8):  # the window opens at least once a week
            opening = self.window.opening(day + timedelta(days=offset), tz)
            if opening and t < opening[1]:
                return max(t, opening[0])
        raise AssertionError("a window with days opens within a week")  # pragma: no cover

    def next_day(self, t: float) -> float:
        """Local midnight after ``t`` (the next day of the daily cap)."""
        tz = self.tz
        tomorrow = datetime.fromtimestamp(t, tz).date() + timedelta(days=1)
        return datetime.combine(tomorrow, time(0), tz).timestamp()

    def slot_target(self, offset_minutes: int, t: float) -> float:
        """The first instant >= ``t`` when it is ``localTime`` at UTC ``offset_minutes`` on a day
        the window allows (a send slot's time)."""
        assert self.local_time is not None
        shift = timedelta(minutes=offset_minutes)
        local_now = datetime.fromtimestamp(t, UTC) + shift
        for days in range(9):
            day = local_now.date() + timedelta(days=days)
            if self.window is not None and day.weekday() not in self.window.days:
                continue
            at = datetime.combine(day, self.local_time, UTC) - shift
            if at.timestamp() >= t:
                return at.timestamp()
        raise AssertionError("a window with days opens within a week")  # pragma: no cover

    def resume_at(self, t: float, sent_today: int) -> tuple[float, str]:
        """When sending may (re)start from ``t``, given what was sent today, and why it waits
        (``""`` when it need not): ``startAt``, ``window`` or ``dailyCap``."""
        if self.daily_cap is not None and sent_today >= self.daily_cap:
            return self.next_open(self.next_day(t)), "dailyCap"
        at = self.next_open(t)
        if at <= t:
            return t, ""
        return at, "startAt" if self.start_at is not None and t < self.start_at else "window"


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
