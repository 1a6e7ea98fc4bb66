"""One-click unsubscribe: the suppression entry, the tracking event, and the pages."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from sesflow_core import status as st
from sesflow_core import suppression as sp
from sesflow_core import unsubscribe as unsub
from sesflow_core.clock import now_iso

from . import suppression, tracking
from .settings import Settings

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto;">
<h1>{title}</h1>{body}</body></html>"""


def page(code: int, title: str, body: str) -> dict[str, Any]:
    return {
        "statusCode": code,
        "headers": {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", "X-Robots-Tag": "noindex"},
        "body": PAGE.format(title=html.escape(title), body=body),
    }


def invalid_page(reason: str) -> dict[str, Any]:
    code = 403 if reason in ("bad signature", "expired") else 400
    return page(
        code,
        "This link is not valid",
        "<p>The unsubscribe link is invalid or has expired. Use the link of a more recent email.</p>",
    )


def confirmation_page(sub: unsub.Subscription, token: str) -> dict[str, Any]:
    return page(
        200,
        "Unsubscribe?",
        (
            f"<p>Stop receiving <strong>{html.escape(sub.topic)}</strong> emails at this address?</p>"
            f'<form method="post" action="?token={html.escape(token)}">'
            '<input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        ),
    )


def done_page(sub: unsub.Subscription) -> dict[str, Any]:
    return page(
        200,
        "You are unsubscribed",
        f"<p>You will no longer receive <strong>{html.escape(sub.topic)}</strong> emails.</p>",
    )


def unsubscribe(client: Callable[[str], Any], settings: Settings, sub: unsub.Subscription) -> None:
    ddb = client("dynamodb")
    suppression.add(ddb, settings.suppression_table, sub.address, sub.topic, sp.UNSUBSCRIBED_REASON, "one-click")
    if not sub.email_id:
        return
    reason = f"unsubscribed from {sub.topic}"
    applied = tracking.record_event(
        ddb,
        settings.tracking_table,
        sub.email_id,
        f"unsubscribe:{sub.topic}",
        {"event": "Unsubscribe", "at": now_iso(), "topic": sub.topic},
        st.UNSUBSCRIBED,
        reason,
    )
    if applied.changed:
        tracking.emit_status(
            client("events"),
            settings.event_bus,
            sub.email_id,
            st.UNSUBSCRIBED,
            applied.previous,
            applied.item,
            reason,
            sequence=applied.sequence,
        )
