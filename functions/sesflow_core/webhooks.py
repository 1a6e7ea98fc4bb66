"""Signed webhooks, plain Python: the registry, the signature, the URL rules, the retry budget.

Signatures follow the Standard Webhooks specification (standardwebhooks.com), so receivers can
verify them with its libraries (Python ``standardwebhooks``, and others for most languages) or
with the ten lines of :func:`verify`:

* ``webhook-id``: one id per (event, subscriber); the same on every retry (receivers dedupe on it);
* ``webhook-timestamp``: Unix seconds when this attempt was signed;
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``, one per
  active secret, separated by spaces (two while a rotated secret is still honoured);
* a secret is ``whsec_`` + base64 of 32 random bytes; the key is the decoded bytes.

Signing is hand-written (stdlib ``hmac``) rather than the ``standardwebhooks`` package: ten
lines, no dependency (and its import time) in the dispatcher; the tests verify what it signs
with that package.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import ipaddress
import re
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sesflow_core.errors import InvalidWebhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
#: a rotated secret keeps signing (beside the new one) this long, so receivers can switch over
PREVIOUS_SECRET_SECONDS = 24 * 3600
#: a receiver rejects a timestamp further than this from its clock (the snippet's default)
TOLERANCE_SECONDS = 300
#: retries end when the next one would start later than this after the first attempt
RETRY_BUDGET_SECONDS = 24 * 3600
#: seconds before each retry (the template's WebhookRetrySchedule): 8 attempts over ~20.6 h
DEFAULT_RETRY_SCHEDULE = (10, 60, 300, 1800, 7200, 21600, 43200)
MAX_HOOKS = 50
#: detail-types a subscriber can choose (shell-style patterns over these)
EVENT_TYPES = (
    "Email Status Changed",
    "Campaign *",
    "Sequence *",
)
#: every detail-type sesflow puts on the stack's bus
KNOWN_EVENTS = (
    "Email Status Changed",
    "Campaign Started",
    "Campaign Waiting",
    "Campaign Approval Requested",
    "Campaign Variant Chosen",
    "Campaign Stage Completed",
    "Campaign Completed",
    "Campaign Cancelled",
    "Campaign Failed",
    "Campaign Expired",
    "Sequence Enrolled",
    "Sequence Step",
    "Sequence Completed",
    "Sequence Exited",
    "Sequence Failed",
)
TEST_EVENT = "Webhook Test"
_ID = re.compile(r"^wh_[0-9a-f]{12}$")


# ---------------------------------------------------------------- signature
def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidWebhook("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(SECRET_PREFIX) :])


def signature(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secrets_: Iterable[str], msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three headers of one attempt, signed with every active secret."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets_),
        "content-type": "application/json",
        "user-agent": "sesflow-webhooks/1",
    }


def verify(secret: str, headers: dict[str, str], body: str, now: float | None = None) -> bool:
    """The receiver's check (README: "Verifying a webhook"): one of the signatures matches and
    the timestamp is within five minutes of the receiver's clock."""
    h = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(h["webhook-timestamp"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret, h.get("webhook-id", ""), timestamp, body)
    return any(hmac.compare_digest(expected, given) for given in h.get("webhook-signature", "").split())


def message_id(event_id: str, hook_id: str) -> str:
    """Stable per (event, subscriber): every retry and replay of one delivery has the same id."""
    return "msg_" + hashlib.sha256(f"{event_id}|{hook_id}".encode()).hexdigest()[:32]


# ---------------------------------------------------------------- registry
@dataclass
class Hook:
    id: str
    url: str
    events: list[str]
    secret: str
    previous_secret: str = ""
    rotated_at: float = 0.0
    created_at: str = ""
    description: str = ""

    def active_secrets(self, now: float) -> list[str]:
        keep_previous = self.previous_secret and now - self.rotated_at < PREVIOUS_SECRET_SECONDS
        return [self.secret, self.previous_secret] if keep_previous else [self.secret]

    def wants(self, detail_type: str, detail: dict[str, Any]) -> bool:
        if detail_type == TEST_EVENT:  # `sesflow webhook test` reaches only the hook it names
            return detail.get("hookId") == self.id
        return any(fnmatch.fnmatchcase(detail_type, pattern) for pattern in self.events)

    def public(self) -> dict[str, Any]:
        """What ``webhook list`` shows: no secret."""
        return {
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "createdAt": self.created_at,
            "description": self.description,
            "secretRotatedAt": self.rotated_at or None,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "events": self.events,
            "secret": self.secret,
            "previousSecret": self.previous_secret,
            "rotatedAt": self.rotated_at,
            "createdAt": self.created_at,
            "description": self.description,
        }


@dataclass
class Registry:
    """Every subscriber of one stack: the JSON document kept in the stack's webhook secret."""

    hooks: dict[str, Hook] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Registry:
        import json

        doc = json.loads(text or "{}")
        hooks = {}
        for hook_id, h in (doc.get("hooks") or {}).items():
            hooks[hook_id] = Hook(
                id=hook_id,
                url=h["url"],
                events=list(h["events"]),
                secret=h["secret"],
                previous_secret=h.get("previousSecret", ""),
                rotated_at=float(h.get("rotatedAt") or 0),
                created_at=h.get("createdAt", ""),
                description=h.get("description", ""),
            )
        return cls(hooks)

    def dump(self) -> str:
        import json

        return json.dumps({"version": 1, "hooks": {k: h.as_dict() for k, h in sorted(self.hooks.items())}})

    def get(self, hook_id: str) -> Hook:
        if hook_id not in self.hooks:
            raise InvalidWebhook(f"no webhook {hook_id!r} (see `sesflow webhook list`)")
        return self.hooks[hook_id]

    def add(self, url: str, events: list[str], created_at: str, description: str = "") -> Hook:
        if len(self.hooks) >= MAX_HOOKS:
            raise InvalidWebhook(f"a stack has at most {MAX_HOOKS} webhooks")
        hook = Hook(
            id="wh_" + secrets.token_hex(6),
            url=url,
            events=check_events(events),
            secret=new_secret(),
            created_at=created_at,
            description=description[:200],
        )
        self.hooks[hook.id] = hook
        return hook

    def rotate(self, hook_id: str, now: float, expire_previous: bool = False) -> Hook:
        hook = self.get(hook_id)
        hook.previous_secret = "" if expire_previous else hook.secret
        hook.secret = new_secret()
        hook.rotated_at = now
        return hook

    def matching(self, detail_type: str, detail: dict[str, Any]) -> list[Hook]:
        return [h for h in self.hooks.values() if h.wants(detail_type, detail)]


def check_events(patterns: list[str]) -> list[str]:
    """Each pattern (shell-style, e.g. ``Campaign *``) must select one of the events sesflow announces."""
    if not patterns:
        raise InvalidWebhook(f"choose the events to receive (--events), e.g. {', '.join(EVENT_TYPES)}, or '*'")
    out = []
    for p in (p.strip() for p in patterns):
        if p not in EVENT_TYPES and not any(fnmatch.fnmatchcase(e, p) for e in KNOWN_EVENTS):
            raise InvalidWebhook(f"event pattern {p!r} selects none of the events: {', '.join(KNOWN_EVENTS)}")
        out.append(p)
    return out


def valid_id(hook_id: str) -> bool:
    return bool(_ID.match(hook_id))


# ---------------------------------------------------------------- URL rules (SSRF)
Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def check_url(url: str, allow_loopback: bool = False, resolve: Resolver = _resolve) -> Destination:
    """A URL sesflow may POST to: https (http only to a loopback address on the local stack),
    no credentials in it, and a host whose every address is public — never private, loopback,
    link-local (169.254.169.254), multicast or reserved, so a subscriber cannot point the
    dispatcher at the Lambda runtime API or a VPC service. Checked when the hook is added and
    again at every delivery (the connection goes to the address checked: no DNS rebinding)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise InvalidWebhook(f"webhook URL must be https: {parts.scheme or 'no scheme'}")
    if parts.username or parts.password:
        raise InvalidWebhook("webhook URL must not carry credentials")
    host = parts.hostname or ""
    if not host:
        raise InvalidWebhook("webhook URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidWebhook(f"webhook URL port: {exc}") from None
    try:
        addresses = resolve(host, port)
    except OSError as exc:
        raise InvalidWebhook(f"webhook host {host!r} does not resolve: {exc}") from None
    if not addresses:
        raise InvalidWebhook(f"webhook host {host!r} does not resolve")
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if allow_loopback and ip.is_loopback:
            continue
        if not ip.is_global or ip.is_multicast:
            raise InvalidWebhook(f"webhook host {host!r} resolves to a non-public address ({ip})")
    if parts.scheme == "http" and not (allow_loopback and all(ipaddress.ip_address(a).is_loopback for a in addresses)):
        raise InvalidWebhook("webhook URL must be https (http only to 127.0.0.1 on the local stack)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, host, port, path, tuple(addresses))


# ---------------------------------------------------------------- retries
def parse_schedule(text: str) -> tuple[int, ...]:
    try:
        delays = tuple(int(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise InvalidWebhook(f"retry schedule must be seconds separated by commas: {text!r}") from None
    if not delays or any(d < 1 or d > 43200 for d in delays):
        raise InvalidWebhook("retry delays are 1..43200 seconds each (SQS's longest visibility timeout)")
    return delays


def next_retry(schedule: tuple[int, ...], attempt: int, first_attempt: float, now: float) -> int | None:
    """Seconds to wait before attempt ``attempt + 1`` after attempt ``attempt`` failed, or None
    when the budget is spent (no delay left, or it would start past 24 h after the first)."""
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1]
    if now + delay - first_attempt > RETRY_BUDGET_SECONDS:
        return None
    return delay
