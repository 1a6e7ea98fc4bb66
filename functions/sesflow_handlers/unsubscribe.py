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

import html
from typing import Any

from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent
from sesflow_core import status as st
from sesflow_core import suppression as sp
from sesflow_core import unsubscribe as unsub

from . import tracking
from ._common import Settings, client, logger, metrics, now_iso
from .secrets import unsubscribe_secrets

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto;">
<h1>{title}</h1>{body}</body></html>"""


def _page(code: int, title: str, body: str) -> dict[str, Any]:
    return {"statusCode": code, "headers": {"Content-Type": "text/html; charset=utf-8",
                                            "Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
            "body": PAGE.format(title=html.escape(title), body=body)}


def unsubscribe(settings: Settings, sub: unsub.Subscription) -> None:
    client("dynamodb").update_item(
        TableName=settings.suppression_table,
        Key={"address": {"S": sub.address}, "topic": {"S": sub.topic}},
        UpdateExpression=sp.ENTRY_UPDATE,
        ExpressionAttributeValues=sp.entry_values(sp.UNSUBSCRIBED_REASON, "one-click", now_iso()),
    )
    if sub.email_id:
        applied = tracking.record_event(settings, sub.email_id, f"unsubscribe:{sub.topic}",
                                        {"event": "Unsubscribe", "at": now_iso(), "topic": sub.topic},
                                        st.UNSUBSCRIBED, f"unsubscribed from {sub.topic}")
        if applied.changed:
            tracking.emit_status(settings, sub.email_id, st.UNSUBSCRIBED, applied.previous, applied.item,
                                 f"unsubscribed from {sub.topic}", sequence=applied.sequence)
    metrics.add_metric(name="Unsubscribes", unit="Count", value=1)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    request = LambdaFunctionUrlEvent(event)
    method = request.request_context.http.method.upper()
    token = request.get_query_string_value("token") or ""
    if method not in ("GET", "POST"):
        return {"statusCode": 405, "headers": {"Allow": "GET, POST"}, "body": ""}
    try:
        sub = unsub.verify_token(unsubscribe_secrets(), token)
    except unsub.InvalidToken as exc:
        logger.info("unsubscribe refused", extra={"reason": str(exc)})
        code = 403 if str(exc) in ("bad signature", "expired") else 400
        return _page(code, "This link is not valid",
                     "<p>The unsubscribe link is invalid or has expired. Use the link of a more recent email.</p>")
    topic = html.escape(sub.topic)
    if method == "GET":
        action = f"?token={html.escape(token)}"
        return _page(200, "Unsubscribe?", (
            f"<p>Stop receiving <strong>{topic}</strong> emails at this address?</p>"
            f'<form method="post" action="{action}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'))
    unsubscribe(settings, sub)
    logger.info("unsubscribed", extra={"topic": sub.topic, "emailId": sub.email_id})
    return _page(200, "You are unsubscribed", f"<p>You will no longer receive <strong>{topic}</strong> emails.</p>")
