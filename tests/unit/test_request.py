"""Send request validation: the contract's nasty cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sesflow_core import deferral, scheduling
from sesflow_core.errors import InvalidEmailRequest
from sesflow_core.request import MAX_DATA_BYTES, SendRequest, validate

ID = "example.com"


def ok(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {"template": "welcome", "to": "user@example.org", "data": {"name": "A"}}
    base.update(overrides)
    return base


def test_minimal_request_is_normalised() -> None:
    req = validate(ok(to="User@Example.ORG"), identity=ID, default_email_id="exec-1")
    assert req.emailId == "exec-1"
    assert req.to == "User@example.org"  # domain lower-cased, local part kept
    assert req.recipient == "user@example.org"
    assert req.topic == "transactional" and req.transactional


def test_idn_domain_goes_out_as_punycode() -> None:
    req = validate(ok(to="ada@exämple.com"), identity=ID)
    assert req.to == "ada@xn--exmple-cua.com"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"to": "not-an-address"}, "to is not a valid address"),
        ({"to": "üser@example.com"}, "to is not a valid address"),  # SES needs an ASCII local part
        ({"to": "a@example.com\r\nBcc: victim@example.com"}, "CR, LF or NUL"),
        ({"toName": "Eve\r\nBcc: victim@example.com"}, "toName must not contain CR, LF"),
        ({"fromName": "x\x00y"}, "fromName must not contain"),
        ({"template": "../etc/passwd"}, "template must match"),
        ({"template": "Welcome"}, "template must match"),
        ({"emailId": "has space"}, "emailId must match"),
        ({"from": "ceo@evil.example"}, "from must belong to the sending identity example.com"),
        ({"replyTo": "x@notexample.com"}, "replyTo must belong"),
        ({"data": ["not", "an", "object"]}, "data must be a JSON object"),
        ({"data": {"blob": "x" * (MAX_DATA_BYTES + 1)}}, "data is"),
        ({"tags": {"emailId": "spoof"}}, "reserved"),
        ({"tags": {"ok": "bad value!"}}, "names and values must match"),
        ({"topic": "News Letter"}, "topic must match"),
        ({"bcc": "someone@example.com"}, "unknown field(s): bcc"),
    ],
)
def test_bad_requests_are_rejected_with_a_reason(overrides: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidEmailRequest, match=None) as err:
        validate(ok(**overrides), identity=ID)
    assert reason in str(err.value)


def test_not_an_object() -> None:
    with pytest.raises(InvalidEmailRequest, match="JSON object"):
        validate([1, 2], identity=ID)


def test_huge_request_is_rejected_before_parsing_fields() -> None:
    with pytest.raises(InvalidEmailRequest, match="the request is"):
        validate(ok(data={"a": "x" * 70_000}), identity=ID)


def test_from_may_be_a_subdomain_or_the_identity_itself() -> None:
    assert validate(ok(**{"from": "news@mail.example.com"}), identity=ID).from_ == "news@mail.example.com"
    req = validate(ok(**{"from": "only@example.com"}), identity="only@example.com")
    assert req.from_ == "only@example.com"
    with pytest.raises(InvalidEmailRequest):
        validate(ok(**{"from": "other@example.com"}), identity="only@example.com")


def test_round_trip_through_dict() -> None:
    from sesflow_core.request import SendRequest

    req = validate(ok(**{"from": "a@example.com", "tags": {"app": "x"}}), identity=ID)
    assert SendRequest.from_dict(req.to_dict()) == req


def test_a_deferred_request_validates_again_as_the_same_request() -> None:
    first = validate(
        {
            "to": "Ada@Example.org",
            "toName": "Ada",
            "template": "welcome",
            "data": {"a": 1},
            "topic": "news",
            "tags": {"app": "x"},
            "emailId": "e-1",
        },
        identity="example.com",
    )
    again = validate({**first.as_input(), "sendRound": 2}, identity="example.com")
    assert again == SendRequest(**{**first.__dict__, "sendRound": 2})


# ---------------------------------------------------------------- sendAt (scheduled sends)
NOW = datetime(2026, 11, 23, 12, 0, 0, 250_000, tzinfo=UTC)


def at(value: object) -> SendRequest:
    return validate(ok(sendAt=value), identity=ID, now=NOW)


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("2026-11-24T09:00:00Z", "2026-11-24T09:00:00Z"),
        ("2026-11-24T10:00:00+01:00", "2026-11-24T09:00:00Z"),
        ("2026-11-24T04:30-04:30", "2026-11-24T09:00:00Z"),  # seconds optional
        ("2026-11-24T10:00:00+0100", "2026-11-24T09:00:00Z"),  # basic offset
        ("2026-11-24t09:00:00z", "2026-11-24T09:00:00Z"),  # RFC 3339 allows lower case
        ("2026-11-24T09:00:00.000000001Z", "2026-11-24T09:00:00Z"),  # nanoseconds: truncated to µs
        ("2026-11-24T09:00:00.4Z", "2026-11-24T09:00:01Z"),  # rounded up: never before the time asked
        ("2027-11-23T12:00:00.25Z", "2027-11-23T12:00:01Z"),  # exactly 365 days ahead
    ],
)
def test_send_at_ahead_is_normalised_to_utc_seconds(value: str, normalised: str) -> None:
    req = at(value)
    assert (req.sendAt, req.scheduledFor) == (normalised, None)
    assert req.as_input()["sendAt"] == normalised


@pytest.mark.parametrize(
    "value", ["2026-11-23T12:00:00Z", "2026-11-23T11:59:00.25Z", "2026-11-23T12:00:00.25Z", "2026-11-23T13:00:00+01:00"]
)
def test_send_at_within_the_clock_skew_is_sent_at_once(value: str) -> None:
    """Up to 60 s in the past (or this very instant): no schedule, the time kept as scheduledFor."""
    req = at(value)
    assert req.sendAt is None and req.scheduledFor is not None
    assert req.scheduledFor <= "2026-11-23T12:00:01Z"


def test_no_send_at_and_null_send_at_are_sent_at_once() -> None:
    for req in (validate(ok(), identity=ID, now=NOW), at(None)):
        assert (req.sendAt, req.scheduledFor) == (None, None)
        assert "sendAt" not in req.as_input() and "scheduledFor" not in req.as_input()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2026-11-23T11:58:59Z", "sendAt 2026-11-23T11:58:59Z is in the past (now 2026-11-23T12:00:00Z)"),
        ("2020-01-01T00:00:00Z", "is in the past"),
        ("2027-11-23T12:00:01Z", "is more than 365 days ahead (latest 2027-11-23T12:00:00Z)"),
        ("2030-01-01T00:00:00+01:00", "is more than 365 days ahead"),
        ("2026-11-24T09:00:00", "sendAt 2026-11-24T09:00:00 has no UTC offset: add Z (UTC) or +HH:MM"),
        ("2026-11-24", "sendAt must be an ISO 8601 date and time with a UTC offset"),
        ("tomorrow 9am", "sendAt must be an ISO 8601 date and time with a UTC offset"),
        ("2026-11-24 09:00:00Z", "sendAt must be an ISO 8601"),  # a space instead of T
        ("1795478400", "sendAt must be an ISO 8601"),
        (1795478400, "sendAt must be an ISO 8601"),  # epoch numbers are not accepted
        ("2026-11-31T09:00:00Z", "sendAt 2026-11-31T09:00:00Z is not a valid date and time: day is out of range"),
        ("2026-11-24T25:00:00Z", "is not a valid date and time"),
        ("2026-11-24T09:00:00+25:00", "is not a valid date and time"),
    ],
)
def test_bad_send_at_is_rejected_with_a_reason(value: object, reason: str) -> None:
    with pytest.raises(InvalidEmailRequest) as err:
        at(value)
    assert reason in str(err.value)


def test_the_schedule_starts_the_request_without_send_at_and_with_scheduled_for() -> None:
    """What the schedule starts validates whenever it runs (a late Scheduler, a year later):
    scheduledFor is kept for the record, never checked against the clock."""
    first = validate(ok(emailId="e-1", sendAt="2026-12-01T09:00:00+01:00", tags={"app": "x"}), identity=ID, now=NOW)
    fired_input = first.scheduled_input()
    assert "sendAt" not in fired_input and fired_input["scheduledFor"] == "2026-12-01T08:00:00Z"
    much_later = datetime(2027, 6, 1, tzinfo=UTC)
    fired = validate(fired_input, identity=ID, now=much_later)
    assert fired == SendRequest(**{**first.__dict__, "sendAt": None, "scheduledFor": "2026-12-01T08:00:00Z"})
    # deferred after it fired (SES throttling): the next round keeps scheduledFor, never sendAt
    deferred = validate({**fired.as_input(), "sendRound": 1}, identity=ID, now=much_later)
    assert (deferred.sendAt, deferred.scheduledFor, deferred.sendRound) == (None, "2026-12-01T08:00:00Z", 1)


def test_scheduled_for_is_checked_for_form_only_and_excludes_send_at() -> None:
    assert (
        validate(ok(scheduledFor="2020-01-01T00:00:00Z"), identity=ID, now=NOW).scheduledFor == "2020-01-01T00:00:00Z"
    )
    with pytest.raises(InvalidEmailRequest, match=r"scheduledFor .* has no UTC offset"):
        validate(ok(scheduledFor="2026-12-01T09:00:00"), identity=ID, now=NOW)
    with pytest.raises(InvalidEmailRequest, match="sendAt and scheduledFor exclude each other"):
        validate(ok(sendAt="2026-12-01T09:00:00Z", scheduledFor="2026-12-01T09:00:00Z"), identity=ID, now=NOW)


def test_schedule_names_are_one_per_email_and_fit_scheduler() -> None:
    name = scheduling.schedule_name("e-1")
    assert name == scheduling.schedule_name("e-1") != scheduling.schedule_name("e-2")
    assert name.startswith("at-") and len(name) <= 64 and name.replace("-", "").isalnum()
    assert name != deferral.schedule_name("e-1", 0)


def test_a_schedule_is_never_created_for_now_or_the_past() -> None:
    assert scheduling.fire_time(NOW + timedelta(hours=1), NOW) == NOW + timedelta(hours=1)
    assert scheduling.fire_time(NOW, NOW) == NOW + scheduling.MIN_LEAD
