"""The clock of a campaign or an enrollment: the wall clock in AWS, a time scale on the local stack."""

from __future__ import annotations

import pytest
from sesflow_core.clock import Clock, ClockError

from tests.unit.test_adapters import GLOBALS, TEMPLATE


def test_a_scaled_clock_runs_scale_times_faster_from_its_start() -> None:
    clock = Clock.from_input({"scale": 3600, "start": "2026-11-30T08:00:00+01:00"}, allowed=True, real_now=1000.0)
    assert clock.start == 1796022000.0 and clock.anchor == 1000.0
    assert clock.real_seconds(7200) == 2.0
    assert Clock.from_dict(clock.as_dict()) == clock


def test_the_wall_clock_is_the_default_and_has_no_state() -> None:
    assert Clock.from_input(None, allowed=False).is_wall
    assert Clock().as_dict() == {} and Clock.from_dict({}).is_wall
    assert Clock().real_seconds(5) == 5


@pytest.mark.parametrize(
    ("raw", "allowed", "message"),
    [
        ({"scale": 10}, False, "local-stack test option"),
        ({"scale": 0}, True, "clock.scale"),
        ({"scale": 10**6}, True, "clock.scale"),
        ({"scale": True}, True, "clock.scale"),
        ({"scale": 10, "start": "tomorrow"}, True, "not an ISO 8601"),
        ({"scale": 10, "start": "2026-11-30T08:00:00"}, True, "no UTC offset"),
        ({"scale": 10, "speed": 2}, True, "must be"),
    ],
)
def test_a_bad_clock_is_refused_with_the_reason(raw: object, allowed: bool, message: str) -> None:
    with pytest.raises(ClockError, match=message):
        Clock.from_input(raw, allowed=allowed)


def test_the_template_never_tells_a_function_it_runs_locally() -> None:
    """Only the embedded local AWS sets SESFLOW_LOCAL_STACK: in AWS a clock is refused."""
    assert "SESFLOW_LOCAL_STACK" not in GLOBALS
    for resource in TEMPLATE["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            assert "SESFLOW_LOCAL_STACK" not in resource["Properties"].get("Environment", {}).get("Variables", {})
