"""One-click unsubscribe (RFC 8058) behind a Lambda function URL.

* ``POST ?token=...`` with body ``List-Unsubscribe=One-Click`` (what mail clients send):
  unsubscribes the address from the token's topic; also the button of the GET page.
* ``GET ?token=...``: a confirmation page with a button; never unsubscribes by itself
  (mail scanners follow links).
* a forged, malformed or expired token: 4xx, nothing changes.
"""

from __future__ import annotations

import base64
import html
from typing import Any
from urllib.parse import parse_qs

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


def _body(event: dict[str, Any]) -> str:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    return str(body)


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
    method = event.get("requestContext", {}).get("http", {}).get("method", "GET").upper()
    token = (event.get("queryStringParameters") or {}).get("token", "")
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
    form = parse_qs(_body(event))
    if form.get("List-Unsubscribe") != ["One-Click"]:
        return _page(400, "Bad request", "<p>Expected List-Unsubscribe=One-Click.</p>")
    unsubscribe(settings, sub)
    logger.info("unsubscribed", extra={"topic": sub.topic, "emailId": sub.email_id})
    return _page(200, "You are unsubscribed", f"<p>You will no longer receive <strong>{topic}</strong> emails.</p>")
