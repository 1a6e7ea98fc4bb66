"""SES error classification, status precedence, unsubscribe tokens, ASL contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sesflow_core import errors, status
from sesflow_core import unsubscribe as unsub
from sesflow_core.ses_errors import classify

from sesflow.staticcheck import SERVICE_ERROR_PREFIXES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("code", "message", "http", "expected"),
    [
        ("TooManyRequestsException", "Maximum sending rate exceeded.", 429, errors.SesThrottled),
        ("Throttling", "Maximum sending rate exceeded.", 400, errors.SesThrottled),
        ("LimitExceededException", "Daily message quota exceeded.", 400, errors.SesDailyQuotaExceeded),
        ("Throttling", "Daily message quota exceeded.", 400, errors.SesDailyQuotaExceeded),
        ("LimitExceededException", "Too many requests", 400, errors.SesThrottled),
        ("SendingPausedException", "Sending is paused for this account.", 400, errors.SesSendingPaused),
        ("AccountSuspendedException", "The account has been suspended.", 400, errors.SesSendingPaused),
        ("MessageRejected", "Email address is not verified.", 400, errors.SesConfigurationError),
        ("MessageRejected", "Message length is more than 40 MB.", 400, errors.SesMessageRejected),
        ("MailFromDomainNotVerifiedException", "", 400, errors.SesConfigurationError),
        ("NotFoundException", "Configuration set <x> does not exist.", 404, errors.SesConfigurationError),
        (
            "AccessDeniedException",
            "User: arn:aws:sts::1:assumed-role/r/f is not authorized to perform: "
            "ses:SendEmail on resource: arn:aws:ses:us-east-1:1:identity/rcpt@example.org",
            403,
            errors.SesConfigurationError,
        ),
        ("InternalFailure", "", 500, errors.SesOutcomeUnknown),
        ("ServiceUnavailable", "", 503, errors.SesTransientError),
        ("SomethingNew", "", 502, errors.SesOutcomeUnknown),
        ("SomethingNew", "", 503, errors.SesTransientError),
        ("RequestTimeout", "", 504, errors.SesOutcomeUnknown),
    ],
)
def test_classify(code: str, message: str, http: int, expected: type) -> None:
    assert classify(code, message, http) is expected


def test_access_denied_names_the_sandbox_fix() -> None:
    from sesflow_core.ses_errors import to_exception

    exc = to_exception("AccessDeniedException", "not authorized to perform: ses:SendEmail", 403)
    assert isinstance(exc, errors.SesConfigurationError) and "SesSandbox=true" in str(exc)


def test_status_never_regresses() -> None:
    assert status.may_replace(None, status.SENT)
    assert status.may_replace(status.QUEUED, status.SENT)
    assert not status.may_replace(status.DELIVERED, status.SENT)
    assert not status.may_replace(status.BOUNCED, status.DELIVERED)
    assert status.may_replace(status.DELIVERED, status.COMPLAINED)
    assert status.may_replace(status.FAILED, status.SENT)


def test_tokens_round_trip_and_refuse_forgery_and_expiry() -> None:
    tok = unsub.make_token(b"k1", "A@Example.com", "newsletter", now=1000, ttl=60)
    sub = unsub.verify_token([b"k1"], tok, now=1030)
    assert (sub.address, sub.topic) == ("a@example.com", "newsletter")
    assert unsub.verify_token([b"k2", b"k1"], tok, now=1030)  # rotation: old key still verifies
    with pytest.raises(unsub.InvalidToken, match="bad signature"):
        unsub.verify_token([b"other"], tok, now=1030)
    with pytest.raises(unsub.InvalidToken, match="expired"):
        unsub.verify_token([b"k1"], tok, now=2000)
    _, mac = tok.split(".")
    forged = unsub.make_token(b"k1", "b@example.com", "newsletter", now=1000).split(".")[0] + "." + mac
    with pytest.raises(unsub.InvalidToken):
        unsub.verify_token([b"k1"], forged, now=1030)
    with pytest.raises(unsub.InvalidToken, match="malformed"):
        unsub.verify_token([b"k1"], "garbage", now=1030)


def _asl() -> dict:
    return json.loads((ROOT / "statemachines" / "send.asl.json").read_text())


def _all_states(definition: dict) -> list[dict]:
    out = []
    for state in definition["States"].values():
        out.append(state)
        if "ItemProcessor" in state:
            out += _all_states(state["ItemProcessor"])
    return out


@pytest.mark.parametrize("machine", ["send", "campaign"])
def test_every_error_an_asl_names_is_a_domain_error(machine: str) -> None:
    definition = json.loads((ROOT / "statemachines" / f"{machine}.asl.json").read_text())
    names: set[str] = set()
    for state in _all_states(definition):
        for rule in state.get("Retry", []) + state.get("Catch", []):
            names.update(rule["ErrorEquals"])
    ours = {n for n in names if not n.startswith(SERVICE_ERROR_PREFIXES)}
    assert ours <= set(errors.ASL_ERROR_NAMES), ours - set(errors.ASL_ERROR_NAMES)


def test_the_send_machine_handles_every_contract_error() -> None:
    names: set[str] = set()
    for state in _asl()["States"].values():
        for rule in state.get("Retry", []) + state.get("Catch", []):
            names.update(rule["ErrorEquals"])
    ours = {n for n in names if not n.startswith(SERVICE_ERROR_PREFIXES)}
    assert ours <= set(errors.ASL_ERROR_NAMES), ours - set(errors.ASL_ERROR_NAMES)
    assert {
        "InvalidEmailRequest",
        "TemplateNotFound",
        "TemplateRenderError",
        "SesThrottled",
        "SesDailyQuotaExceeded",
        "SesSendingPaused",
        "SesMessageRejected",
    } <= ours


def test_states_all_is_always_the_last_catcher() -> None:
    for name, state in _asl()["States"].items():
        for rules in (state.get("Retry", []), state.get("Catch", [])):
            for i, rule in enumerate(rules):
                if "States.ALL" in rule["ErrorEquals"]:
                    assert i == len(rules) - 1, name


def test_record_states_replace_exactly_the_statuses_the_domain_allows() -> None:
    for name in ("RecordSent", "RecordStatus"):
        values = _asl()["States"][name]["Parameters"]["ExpressionAttributeValues"]
        listed = {k[1:] for k in values if k[1:] in status.RANK and k != ":sent" and k != ":status"}
        assert listed == set(status.REPLACEABLE_BY_SEND), name


def test_every_state_is_reachable_and_every_next_exists() -> None:
    states = _asl()["States"]
    seen, todo = set(), [_asl()["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        st = states[name]
        nxt = [st.get("Next"), st.get("Default")]
        nxt += [c["Next"] for c in st.get("Choices", []) + st.get("Catch", [])]
        todo += [n for n in nxt if n]
    assert seen == set(states)
