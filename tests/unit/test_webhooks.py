"""Signed webhooks: signatures (checked with the Standard Webhooks library), the registry, the
URL rules, the retry budget, and the dispatcher's decisions (no network, no AWS)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from sesflow_aws import webhooks as aws_wh
from sesflow_core import webhooks as wh
from sesflow_core.errors import InvalidWebhook
from standardwebhooks.webhooks import Webhook

ROOT = Path(__file__).resolve().parents[2]
EVENT = {
    "id": "7bf73129-1428-4cd3-a780-95db273d1602",
    "detail-type": "Email Status Changed",
    "source": "sesflow",
    "time": "2026-11-24T10:00:00Z",
    "detail": {"emailId": "e-1", "status": "bounced"},
}


def public(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


# ---------------------------------------------------------------- signatures
def test_the_specification_library_verifies_what_we_sign() -> None:
    secret = wh.new_secret()
    body = aws_wh.payload(EVENT)
    headers = wh.signed_headers([secret], "msg_1", int(time.time()), body)
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    assert wh.verify(secret, headers, body)


def test_both_secrets_sign_during_a_rotation_and_either_verifies() -> None:
    registry = wh.Registry()
    hook = registry.add("https://hooks.example.org/x", ["*"], "2026-11-24T00:00:00Z")
    old = hook.secret
    registry.rotate(hook.id, now=1000.0)
    assert hook.active_secrets(1000.0 + 3600) == [hook.secret, old]
    headers = wh.signed_headers(hook.active_secrets(1000.0), "msg_1", 1000, "{}")
    assert len(headers["webhook-signature"].split()) == 2
    assert wh.verify(old, headers, "{}", now=1000) and wh.verify(hook.secret, headers, "{}", now=1000)
    assert hook.active_secrets(1000.0 + wh.PREVIOUS_SECRET_SECONDS + 1) == [hook.secret]
    registry.rotate(hook.id, now=2000.0, expire_previous=True)
    assert hook.active_secrets(2000.0) == [hook.secret]


@pytest.mark.parametrize(
    "change",
    [
        lambda h, b: (h, b + " "),  # body changed
        lambda h, b: ({**h, "webhook-id": "msg_2"}, b),  # id changed
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
    ],
)
def test_a_changed_message_does_not_verify(change: Any) -> None:
    secret = wh.new_secret()
    headers = wh.signed_headers([secret], "msg_1", 1000, "{}")
    assert wh.verify(secret, headers, "{}", now=1000)
    assert not wh.verify(secret, *change(headers, "{}"), now=1000)
    assert not wh.verify(wh.new_secret(), headers, "{}", now=1000)


def test_an_old_timestamp_does_not_verify() -> None:
    secret = wh.new_secret()
    headers = wh.signed_headers([secret], "msg_1", 1000, "{}")
    assert not wh.verify(secret, headers, "{}", now=1000 + wh.TOLERANCE_SECONDS + 1)


def test_the_message_id_is_stable_per_event_and_hook() -> None:
    assert wh.message_id("e1", "wh_a") == wh.message_id("e1", "wh_a")
    assert len({wh.message_id("e1", "wh_a"), wh.message_id("e2", "wh_a"), wh.message_id("e1", "wh_b")}) == 3


# ---------------------------------------------------------------- registry and events
def test_the_registry_round_trips_and_lists_no_secret() -> None:
    registry = wh.Registry()
    hook = registry.add("https://hooks.example.org/x", ["Campaign *"], "now", "crm")
    again = wh.Registry.parse(registry.dump())
    assert again.hooks[hook.id] == hook
    assert wh.valid_id(hook.id)
    assert "secret" not in json.dumps(hook.public()).lower().replace("secretrotatedat", "")


def test_hooks_get_the_events_they_chose_and_test_events_only_when_named() -> None:
    registry = wh.Registry()
    a = registry.add("https://a.example.org/", ["Email Status Changed"], "now")
    b = registry.add("https://b.example.org/", ["Campaign *", "Sequence Exited"], "now")
    assert registry.matching("Email Status Changed", {}) == [a]
    assert registry.matching("Campaign Completed", {}) == [b]
    assert registry.matching("Sequence Exited", {}) == [b]
    assert registry.matching("Sequence Step", {}) == []
    assert registry.matching(wh.TEST_EVENT, {"hookId": b.id}) == [b]


@pytest.mark.parametrize("patterns", [[], ["Email Requested"], ["Nothing *"]])
def test_event_patterns_must_select_an_event(patterns: list[str]) -> None:
    with pytest.raises(InvalidWebhook):
        wh.check_events(patterns)


def test_every_event_sesflow_puts_on_its_bus_is_known() -> None:
    """A new detail-type in the code must be listed (subscribers choose among them)."""
    code = "\n".join(p.read_text() for p in (ROOT / "functions").rglob("*.py"))
    code += (ROOT / "statemachines" / "send.asl.json").read_text()
    found = set(re.findall(r'"((?:Campaign|Sequence) [A-Z][a-z]+(?: [A-Z][a-z]+)?)"', code))
    found |= set(re.findall(r'"DetailType": "([^"]+)"', code))
    found |= {f"Campaign {s.title()}" for s in re.findall(r'status = "(\w+)"', code) if s != "completed"}
    emitted = {f for f in found if f != "Email Requested" and not f.startswith(("Campaign Spec", "Campaign Plan"))}
    missing = {e for e in emitted if not any(e == k for k in wh.KNOWN_EVENTS)}
    assert not missing, f"add to sesflow_core.webhooks.KNOWN_EVENTS: {sorted(missing)}"


# ---------------------------------------------------------------- URL rules
@pytest.mark.parametrize(
    ("url", "addresses", "loopback_ok"),
    [
        ("http://hooks.example.org/x", ["93.184.215.14"], False),  # not https
        ("https://user:pw@hooks.example.org/x", ["93.184.215.14"], False),  # credentials
        ("https://metadata/x", ["169.254.169.254"], False),  # link-local
        ("https://intranet/x", ["10.0.0.7"], False),  # private
        ("https://localhost:9001/2018-06-01/runtime", ["127.0.0.1"], False),  # the Lambda runtime API
        ("https://mixed.example.org/", ["93.184.215.14", "192.168.1.1"], False),  # one private answer
        ("https://v6.example.org/", ["fd00::1"], False),  # unique local
        ("ftp://hooks.example.org/", ["93.184.215.14"], False),
        ("http://localhost:8080/", ["10.1.1.1"], True),  # loopback allowed, private still not
    ],
)
def test_urls_that_could_reach_inside_are_refused(url: str, addresses: list[str], loopback_ok: bool) -> None:
    with pytest.raises(InvalidWebhook):
        wh.check_url(url, allow_loopback=loopback_ok, resolve=lambda h, p: addresses)


def test_a_public_https_url_and_a_local_receiver_are_accepted() -> None:
    dest = wh.check_url("https://hooks.example.org:8443/in?x=1", resolve=public)
    assert (dest.host, dest.port, dest.path, dest.addresses) == (
        "hooks.example.org",
        8443,
        "/in?x=1",
        ("93.184.215.14",),
    )
    local = wh.check_url("http://127.0.0.1:8080/hook", allow_loopback=True, resolve=lambda h, p: ["127.0.0.1"])
    assert local.scheme == "http"


# ---------------------------------------------------------------- retries
def test_the_default_schedule_retries_for_about_a_day_and_stops() -> None:
    schedule = wh.parse_schedule(aws_wh_default())
    now, first, attempt = 0.0, 0.0, 1
    while (delay := wh.next_retry(schedule, attempt, first, now)) is not None:
        now += delay
        attempt += 1
    assert attempt == 8 and 20 * 3600 < now <= wh.RETRY_BUDGET_SECONDS


def aws_wh_default() -> str:
    from sesflow.cfn_yaml import load_template

    return str(load_template(ROOT / "template.yaml")["Parameters"]["WebhookRetrySchedule"]["Default"])


def test_a_retry_past_24_hours_is_not_made() -> None:
    assert wh.next_retry((10, 43200, 43200), 3, first_attempt=0, now=50000) is None
    assert wh.next_retry((10,), 2, first_attempt=0, now=10) is None


@pytest.mark.parametrize("text", ["", "a,b", "0", "50000"])
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(InvalidWebhook):
        wh.parse_schedule(text)


# ---------------------------------------------------------------- dispatcher
class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.hidden: list[dict[str, Any]] = []

    def send_message(self, **kw: Any) -> None:
        self.sent.append(kw)

    def change_message_visibility(self, **kw: Any) -> None:
        self.hidden.append(kw)


def dispatcher(registry: wh.Registry, answers: list[int], clock: list[float]) -> tuple[aws_wh.Dispatcher, FakeSqs]:
    sqs = FakeSqs()
    calls = iter(answers)

    def send(url: str, headers: dict[str, str], body: str, loopback: bool) -> aws_wh.Attempt:
        status = next(calls)
        return aws_wh.Attempt(status, "" if status == 200 else f"HTTP {status}")

    return (
        aws_wh.Dispatcher(
            sqs=sqs,
            registry=lambda fresh: registry,
            queue_url="q",
            dead_letter_url="dlq",
            schedule=(10, 60),
            send=send,
            now=lambda: clock[0],
        ),
        sqs,
    )


def test_a_failed_first_attempt_queues_a_delayed_retry_for_that_hook_only() -> None:
    registry = wh.Registry()
    ok = registry.add("https://a.example.org/", ["*"], "now")
    down = registry.add("https://b.example.org/", ["*"], "now")
    clock = [1000.0]
    d, sqs = dispatcher(registry, [200, 503] if next(iter(registry.hooks)) == ok.id else [503, 200], clock)
    assert d.handle(EVENT) is True
    (retry,) = sqs.sent
    body = json.loads(retry["MessageBody"])
    assert retry["QueueUrl"] == "q" and retry["DelaySeconds"] == 10
    assert body["delivery"]["hook"] == down.id and body["delivery"]["attempt"] == 2
    assert body["delivery"]["lastError"] == "HTTP 503" and body["event"] == EVENT


def test_a_retry_not_due_is_hidden_until_due_and_the_last_failure_dead_letters() -> None:
    registry = wh.Registry()
    hook = registry.add("https://a.example.org/", ["*"], "now")
    clock = [1000.0]
    d, sqs = dispatcher(registry, [500, 500], clock)
    message = {"delivery": {"hook": hook.id, "attempt": 2, "firstAttempt": 1000.0, "notBefore": 5000.0}, "event": EVENT}
    assert d.handle(message, "rh") is False
    assert sqs.hidden[0]["VisibilityTimeout"] == 4001
    clock[0] = 5000.0
    assert d.handle(message, "rh") is True  # attempt 2 fails: one more retry (60 s)
    assert json.loads(sqs.sent[-1]["MessageBody"])["delivery"]["attempt"] == 3
    message["delivery"] = json.loads(sqs.sent[-1]["MessageBody"])["delivery"]
    clock[0] = 5060.0
    assert d.handle(message, "rh") is True  # attempt 3 fails: the schedule is spent
    dead = sqs.sent[-1]
    assert dead["QueueUrl"] == "dlq"
    assert json.loads(dead["MessageBody"])["delivery"]["attempts"] == 3


def test_a_delivery_to_a_removed_hook_is_dropped() -> None:
    d, sqs = dispatcher(wh.Registry(), [], [0.0])
    assert d.handle({"delivery": {"hook": "wh_000000000000", "attempt": 2}, "event": EVENT}) is True
    assert sqs.sent == []


def test_post_refuses_a_private_address_without_connecting() -> None:
    result = aws_wh.post("https://10.0.0.1/x", {}, "{}", allow_loopback=False)
    assert result.status == 0 and "non-public" in result.error
