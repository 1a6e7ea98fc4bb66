"""One email: render, build the MIME message, send it through SES at most once (the
ledger), shared by the send machine's step and the campaign's batch sender."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sesflow_core import mime
from sesflow_core import unsubscribe as unsub
from sesflow_core.errors import (
    EmailCancelled,
    SendInProgress,
    SesMessageRejected,
    SesOutcomeUnknown,
)
from sesflow_core.render import Rendered
from sesflow_core.request import SendRequest

from . import ledger, ses, templates
from .secrets import unsubscribe_secrets
from .settings import Settings

Client = Callable[[str], Any]


def unsubscribe_url(client: Client, settings: Settings, request: SendRequest) -> str | None:
    if request.transactional or not settings.unsubscribe_url:
        return None
    keys = unsubscribe_secrets(client("secretsmanager"), settings.unsubscribe_secret_arn)
    if not keys:
        return None
    token = unsub.make_token(keys[0], request.recipient, request.topic, email_id=request.emailId)
    sep = "&" if "?" in settings.unsubscribe_url else "?"
    return f"{settings.unsubscribe_url}{sep}token={token}"


def template_data(request: SendRequest, unsubscribe: str | None) -> dict[str, Any]:
    """What a template renders with: the request's data, and for subscription mail the
    one-click unsubscribe URL (templates show it as a footer link, as Gmail and Yahoo ask)."""
    return {**request.data, "unsubscribe_url": unsubscribe} if unsubscribe else request.data


def render(client: Client, settings: Settings, request: SendRequest, unsubscribe: str | None = None) -> Rendered:
    """Render in the send step: the message never travels through state (256 KiB limit)."""
    template = templates.load_template(
        client("s3"), settings.templates_bucket, request.template, settings.template_cache_ttl, request.locale
    )
    return template.render(template_data(request, unsubscribe), request.topic)


def deliver(
    client: Client, settings: Settings, request: SendRequest, rendered: Rendered, unsubscribe: str | None = None
) -> str:
    """Build and send; return the SES MessageId or raise a classified error."""
    sender = mime.resolve_sender(request, rendered, settings.default_from)
    raw = mime.build_message(
        request,
        rendered,
        sender=sender,
        unsubscribe_url=unsubscribe,
        unsubscribe_mailto=settings.unsubscribe_mailto or None,
        message_domain=sender[0].rsplit("@", 1)[1],
    )
    return ses.send_raw(
        client("sesv2"),
        from_address=sender[0],
        to=request.to,
        raw=raw,
        tags=mime.ses_tags(request),
        configuration_set=settings.configuration_set,
        reply_to=request.replyTo,
    )


def send_once(client: Client, settings: Settings, request: SendRequest, owner: str) -> dict[str, Any]:
    """The send step: ``{"emailId", "messageId", "duplicate"}``, or a named error.

    Another holder of the ledger: ``sent`` returns the first result (``duplicate``);
    ``rejected`` raises the first rejection again; ``cancelled`` (a scheduled email cancelled
    before its schedule's execution got here) raises ``EmailCancelled``; ``sending`` by this
    execution means an earlier attempt's outcome is unknown (not resent, ADR 0002); by another,
    ``SendInProgress``.
    """
    ddb, table = client("dynamodb"), settings.tracking_table
    holder = ledger.take(ddb, table, request.emailId, owner)
    if holder is not None:
        state = ledger.attr(holder, "sendState")
        if state == ledger.SENT:
            return {"emailId": request.emailId, "messageId": ledger.attr(holder, "messageId"), "duplicate": True}
        if state == ledger.REJECTED:
            raise SesMessageRejected(ledger.attr(holder, "reason") or "rejected by SES earlier")
        if state == ledger.CANCELLED:
            raise EmailCancelled(f"emailId {request.emailId} was cancelled before it was sent")
        if ledger.attr(holder, "sendOwner") == owner:
            raise SesOutcomeUnknown("an earlier attempt of this execution has an unknown outcome; not resending")
        raise SendInProgress(f"emailId {request.emailId} is being sent by another execution")
    try:
        unsubscribe = unsubscribe_url(client, settings, request)
        rendered = render(client, settings, request, unsubscribe)
        message_id = deliver(client, settings, request, rendered, unsubscribe)
    except SesOutcomeUnknown:
        raise  # the ledger stays "sending" by this execution: never sent again (ADR 0002)
    except SesMessageRejected as exc:  # SES refused this very message: it never goes
        ledger.release(ddb, table, request.emailId, ledger.REJECTED, reason=str(exc)[:500])
        raise
    except Exception as exc:
        # nothing was sent (a template, set-up, throttling or AWS error before or at the SES
        # call): a later run - a fixed template or set-up, a deferred round - may send
        ledger.release(ddb, table, request.emailId, ledger.RETRYABLE, reason=str(exc)[:500])
        raise
    extra = {"locale": rendered.locale} if rendered.locale else {}  # the locale it went out in
    ledger.release(
        ddb,
        table,
        request.emailId,
        ledger.SENT,
        messageId=message_id,
        templateVersion=rendered.template_version,
        **extra,
    )
    return {"emailId": request.emailId, "messageId": message_id, "duplicate": False}
