"""A campaign's start time, send window and daily cap (``sesflow_core.campaign.schedule``):
validation, the next opening across days, weekends and daylight saving time, the cap's day."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sesflow_core.campaign.schedule import SendSchedule, iso
from sesflow_core.campaign.spec import CampaignSpec
from sesflow_core.errors import InvalidCampaign

WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:00", "timezone": "Europe/Berlin"}


def t(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


NOW = t("2026-11-24T10:00:00Z")  # a Tuesday


def schedule(**raw: Any) -> SendSchedule:
    return SendSchedule.from_input(raw, NOW)


def test_no_schedule_is_always_open() -> None:
    s = schedule()
    assert s.is_always_open and s.is_open(NOW) and s.resume_at(NOW, 10**6) == (NOW, "")
    assert SendSchedule.from_dict(s.as_dict()) == s


def test_a_window_opens_on_its_days_between_its_local_times() -> None:
    s = schedule(window=WEEKDAYS)
    assert s.is_open(t("2026-11-24T08:00:00Z"))  # 09:00 in Berlin (CET, +01:00)
    assert not s.is_open(t("2026-11-24T07:59:59Z"))
    assert not s.is_open(t("2026-11-24T16:00:00Z"))  # 17:00 Berlin: closed ([from, to))
    # Friday evening -> Monday 09:00 Berlin
    assert iso(s.next_open(t("2026-11-27T17:30:00Z"))) == "2026-11-30T08:00:00Z"
    assert s.resume_at(t("2026-11-28T12:00:00Z"), 0) == (t("2026-11-30T08:00:00Z"), "window")
    assert SendSchedule.from_dict(s.as_dict()) == s


def test_a_window_follows_daylight_saving_time() -> None:
    s = schedule(window={"from": "09:00", "to": "10:00", "timezone": "Europe/Berlin"})
    # the last Sunday of March 2027 (Berlin goes to CEST, +02:00): 09:00 local is 07:00 UTC
    assert iso(s.next_open(t("2027-03-27T12:00:00Z"))) == "2027-03-28T07:00:00Z"
    assert iso(s.next_open(t("2027-03-26T12:00:00Z"))) == "2027-03-27T08:00:00Z"
    # New York falls back on 2026-11-01: 09:00 EST is 14:00 UTC from then on
    ny = schedule(window={"from": "09:00", "to": "10:00", "timezone": "America/New_York"})
    assert iso(ny.next_open(t("2026-10-31T15:00:00Z"))) == "2026-11-01T14:00:00Z"
    assert iso(ny.next_open(t("2026-10-30T15:00:00Z"))) == "2026-10-31T13:00:00Z"


def test_a_window_starting_in_the_spring_forward_gap_opens_at_the_jump() -> None:
    """02:30 does not exist in Berlin on 2027-03-28 (02:00 -> 03:00): read with the offset
    before the change (+01:00), i.e. 01:30 UTC, which the clock shows as 03:30."""
    s = schedule(window={"from": "02:30", "to": "04:00", "timezone": "Europe/Berlin"})
    assert iso(s.next_open(t("2027-03-28T00:00:00Z"))) == "2027-03-28T01:30:00Z"


def test_the_daily_cap_waits_for_the_next_local_day_s_window() -> None:
    s = schedule(window=WEEKDAYS, dailyCap=100)
    tuesday_noon = t("2026-11-24T11:00:00Z")
    assert s.day_key(tuesday_noon) == "2026-11-24"
    assert s.resume_at(tuesday_noon, 99) == (tuesday_noon, "")
    assert s.resume_at(tuesday_noon, 100) == (t("2026-11-25T08:00:00Z"), "dailyCap")
    friday = t("2026-11-27T11:00:00Z")
    assert s.resume_at(friday, 100) == (t("2026-11-30T08:00:00Z"), "dailyCap")
    # the day is the zone's: 23:30 UTC on the 24th is already the 25th in Berlin
    assert s.day_key(t("2026-11-24T23:30:00Z")) == "2026-11-25"


def test_start_at_delays_the_first_opening() -> None:
    s = schedule(startAt="2026-11-30T10:00:00+01:00", window=WEEKDAYS)
    assert s.resume_at(NOW, 0) == (t("2026-11-30T09:00:00Z"), "startAt")
    assert s.is_open(t("2026-11-30T09:00:00Z"))
    # a startAt within the clock skew is now
    assert schedule(startAt="2026-11-24T09:59:30Z").start_at is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"startAt": "2026-11-24T09:00:00Z"}, "in the past"),
        ({"startAt": "2028-01-01T00:00:00Z"}, "more than a year ahead"),
        ({"startAt": "2026-12-01T09:00:00"}, "UTC offset"),
        ({"startAt": "next monday"}, "ISO 8601"),
        ({"window": {"from": "17:00", "to": "09:00"}}, "must be before window.to"),
        ({"window": {"from": "09:00", "to": "09:00"}}, "must be before window.to"),
        ({"window": {"from": "9am", "to": "17:00"}}, "HH:MM"),
        ({"window": {"from": "09:00", "to": "24:00"}}, "HH:MM"),
        ({"window": {"days": [], "from": "09:00", "to": "17:00"}}, "window.days"),
        ({"window": {"days": ["someday"], "from": "09:00", "to": "17:00"}}, "window.days"),
        ({"window": {"from": "09:00", "to": "17:00", "zone": "UTC"}}, "window must be an object"),
        ({"window": {"from": "09:00", "to": "17:00", "timezone": "Mars/Olympus"}}, "not a known IANA"),
        ({"timezone": "Europe/Nowhere"}, "not a known IANA"),
        ({"timezone": "../../etc/passwd"}, "IANA time zone name"),
        ({"timezone": "UTC", "window": {"from": "09:00", "to": "17:00", "timezone": "Europe/Berlin"}}, "differs"),
        ({"dailyCap": 0}, "dailyCap"),
        ({"dailyCap": -5}, "dailyCap"),
        ({"dailyCap": 2.5}, "dailyCap"),
        ({"dailyCap": "100"}, "dailyCap"),
    ],
)
def test_bad_schedule_input_is_refused_with_the_field_and_the_reason(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidCampaign, match=message):
        schedule(**raw)


def test_the_campaign_spec_carries_the_schedule_and_only_the_local_stack_a_clock() -> None:
    base = {"campaignId": "c1", "template": "welcome", "recipients": {"key": "k", "bucket": "b"}}
    spec = CampaignSpec.from_input({**base, "window": WEEKDAYS, "dailyCap": 10})
    assert spec.schedule.daily_cap == 10 and spec.schedule.timezone == "Europe/Berlin" and spec.clock.is_wall
    with pytest.raises(InvalidCampaign, match="local-stack test option"):
        CampaignSpec.from_input({**base, "clock": {"scale": 3600}})
    local = CampaignSpec.from_input(
        {**base, "clock": {"scale": 3600, "start": "2026-11-30T07:00:00Z"}, "startAt": "2026-11-30T08:00:00Z"},
        allow_clock=True,
    )
    # startAt is checked against the campaign's clock (a Monday 07:00 UTC), not the wall clock
    assert local.schedule.start_at == t("2026-11-30T08:00:00Z")
    assert abs(local.clock.now() - t("2026-11-30T07:00:00Z")) < 3600 * 5
    assert datetime.fromtimestamp(local.clock.start or 0, UTC).hour == 7


def test_a_slot_s_target_is_the_next_local_time_on_an_allowed_day() -> None:
    s = schedule(
        localTime="09:30", window={"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "17:00"}
    )
    monday = t("2026-11-30T00:00:00Z")
    assert iso(s.slot_target(9 * 60, monday)) == "2026-11-30T00:30:00Z"  # Tokyo, Monday 09:30
    assert iso(s.slot_target(-5 * 60, monday)) == "2026-11-30T14:30:00Z"  # New York, Monday 09:30
    assert iso(s.slot_target(14 * 60, monday)) == "2026-11-30T19:30:00Z"  # Kiribati: Tuesday 09:30 there
    # Saturday in Tokyo is skipped: the next allowed local day is Monday
    assert iso(s.slot_target(9 * 60, t("2026-11-28T00:00:00Z"))) == "2026-11-30T00:30:00Z"
    # with localTime the window's hours are the recipients': the campaign is not held to them
    assert s.is_open(t("2026-11-29T03:00:00Z"))


@pytest.mark.parametrize("name", ["campaign-start.json", "campaign-scheduled.json"])
def test_the_sample_campaign_inputs_are_valid(name: str) -> None:
    """events/campaign-*.json start the campaign machine as they are (startAt checked against a
    fixed day: the sample's date is fixed, like events/send-scheduled.json)."""
    import json
    from pathlib import Path

    raw = json.loads((Path(__file__).resolve().parents[2] / "events" / name).read_text())
    spec = CampaignSpec.from_input({k: v for k, v in raw.items() if k != "startAt"}, default_bucket="b")
    assert spec.campaign_id == raw["campaignId"]
    sched = SendSchedule.from_input(raw, t("2027-01-04T00:00:00Z"))
    assert (sched.daily_cap, sched.local_time is not None) == (raw.get("dailyCap"), "localTime" in raw)
