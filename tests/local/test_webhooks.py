"""Signed webhooks on the local stack: a receiver on 127.0.0.1 verifies every signature with
the Standard Webhooks library, sees a send's status events, retries after 5xx (one message
id throughout), the dead-letter queue after the retry budget, a replay, and a secret rotation.
The local stack retries after 1, 2 and 3 seconds (its WebhookRetrySchedule)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sesflow.target import Target

from ..helpers import poll
from .test_send_machine import WELCOME, run
from .test_sequences import cli_json

pytestmark = pytest.mark.local


@dataclass
class Receiver:
    """Answers each path with the next status of its script (then the last one, for ever)."""

    scripts: dict[str, list[int]] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0

    def answer(self, path: str) -> int:
        with self.lock:
            script = self.scripts.setdefault(path, [200])
            return script.pop(0) if len(script) > 1 else script[0]

    def for_path(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [c for c in self.calls if c["path"] == path]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
            status = rec.answer(self.path)
            with rec.lock:
                rec.calls.append({"path": self.path, "headers": dict(self.headers), "body": body, "status": status})
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield rec
    server.shutdown()


@pytest.fixture
def hooks(stack: Target) -> Iterator[list[str]]:
    """Hooks a test adds; removed after it (other tests' events must not reach them)."""
    added: list[str] = []
    yield added
    for hook in added:
        cli_json(stack, "webhook", "remove", hook)


def add(stack: Target, hooks: list[str], url: str, *events: str) -> dict[str, Any]:
    code, out = cli_json(stack, "webhook", "add", url, *(a for e in events for a in ("--events", e)))
    assert code == 0, out
    hooks.append(out["id"])
    return dict(out)


def verified(secret: str, call: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(call["body"], call["headers"])
    return payload


def dead_lettered(stack: Target, hook: str) -> list[dict[str, Any]]:
    sqs = stack.clients.client("sqs")
    url = stack.outputs["WebhookDeadLetterQueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    return [b for m in messages if (b := json.loads(m["Body"])).get("delivery", {}).get("hook") == hook]


def test_status_events_of_a_send_arrive_signed(stack: Target, receiver: Receiver, hooks: list[str]) -> None:
    hook = add(stack, hooks, receiver.url("/status"), "Email Status Changed")
    # a new hook is seen by the dispatcher at its next registry read (a test event forces one
    # in the sandbox that handles it; the stack runs several, as AWS does, and one that read
    # the registry before `add` knows the hook once its one-minute copy expires): an email
    # now and then, until one's `delivered` status comes by webhook
    assert cli_json(stack, "webhook", "test", hook["id"])[0] == 0
    poll(lambda: receiver.for_path("/status"), timeout=30, what="the test event")
    sent: list[str] = []
    last_send = [0.0]

    def delivered() -> list[dict[str, Any]]:
        if time.monotonic() - last_send[0] > 10:
            email_id = f"hook-{uuid.uuid4().hex[:8]}"
            assert run(stack, WELCOME | {"emailId": email_id}).output["status"] == "sent"
            sent.append(email_id)
            last_send[0] = time.monotonic()
        got = [verified(hook["secret"], c) for c in receiver.for_path("/status")]
        mine = [p for p in got if p["type"] == "Email Status Changed" and p["data"].get("emailId") in sent]
        done = {p["data"]["emailId"] for p in mine if p["data"]["status"] == "delivered"}
        return [p for p in mine if p["data"]["emailId"] in done]

    payloads = poll(delivered, timeout=150, interval=0.2, what="the delivered status of an email by webhook")
    assert {p["data"]["status"] for p in payloads} >= {"delivered"}
    assert all(p["id"] and p["timestamp"] for p in payloads)
    test_call = receiver.for_path("/status")[0]
    assert verified(hook["secret"], test_call)["type"] == "Webhook Test"
    with pytest.raises(WebhookVerificationError):  # another secret does not verify
        verified("whsec_" + "A" * 43 + "=", test_call)


def test_5xx_is_retried_with_the_same_message_id_until_accepted(
    stack: Target, receiver: Receiver, hooks: list[str]
) -> None:
    receiver.scripts["/flaky"] = [500, 503, 200]
    hook = add(stack, hooks, receiver.url("/flaky"), "Campaign *")
    assert cli_json(stack, "webhook", "test", hook["id"])[0] == 0
    calls = poll(lambda: (c := receiver.for_path("/flaky")) and len(c) >= 3 and c, timeout=30, what="3 attempts")
    assert [c["status"] for c in calls] == [500, 503, 200]
    assert len({c["headers"]["webhook-id"] for c in calls}) == 1  # receivers dedupe on it
    for c in calls:
        assert verified(hook["secret"], c)["type"] == "Webhook Test"
    assert dead_lettered(stack, hook["id"]) == []


def test_the_retry_budget_ends_in_the_dead_letter_queue_and_replay_sends_again(
    stack: Target, receiver: Receiver, hooks: list[str]
) -> None:
    receiver.scripts["/down"] = [503]
    hook = add(stack, hooks, receiver.url("/down"), "Sequence *")
    assert cli_json(stack, "webhook", "test", hook["id"])[0] == 0
    [dead] = poll(lambda: dead_lettered(stack, hook["id"]), timeout=40, what="the dead-lettered delivery")
    assert dead["delivery"]["attempts"] == 4  # the first and 3 retries (1, 2, 3 s)
    assert dead["delivery"]["lastError"] == "HTTP 503"
    assert len(receiver.for_path("/down")) == 4
    code, listed = cli_json(stack, "webhook", "list")
    assert code == 0 and listed["deadLettered"] >= 1
    assert hook["id"] in {h["id"] for h in listed["webhooks"]}
    assert all("secret" not in h for h in listed["webhooks"])

    receiver.scripts["/down"] = [200]
    code, out = cli_json(stack, "webhook", "replay", "--hook", hook["id"])
    assert code == 0 and out["replayed"] == 1
    calls = poll(lambda: (c := receiver.for_path("/down")) and c[-1]["status"] == 200 and c, timeout=30, what="replay")
    assert len({c["headers"]["webhook-id"] for c in calls}) == 1
    assert dead_lettered(stack, hook["id"]) == []


def test_a_rotated_secret_signs_beside_the_new_one(stack: Target, receiver: Receiver, hooks: list[str]) -> None:
    hook = add(stack, hooks, receiver.url("/rotate"), "*")
    code, rotated = cli_json(stack, "webhook", "rotate-secret", hook["id"])
    assert code == 0 and rotated["secret"] != hook["secret"]
    tested = [0.0]

    def rotated_call() -> dict[str, Any] | None:
        # a test event now and then: a dispatcher that read the registry between `add` and
        # `rotate-secret` signs with the old secret alone until its one-minute cache expires
        if time.monotonic() - tested[0] > 10:
            assert cli_json(stack, "webhook", "test", hook["id"])[0] == 0
            tested[0] = time.monotonic()
        for c in receiver.for_path("/rotate"):
            if len(c["headers"]["webhook-signature"].split()) == 2:
                return c
        return None

    call = poll(rotated_call, timeout=120, interval=0.2, what="a delivery signed with both secrets")
    assert verified(hook["secret"], call) == verified(rotated["secret"], call)


@pytest.mark.parametrize(
    ("url", "events", "reason"),
    [
        ("http://127.0.0.1:9/x", "Email Requested", "selects none"),
        ("ftp://127.0.0.1/x", "*", "https"),
        ("http://10.0.0.1/x", "*", "non-public"),
    ],
)
def test_bad_subscriptions_are_refused(stack: Target, url: str, events: str, reason: str) -> None:
    code, err = cli_json(stack, "webhook", "add", url, "--events", events)
    assert code == 2 and reason in err


def test_unknown_hooks_are_a_usage_error(stack: Target) -> None:
    for command in ("remove", "test", "rotate-secret"):
        code, err = cli_json(stack, "webhook", command, "wh_000000000000")
        assert code == 2 and "no webhook" in err
