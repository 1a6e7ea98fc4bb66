"""Drip sequence definitions: the starters, the schema, the checks, one step's decisions."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml  # type: ignore[import-untyped]
from sesflow_core import sequence as sq

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "sequence.schema.json").read_text())


def starter(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "sequences" / f"{name}.yaml").read_text())
    return loaded


@pytest.mark.parametrize("name", ["onboarding", "winback"])
def test_the_starters_are_valid_for_the_schema_and_the_checks(name: str) -> None:
    raw = starter(name)
    jsonschema.validate(raw, SCHEMA)
    seq = sq.Sequence.parse(raw)
    assert seq.name == name and all((ROOT / "templates" / t / "metadata.json").is_file() for t in seq.templates())


def steps(*items: dict[str, Any]) -> dict[str, Any]:
    return {"name": "t", "topic": "news", "steps": [{"id": "s0", "type": "send", "template": "welcome"}, *items]}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (steps({"id": "w", "type": "wait", "duration": "2d", "next": "s0"}), "cycle: s0 -> w -> s0"),
        (steps({"id": "b", "type": "branch", "when": [{"if": "opened", "goto": "s0"}]}), "cycle"),
        (steps({"id": "w", "type": "wait", "duration": "soon"}), "duration must look like"),
        (steps({"id": "w", "type": "wait", "until": "25:00"}), "until must be a local time"),
        (steps({"id": "w", "type": "wait", "until": "09:00", "timezone": "Mars/Base"}), "IANA"),
        (
            steps({"id": "w", "type": "wait", "duration": "200d"}, {"id": "v", "type": "wait", "duration": "200d"}),
            "400 days",
        ),
        (steps({"id": "b", "type": "branch", "when": [{"if": "read", "goto": "exit"}]}), "unknown condition"),
        (steps({"id": "x", "type": "send", "template": "welcome", "next": "nowhere"}), "which is no step"),
        (steps({"id": "s0", "type": "exit"}), "ids must differ"),
        (steps({"id": "x", "type": "teleport"}), "type must be"),
        (steps({"id": "x", "type": "send", "template": "welcome", "colour": "red"}), "unknown field"),
        ({"name": "t", "steps": [{"id": "w", "type": "wait", "duration": "1d"}]}, "at least one send"),
        ({"name": "Bad Name", "steps": []}, "name must match"),
    ],
)
def test_a_bad_definition_is_refused_with_the_reason(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(sq.InvalidSequence, match=message):
        sq.Sequence.parse(raw)


def test_durations_and_waits_until_a_local_time() -> None:
    assert sq.duration("1d12h", "w").total_seconds() == 36 * 3600
    assert sq.duration("PT90M", "w").total_seconds() == 5400
    step = sq.Sequence.parse(steps({"id": "w", "type": "wait", "until": "10:00"})).steps[1]
    now = datetime.fromisoformat("2027-03-27T12:00:00+00:00").timestamp()  # Berlin still CET
    # the next 10:00 in Berlin is on the 28th, after the change to CEST: 08:00 UTC
    assert sq.wait_seconds(step, now, "Europe/Berlin") == 20 * 3600


def test_a_branch_reads_the_previous_email() -> None:
    seq = sq.Sequence.parse(
        steps(
            {
                "id": "b",
                "type": "branch",
                "when": [{"if": "bounced", "goto": "exit"}, {"if": "not-opened", "goto": "nudge"}],
                "else": "next",
            },
            {"id": "thanks", "type": "send", "template": "welcome", "next": "exit"},
            {"id": "nudge", "type": "send", "template": "welcome"},
        )
    )
    branch = seq.steps[1]
    assert sq.branch_target(branch, {"status": "bounced"}) == "exit"
    assert sq.branch_target(branch, {"status": "delivered"}) == "nudge"
    assert sq.branch_target(branch, {"status": "delivered", "opens": 1}) == "next"


def test_the_enrollment_key_and_email_ids_hold_no_address_and_are_stable() -> None:
    key = sq.enrollment_key("onboarding", "Ada@Example.org", "default")
    assert key == sq.enrollment_key("onboarding", "ada@example.org", "default") and "ada" not in key
    assert key != sq.enrollment_key("onboarding", "ada@example.org", "second")
    assert sq.email_id(key, "welcome") == sq.email_id(key, "welcome") != sq.email_id(key, "tips")
    assert len(key) <= 80 and len(sq.email_id(key, "x")) <= 80
