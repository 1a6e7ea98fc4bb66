"""The unsubscribe-token keys, from Secrets Manager through Powertools' parameters
utility (cached for five minutes, so rotation reaches warm functions)."""

from __future__ import annotations

import json
from typing import Any

MAX_AGE_SECONDS = 300

#: one provider (and its cache) per client: the local stack runs functions of several roles
_providers: dict[int, Any] = {}


def unsubscribe_secrets(secretsmanager: Any, arn: str) -> list[bytes]:
    """Current key first, then the previous one (rotation): ``{"current", "previous"}``
    JSON, or a plain string."""
    if not arn:
        return []
    from aws_lambda_powertools.utilities.parameters import SecretsProvider

    provider = _providers.setdefault(id(secretsmanager), SecretsProvider(boto3_client=secretsmanager))
    value = str(provider.get(arn, max_age=MAX_AGE_SECONDS))
    try:
        doc = json.loads(value)
        keys = [doc[k] for k in ("current", "previous") if isinstance(doc, dict) and doc.get(k)]
    except json.JSONDecodeError:
        keys = [value]
    return [str(k).encode() for k in keys] or [value.encode()]
