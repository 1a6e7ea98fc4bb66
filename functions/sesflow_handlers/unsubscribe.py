"""One-click unsubscribe (RFC 8058) behind a Lambda function URL.

* ``POST ?token=...`` (what mail clients send: RFC 8058 says the body SHOULD be
  ``multipart/form-data`` and MAY be urlencoded, with ``List-Unsubscribe=One-Click``):
  unsubscribes the address from the token's topic, whatever the body and its encoding —
  the signed token is the proof, and a client that words its body oddly must still be
  honoured; also the button of the GET page.
* ``GET ?token=...``: a confirmation page with a button; never unsubscribes by itself
  (mail scanners follow links).
* a forged, malformed or expired token: 4xx, nothing changes.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent
from sesflow_aws import unsubscribe as unsub_store
from sesflow_aws.secrets import unsubscribe_secrets
from sesflow_core import unsubscribe as unsub

from ._common import Settings, client, logger, metrics


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    request = LambdaFunctionUrlEvent(event)
    method = request.request_context.http.method.upper()
    if method not in ("GET", "POST"):
        return {"statusCode": 405, "headers": {"Allow": "GET, POST"}, "body": ""}
    token = request.get_query_string_value("token") or ""
    try:
        sub = unsub.verify_token(unsubscribe_secrets(client("secretsmanager"), settings.unsubscribe_secret_arn), token)
    except unsub.InvalidToken as exc:
        logger.info("unsubscribe refused", extra={"reason": str(exc)})
        return unsub_store.invalid_page(str(exc))
    if method == "GET":
        return unsub_store.confirmation_page(sub, token)
    unsub_store.unsubscribe(client, settings, sub)
    metrics.add_metric(name="Unsubscribes", unit="Count", value=1)
    logger.info("unsubscribed", extra={"topic": sub.topic, "emailId": sub.email_id})
    return unsub_store.done_page(sub)
