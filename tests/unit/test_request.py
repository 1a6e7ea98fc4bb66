"""Send request validation: the contract's nasty cases."""

from __future__ import annotations

import pytest
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
