"""The unsubscribe-token secrets, from Secrets Manager, cached for a few minutes."""

from __future__ import annotations

import json
import os
import time

from ._common import client

_TTL = 300.0
_cache: dict[str, tuple[float, list[bytes]]] = {}


def unsubscribe_secrets() -> list[bytes]:
    """Current secret first, then the previous one (rotation): ``{"current", "previous"}``
    JSON, or a plain string."""
    arn = os.environ.get("UNSUBSCRIBE_SECRET_ARN", "")
    if not arn:
        return []
    hit = _cache.get(arn)
    if hit and time.monotonic() - hit[0] < _TTL:
        return hit[1]
    value = client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    try:
        doc = json.loads(value)
        keys = [doc[k] for k in ("current", "previous") if isinstance(doc, dict) and doc.get(k)]
    except json.JSONDecodeError:
        keys = [value]
    secrets = [k.encode() for k in keys] or [value.encode()]
    _cache[arn] = (time.monotonic(), secrets)
    return secrets
