"""Signed webhooks on AWS: the registry in Secrets Manager, the HTTP POST, the dispatcher.

The path: the stack's bus → ``WebhookEventsRule`` → ``WebhookQueue`` (SQS) → WebhookFunction.
A message is either an EventBridge event (first attempt to every matching subscriber) or one
delivery (one subscriber, one event, the attempt number and when it may run). A failed attempt
becomes a new delivery message, delayed (``DelaySeconds`` up to 15 minutes, then the
message's visibility timeout, up to 12 hours, for the rest); past the retry budget it goes to
``WebhookDeadLetterQueue``, where ``sesflow webhook replay`` finds it. Each subscriber retries
on its own: one that is down never delays or duplicates another's deliveries.

At least once: a function that dies after a POST and before its message is deleted posts it
again; receivers dedupe on ``webhook-id`` (stable per event and subscriber).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sesflow_core import webhooks as wh
from sesflow_core.errors import InvalidWebhook

#: the dispatcher's copy of the registry (a removed hook stops within this; `webhook test` too)
REGISTRY_MAX_AGE = 60
CONNECT_TIMEOUT, READ_TIMEOUT = 5, 10
#: SQS: longest DelaySeconds; longest visibility timeout
MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS = 900, 43200
_providers: dict[int, Any] = {}


# ---------------------------------------------------------------- registry
def read_registry(secretsmanager: Any, arn: str) -> wh.Registry:
    """The registry now (CLI: every change starts from the current version)."""
    return wh.Registry.parse(secretsmanager.get_secret_value(SecretId=arn)["SecretString"])


def cached_registry(secretsmanager: Any, arn: str, fresh: bool = False) -> wh.Registry:
    """The registry through Powertools' parameters cache (dispatcher: one read a minute, or
    now when a message names a hook the cached copy does not know yet)."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    provider = _providers.setdefault(id(secretsmanager), SecretsProvider(boto3_client=secretsmanager))
    return wh.Registry.parse(str(provider.get(arn, max_age=REGISTRY_MAX_AGE, force_fetch=fresh)))


def write_registry(secretsmanager: Any, arn: str, registry: wh.Registry) -> None:
    secretsmanager.put_secret_value(SecretId=arn, SecretString=registry.dump())


# ---------------------------------------------------------------- HTTP
class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked (not a second DNS answer); Host stays the name."""

    def __init__(self, host: str, port: int, address: str) -> None:
        super().__init__(host, port, timeout=READ_TIMEOUT)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), CONNECT_TIMEOUT)
        self.sock.settimeout(READ_TIMEOUT)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    def __init__(self, host: str, port: int, address: str) -> None:
        super().__init__(host, port, address)
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        super().connect()
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self.host)


@dataclass(frozen=True)
class Attempt:
    status: int  # HTTP status; 0: no answer
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def post(url: str, headers: dict[str, str], body: str, allow_loopback: bool) -> Attempt:
    """One POST, no redirects followed (a 3xx is a failed attempt: a redirect could lead to an
    address the URL check never saw)."""
    try:
        dest = wh.check_url(url, allow_loopback=allow_loopback)
    except InvalidWebhook as exc:
        return Attempt(0, str(exc))
    conn_type = _PinnedHTTPSConnection if dest.scheme == "https" else _PinnedHTTPConnection
    conn = conn_type(dest.host, dest.port, dest.addresses[0])
    try:
        conn.request("POST", dest.path, body=body.encode(), headers=headers)
        response = conn.getresponse()
        response.read(65536)
        return Attempt(response.status, "" if 200 <= response.status < 300 else f"HTTP {response.status}")
    except (OSError, http.client.HTTPException) as exc:
        return Attempt(0, f"{type(exc).__name__}: {exc}"[:300])
    finally:
        conn.close()


# ---------------------------------------------------------------- dispatcher
def payload(event: dict[str, Any]) -> str:
    """What a subscriber receives (Standard Webhooks' shape): the type, the event id and time,
    and the event's detail as ``data``."""
    return json.dumps(
        {
            "type": event.get("detail-type", ""),
            "id": event.get("id", ""),
            "timestamp": event.get("time", ""),
            "data": event.get("detail", {}),
        },
        separators=(",", ":"),
        default=str,
    )


@dataclass
class Dispatcher:
    """Handles one SQS record at a time; True: done (delete it), False: leave it for later."""

    sqs: Any
    registry: Callable[[bool], wh.Registry]  # (fresh) -> the subscribers
    queue_url: str
    dead_letter_url: str
    schedule: tuple[int, ...]
    allow_loopback: bool = False
    send: Callable[[str, dict[str, str], str, bool], Attempt] = post
    now: Callable[[], float] = time.time
    counts: dict[str, int] | None = None

    def _count(self, name: str) -> None:
        if self.counts is not None:
            self.counts[name] = self.counts.get(name, 0) + 1

    def handle(self, body: dict[str, Any], receipt_handle: str = "") -> bool:
        if "delivery" in body:
            return self._retry(body["delivery"], body["event"], receipt_handle)
        event = body
        raw_detail = event.get("detail")
        detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
        detail_type = str(event.get("detail-type", ""))
        registry = self.registry(False)
        if detail_type == wh.TEST_EVENT and detail.get("hookId") not in registry.hooks:
            registry = self.registry(True)  # `webhook test` right after `webhook add`
        started = self.now()
        for hook in registry.matching(detail_type, detail):
            self._attempt(hook, event, {"hook": hook.id, "attempt": 1, "firstAttempt": started})
        return True

    def _retry(self, delivery: dict[str, Any], event: dict[str, Any], receipt_handle: str) -> bool:
        wait = float(delivery.get("notBefore", 0)) - self.now()
        if wait > 1 and receipt_handle:  # longer than DelaySeconds allows: hide it until due
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=receipt_handle,
                VisibilityTimeout=int(min(MAX_VISIBILITY_SECONDS, wait + 1)),
            )
            return False
        hook_id = str(delivery.get("hook"))
        hook = self.registry(False).hooks.get(hook_id) or self.registry(True).hooks.get(hook_id)
        if hook is None:  # removed since: nobody to deliver to
            self._count("WebhookDeliveriesDropped")
            return True
        self._attempt(hook, event, delivery)
        return True

    def _attempt(self, hook: wh.Hook, event: dict[str, Any], delivery: dict[str, Any]) -> None:
        now = self.now()
        body = payload(event)
        msg_id = wh.message_id(str(event.get("id", "")), hook.id)
        headers = wh.signed_headers(hook.active_secrets(now), msg_id, int(now), body)
        result = self.send(hook.url, headers, body, self.allow_loopback)
        if result.ok:
            self._count("WebhookDeliveries")
            return
        self._count("WebhookDeliveryFailures")
        attempt = int(delivery.get("attempt", 1))
        first = float(delivery.get("firstAttempt") or now)
        delay = wh.next_retry(self.schedule, attempt, first, now)
        failed = {**delivery, "lastStatus": result.status, "lastError": result.error, "lastAttemptAt": now}
        if delay is None:
            self._count("WebhookDeadLettered")
            self.sqs.send_message(
                QueueUrl=self.dead_letter_url,
                MessageBody=json.dumps({"delivery": {**failed, "attempts": attempt}, "event": event}, default=str),
            )
            return
        retry = {**failed, "attempt": attempt + 1, "firstAttempt": first, "notBefore": now + delay}
        self.sqs.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"delivery": retry, "event": event}, default=str),
            DelaySeconds=min(MAX_DELAY_SECONDS, delay),
        )
