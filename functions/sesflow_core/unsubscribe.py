"""RFC 8058 one-click unsubscribe tokens: HMAC-SHA256 over address + topic + expiry.

``token = base64url(json payload) + "." + base64url(hmac)``. Several secrets may be
accepted at once (rotation): the first signs, all verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

DEFAULT_TTL_SECONDS = 90 * 24 * 3600


class InvalidToken(Exception):
    """Forged, malformed or expired."""


@dataclass(frozen=True)
class Subscription:
    address: str
    topic: str
    expires: int
    email_id: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(
    secret: bytes,
    address: str,
    topic: str,
    *,
    now: float | None = None,
    ttl: int = DEFAULT_TTL_SECONDS,
    email_id: str | None = None,
) -> str:
    """A token for ``address`` + ``topic`` until ``now + ttl``; ``email_id`` (optional) lets the
    unsubscribe be recorded on the email that carried the link."""
    expires = int((now if now is not None else time.time()) + ttl)
    doc: dict[str, object] = {"a": address.lower(), "t": topic, "e": expires}
    if email_id:
        doc["i"] = email_id
    payload = _b64(json.dumps(doc, separators=(",", ":")).encode())
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify_token(secrets: list[bytes], token: str, *, now: float | None = None) -> Subscription:
    try:
        payload, mac_text = token.split(".", 1)
        mac = _unb64(mac_text)
    except (ValueError, TypeError):
        raise InvalidToken("malformed token") from None
    if not any(hmac.compare_digest(hmac.new(s, payload.encode(), hashlib.sha256).digest(), mac) for s in secrets):
        raise InvalidToken("bad signature")
    try:
        data = json.loads(_unb64(payload))
        sub = Subscription(str(data["a"]), str(data["t"]), int(data["e"]), str(data["i"]) if data.get("i") else None)
    except (ValueError, KeyError, TypeError):
        raise InvalidToken("malformed payload") from None
    if sub.expires < (now if now is not None else time.time()):
        raise InvalidToken("expired")
    return sub
