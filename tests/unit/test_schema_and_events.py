"""The JSON Schema of the send request agrees with the samples and the validator."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import jsonschema
import pytest
from sesflow_core import scheduling
from sesflow_core.errors import InvalidEmailRequest
from sesflow_core.request import KNOWN_FIELDS, validate

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "send-request.schema.json").read_text())
SAMPLES = sorted((ROOT / "events").glob("send-*.json"))


def test_schema_lists_exactly_the_fields_the_validator_knows() -> None:
    assert set(SCHEMA["properties"]) == set(KNOWN_FIELDS)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_match_the_schema(path: Path) -> None:
    jsonschema.validate(json.loads(path.read_text()), SCHEMA)


@pytest.mark.parametrize("path", [p for p in SAMPLES if "invalid" not in p.name], ids=lambda p: p.name)
def test_valid_samples_pass_the_validator(path: Path) -> None:
    sample = json.loads(path.read_text())
    # a scheduled sample's sendAt is a fixed date: checked as on the day before it
    now = scheduling.parse_instant(sample["sendAt"], "sendAt") - timedelta(days=1) if "sendAt" in sample else None
    request = validate(sample, identity="example.com", now=now)
    assert ("sendAt" in sample) == (request.sendAt is not None)


def test_invalid_sample_is_rejected_by_the_validator() -> None:
    with pytest.raises(InvalidEmailRequest):
        validate(json.loads((ROOT / "events" / "send-invalid.json").read_text()), identity="example.com")


@pytest.mark.parametrize(
    "bad",
    [
        {"template": "welcome"},
        {"template": "Welcome", "to": "a@example.com"},
        {"template": "welcome", "to": "a@example.com\r\nBcc: b@example.com"},
        {"template": "welcome", "to": "a@example.com", "cc": "x@example.com"},
        {"template": "welcome", "to": "a@example.com", "tags": {"emailId": "x"}},
    ],
)
def test_schema_refuses_bad_shapes(bad: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA)


def test_event_detail_is_a_send_request() -> None:
    event = json.loads((ROOT / "events" / "email-requested.json").read_text())
    jsonschema.validate(event["detail"], SCHEMA)
