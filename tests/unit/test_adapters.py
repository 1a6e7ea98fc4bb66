"""The adapters the handlers share: the send ledger, suppression lookups, tracking events
(status precedence and sequence), the template cache, the secrets, and the settings whose
defaults must agree with template.yaml."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest
from sesflow_aws import dynamo, ledger, secrets, settings, suppression, templates, tracking
from sesflow_core.errors import TemplateNotFound

from sesflow.cfn_yaml import load_template

from .conftest import ROOT, SUPPRESSION, TEMPLATES_BUCKET, TRACKING, Aws

# ---------------------------------------------------------------- ledger


def test_take_claims_a_free_ledger_once(aws: Aws) -> None:
    ddb = aws.client("dynamodb")
    assert ledger.take(ddb, TRACKING, "l-1", "owner-a") is None
    item = aws.item("l-1")
    assert (item["sendState"], item["sendOwner"]) == ("sending", "owner-a")
    holder = ledger.take(ddb, TRACKING, "l-1", "owner-b")
    assert holder is not None
    assert ledger.attr(holder, "sendOwner") == "owner-a" and ledger.attr(holder, "sendState") == "sending"
    assert ledger.take(ddb, TRACKING, "l-1", "owner-a") is not None  # never taken over, not even by its owner
    assert aws.item("l-1")["sendOwner"] == "owner-a"


def test_release_retryable_frees_it_sent_and_rejected_do_not(aws: Aws) -> None:
    ddb = aws.client("dynamodb")
    ledger.take(ddb, TRACKING, "l-2", "owner-a")
    ledger.release(ddb, TRACKING, "l-2", ledger.RETRYABLE, reason="throttled")
    assert aws.item("l-2")["reason"] == "throttled"
    assert ledger.take(ddb, TRACKING, "l-2", "owner-b") is None  # free again
    ledger.release(ddb, TRACKING, "l-2", ledger.SENT, messageId="m-1", templateVersion="v1")
    item = aws.item("l-2")
    assert (item["sendState"], item["sendOwner"], item["messageId"], item["templateVersion"]) == (
        "sent",
        "owner-b",
        "m-1",
        "v1",
    )
    assert "sendFinishedAt" in item
    holder = ledger.take(ddb, TRACKING, "l-2", "owner-c")
    assert holder is not None and ledger.attr(holder, "messageId") == "m-1"
    ledger.take(ddb, TRACKING, "l-3", "owner-a")
    ledger.release(ddb, TRACKING, "l-3", ledger.REJECTED, reason="bad")
    assert ledger.take(ddb, TRACKING, "l-3", "owner-b") is not None


def test_take_writes_its_fields_once(aws: Aws) -> None:
    ddb = aws.client("dynamodb")
    fields: dict[str, str | int] = {"status": "sent", "recipient": "a@example.org", "statusSequence": 1}
    assert ledger.take(ddb, TRACKING, "l-4", "owner-a", fields) is None
    assert aws.item("l-4")["statusSequence"] == 1  # a number, not a string
    ledger.release(ddb, TRACKING, "l-4", ledger.RETRYABLE)
    aws.client("dynamodb").update_item(
        TableName=TRACKING,
        Key={"emailId": {"S": "l-4"}},
        UpdateExpression="SET #s = :b",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":b": {"S": "bounced"}},
    )
    assert ledger.take(ddb, TRACKING, "l-4", "owner-b", {"status": "sent", "recipient": "other@example.org"}) is None
    item = aws.item("l-4")
    assert (item["status"], item["recipient"], item["sendOwner"]) == ("bounced", "a@example.org", "owner-b")


def test_attr_of_a_raw_item() -> None:
    assert ledger.attr({"a": {"S": "x"}, "n": {"N": "1"}}, "a") == "x"
    assert ledger.attr({"n": {"N": "1"}}, "n") is None
    assert ledger.attr({}, "missing") is None


# ---------------------------------------------------------------- suppression lookups


def test_suppressed_among_matches_every_topic_the_topic_and_its_class(aws: Aws) -> None:
    for address, topic in [
        ("all@example.org", "*"),
        ("news@example.org", "newsletter"),
        ("subs@example.org", "~subscription"),
        ("tx@example.org", "~transactional"),
        ("offers@example.org", "offers"),
        ("soft@example.org", "#soft-bounces"),  # a counter, never a suppression
    ]:
        aws.suppress(address, topic)
    everyone = [
        "all@example.org",
        "news@example.org",
        "subs@example.org",
        "tx@example.org",
        "offers@example.org",
        "soft@example.org",
        "clean@example.org",
    ]
    ddb = aws.client("dynamodb")
    assert suppression.suppressed_among(ddb, SUPPRESSION, everyone, "newsletter") == {
        "all@example.org",
        "news@example.org",
        "subs@example.org",
    }
    assert suppression.suppressed_among(ddb, SUPPRESSION, everyone, "transactional") == {
        "all@example.org",
        "tx@example.org",
    }
    assert suppression.suppressed_among(ddb, SUPPRESSION, everyone, "offers") == {
        "all@example.org",
        "subs@example.org",
        "offers@example.org",
    }
    assert suppression.suppressed_among(ddb, SUPPRESSION, [], "newsletter") == set()


def test_suppressed_among_more_than_one_request_of_keys(aws: Aws) -> None:
    addresses = [f"u{i}@example.org" for i in range(120)]  # 360 keys: 4 requests of <= 100
    for a in addresses[::7]:
        aws.suppress(a, "*")
    assert suppression.suppressed_among(aws.client("dynamodb"), SUPPRESSION, addresses, "newsletter") == set(
        addresses[::7]
    )


class FakeBatchGet:
    """A DynamoDB client whose BatchGetItem leaves keys unprocessed ``unprocessed_rounds`` times."""

    def __init__(self, suppressed: set[str], unprocessed_rounds: int | None) -> None:
        self.suppressed = suppressed
        self.rounds = unprocessed_rounds  # None: never finishes
        self.requests: list[list[dict[str, Any]]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        keys = RequestItems[SUPPRESSION]["Keys"]
        assert len(keys) <= 100
        self.requests.append(keys)
        if self.rounds is None:
            done, left = [], keys  # throttled for good
        elif self.rounds > 0:
            self.rounds -= 1
            done, left = keys[:1], keys[1:]  # one key per round, the rest unprocessed
        else:
            done, left = keys, []
        found = [
            {"address": k["address"]} for k in done if k["address"]["S"] in self.suppressed and k["topic"]["S"] == "*"
        ]
        resp: dict[str, Any] = {"Responses": {SUPPRESSION: found}}
        if left:
            resp["UnprocessedKeys"] = {SUPPRESSION: {"Keys": left, "ProjectionExpression": "address"}}
        return resp


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The retry attempts ``dynamo.batch_get`` backed off for (without waiting)."""
    attempts: list[int] = []
    real = dynamo.backoff_delay

    def no_delay(attempt: int, base: float, cap: float, jitter: Callable[[], float] = random.random) -> float:
        attempts.append(attempt)
        assert 0 <= real(attempt, base, cap, jitter) <= cap  # bounded, as it would have waited
        return 0.0

    monkeypatch.setattr(dynamo, "backoff_delay", no_delay)
    return attempts


def test_unprocessed_keys_are_retried_until_all_are_read(retries: list[int]) -> None:
    addresses = ["a@example.org", "b@example.org", "c@example.org"]
    fake = FakeBatchGet({"a@example.org", "c@example.org"}, unprocessed_rounds=2)
    assert suppression.suppressed_among(fake, SUPPRESSION, addresses, "newsletter") == {
        "a@example.org",
        "c@example.org",
    }
    assert [len(r) for r in fake.requests] == [9, 8, 7]  # only the unprocessed keys are asked again
    assert retries == [0, 1]  # backing off more each time


def test_keys_that_never_get_processed_raise_after_the_bounded_tries(retries: list[int]) -> None:
    fake = FakeBatchGet(set(), unprocessed_rounds=None)
    with pytest.raises(RuntimeError, match="still unprocessed after") as caught:
        suppression.suppressed_among(fake, SUPPRESSION, ["a@example.org", "b@example.org"], "newsletter")
    assert isinstance(caught.value, dynamo.BatchGetIncomplete)
    assert 2 <= len(fake.requests) == caught.value.attempts <= 10
    assert len(caught.value.unprocessed) == 6  # and it says what was left
    assert len(retries) == caught.value.attempts - 1  # no wait after the last try


# ---------------------------------------------------------------- tracking events


def sent_item(aws: Aws, email_id: str = "t-1", **attrs: Any) -> None:
    aws.put_item(
        email_id, **{"status": "sent", "messageId": "m-1", "template": "welcome", "statusSequence": 1, **attrs}
    )


def record(aws: Aws, key: str, new_status: str | None, email_id: str = "t-1") -> tracking.Applied:
    return tracking.record_event(
        aws.client("dynamodb"),
        TRACKING,
        email_id,
        key,
        {"event": key, "at": "2026-11-23T10:00:00Z"},
        new_status,
        f"because {key}" if new_status else None,
        {"lastEvent": key},
    )


def test_status_moves_forward_and_each_change_increments_the_sequence(aws: Aws) -> None:
    sent_item(aws)
    delivered = record(aws, "k-delivery", "delivered")
    assert (delivered.first_time, delivered.tracked, delivered.changed) == (True, True, True)
    assert (delivered.previous, delivered.sequence) == ("sent", 2)
    assert delivered.item is not None and delivered.item["status"] == {"S": "delivered"}
    bounced = record(aws, "k-bounce", "bounced")
    assert (bounced.previous, bounced.sequence) == ("delivered", 3)
    item = aws.item("t-1")
    assert (item["status"], item["previousStatus"], item["statusSequence"]) == ("bounced", "delivered", 3)
    assert item["reason"] == "because k-bounce"
    assert item["eventKeys"] == ["k-bounce", "k-delivery"]


def test_a_late_delivered_after_bounced_records_the_timeline_only(aws: Aws) -> None:
    sent_item(aws)
    record(aws, "k-bounce", "bounced")
    late = record(aws, "k-delivery", "delivered")
    assert (late.first_time, late.tracked, late.changed, late.sequence) == (True, True, False, None)
    item = aws.item("t-1")
    assert (item["status"], item["statusSequence"], item["reason"]) == ("bounced", 2, "because k-bounce")
    assert [e["event"] for e in aws.timeline("t-1")] == ["k-bounce", "k-delivery"]
    assert item["lastEvent"] == "k-delivery"  # the facts of the event are kept


def test_a_duplicate_event_is_not_applied_twice(aws: Aws) -> None:
    sent_item(aws)
    record(aws, "k-delivery", "delivered")
    again = record(aws, "k-delivery", "delivered")
    assert (again.first_time, again.tracked, again.changed) == (False, True, False)
    timeline_only = record(aws, "k-send", None)
    assert (timeline_only.first_time, timeline_only.changed) == (True, False)
    assert record(aws, "k-send", None).first_time is False
    item = aws.item("t-1")
    assert item["statusSequence"] == 2 and len(item["timeline"]) == 2


def test_an_untracked_email_is_not_created(aws: Aws) -> None:
    applied = record(aws, "k-delivery", "delivered", email_id="t-unknown")
    assert (applied.first_time, applied.tracked, applied.changed) == (True, False, False)
    assert aws.item("t-unknown") == {}


def test_the_first_status_write_starts_the_sequence_at_1(aws: Aws) -> None:
    aws.put_item("t-2", recipient="a@example.org")  # no status, no sequence yet
    applied = record(aws, "k-delivery", "delivered", email_id="t-2")
    assert (applied.previous, applied.sequence) == (None, 1)
    assert aws.item("t-2")["previousStatus"] == "none"


def test_a_reject_turns_sent_into_failed_but_never_a_delivery(aws: Aws) -> None:
    sent_item(aws)
    assert record(aws, "k-reject", "failed").changed is True
    sent_item(aws, email_id="t-3", status="delivered")
    assert record(aws, "k-reject", "failed", email_id="t-3").changed is False
    assert aws.item("t-3")["status"] == "delivered"


def test_find_email_id_by_message_id(aws: Aws) -> None:
    sent_item(aws)
    ddb = aws.client("dynamodb")
    assert tracking.find_email_id(ddb, TRACKING, "m-1") == "t-1"
    assert tracking.find_email_id(ddb, TRACKING, "m-none") is None


# ---------------------------------------------------------------- templates and secrets


def test_the_template_cache_rereads_only_a_changed_template_after_the_ttl(aws: Aws) -> None:
    s3 = aws.client("s3")
    aws.put_template("cached", "One {{ n }}", "<p>{{ n }}</p>")
    first = templates.load_template(s3, TEMPLATES_BUCKET, "cached", ttl=300)
    aws.put_template("cached", "Two {{ n }}", "<p>{{ n }}</p>")
    assert templates.load_template(s3, TEMPLATES_BUCKET, "cached", ttl=300) is first  # within the TTL
    second = templates.load_template(s3, TEMPLATES_BUCKET, "cached", ttl=0)  # past it, and changed
    assert second is not first and second.render({"n": 1}).subject == "Two 1"
    assert second.source.version != first.source.version
    assert templates.load_template(s3, TEMPLATES_BUCKET, "cached", ttl=0) is second  # unchanged: kept


def test_a_template_without_its_html_is_not_found(aws: Aws) -> None:
    aws.put_object(TEMPLATES_BUCKET, "half/metadata.json", json.dumps({"subject": "x"}))
    with pytest.raises(TemplateNotFound, match=r"template\.html missing"):
        templates.load_template(aws.client("s3"), TEMPLATES_BUCKET, "half", ttl=300)


def test_unsubscribe_secrets_current_first_then_previous(aws: Aws) -> None:
    sm = aws.client("secretsmanager")
    assert secrets.unsubscribe_secrets(sm, aws.secret_arn) == [
        b"current-unsubscribe-key",
        b"previous-unsubscribe-key",
    ]
    plain_arn = sm.create_secret(Name="plain", SecretString="just-a-key")["ARN"]
    assert secrets.unsubscribe_secrets(sm, plain_arn) == [b"just-a-key"]
    assert secrets.unsubscribe_secrets(sm, "") == []


# ---------------------------------------------------------------- settings agree with template.yaml

TEMPLATE = load_template(ROOT / "template.yaml")
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
GLOBALS: dict[str, Any] = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
#: Globals variables that take a parameter as they are (``!Ref Parameter``)
PARAMETER_VARIABLES = {
    name: value["Ref"]
    for name, value in GLOBALS.items()
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in PARAMETERS
}
NOT_SETTINGS = {"POWERTOOLS_LOG_LEVEL"}  # read by Powertools itself
KNOWN_MISMATCHES: dict[str, pytest.MarkDecorator] = {}


def test_the_template_still_passes_parameters_to_the_functions() -> None:
    assert len(PARAMETER_VARIABLES) >= 15, PARAMETER_VARIABLES  # the parse found them


@pytest.mark.parametrize(
    "variable",
    [
        pytest.param(v, marks=[KNOWN_MISMATCHES[v]] if v in KNOWN_MISMATCHES else [])
        for v in sorted(set(PARAMETER_VARIABLES) - NOT_SETTINGS)
    ],
)
def test_settings_defaults_agree_with_the_template_parameters(variable: str) -> None:
    parameter = PARAMETERS[PARAMETER_VARIABLES[variable]]
    assert "Default" in parameter, f"{PARAMETER_VARIABLES[variable]} has no default"
    assert variable in settings.DEFAULTS, f"{variable} is passed to every function but Settings never reads it"
    expected = str(parameter["Default"])
    assert settings.DEFAULTS[variable] == expected
    # and what the functions make of it: an empty environment reads as the template's default
    assert settings.Settings.from_env({}) == settings.Settings.from_env({variable: expected})


def test_every_variable_the_template_sets_is_a_setting() -> None:
    names = set(GLOBALS)
    for resource in TEMPLATE["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            names |= set(resource["Properties"].get("Environment", {}).get("Variables", {}))
    ours = {n for n in names if not n.startswith(("POWERTOOLS_", "OTEL_", "AWS_"))}
    assert ours <= set(settings.DEFAULTS), ours - set(settings.DEFAULTS)


def test_from_env_reads_every_setting() -> None:
    env = {
        "STAGE": "prod",
        "TRACKING_RETENTION_DAYS": "7",
        "MAX_SEND_ROUNDS": "0",
        "SYNC_ACCOUNT_SUPPRESSION": "TRUE",
        "CAMPAIGN_DELIVERY_TRACKING": "true",
        "FAULT_CRASH_AFTER_SENDS": "3",
        "TEMPLATE_CACHE_TTL_SECONDS": "0.5",
    }
    s = settings.Settings.from_env(env)
    assert (s.stage, s.tracking_retention_days, s.max_send_rounds) == ("prod", 7, 0)
    assert s.sync_account_suppression is True and s.campaign_delivery_tracking is True
    assert s.fault_crash_after_sends == 3 and s.template_cache_ttl == 0.5
    assert settings.Settings.from_env({}).fault_crash_after_sends is None
    assert s.expires_at(now=1000.0) == 1000 + 7 * 86400
