"""One email: render, build the MIME message, send it through SES at most once (the
ledger), shared by the send machine's step and the campaign's batch sender."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from sesflow_core import attachments, mime
from sesflow_core import unsubscribe as unsub
from sesflow_core.errors import (
    EmailCancelled,
    InvalidEmailRequest,
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


def attachment_files(client: Client, settings: Settings, request: SendRequest) -> list[tuple[Any, bytes]]:
    """The request's attachments with their content: inline ones as given, ``s3`` ones read
    here from the stack's AttachmentsBucket (never through state). A missing or too large
    object is :class:`InvalidEmailRequest` (the email is rejected with the reason)."""
    files: list[tuple[Any, bytes]] = []
    parsed = attachments.parse(request.attachments)
    if any(a.s3_key for a in parsed) and not settings.attachments_bucket:
        raise InvalidEmailRequest("attachments from S3 need the stack's AttachmentsBucket (ATTACHMENTS_BUCKET)")
    s3 = client("s3") if any(a.s3_key for a in parsed) else None
    for a in parsed:
        if a.content is not None:
            files.append((a, a.content))
            continue
        try:
            obj = s3.get_object(Bucket=settings.attachments_bucket, Key=a.s3_key)  # type: ignore[union-attr]
        except ClientError as exc:
            # without s3:ListBucket (not granted) S3 answers a missing key with AccessDenied
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "AccessDenied", "404", "403"):
                raise
            raise InvalidEmailRequest(
                f"attachment {a.filename}: s3 key {a.s3_key} not found in the AttachmentsBucket"
            ) from None
        size = int(obj.get("ContentLength") or 0)
        if size > attachments.MAX_ATTACHMENT_BYTES:
            obj["Body"].close()
            raise InvalidEmailRequest(
                f"attachment {a.filename}: {size} bytes; at most {attachments.MAX_ATTACHMENT_BYTES} "
                "(the message, base64-encoded, must stay within SES's 40 MB)"
            )
        files.append((a, obj["Body"].read()))
    return files


def deliver(
    client: Client, settings: Settings, request: SendRequest, rendered: Rendered, unsubscribe: str | None = None
) -> str:
    """Build and send; return the SES MessageId or raise a classified error."""
    sender = mime.resolve_sender(request, rendered, settings.default_from)
    files = attachment_files(client, settings, request) if request.attachments else []
    raw = mime.build_message(
        request,
        rendered,
        sender=sender,
        unsubscribe_url=unsubscribe,
        unsubscribe_mailto=settings.unsubscribe_mailto or None,
        message_domain=sender[0].rsplit("@", 1)[1],
        files=files,
    )
    return ses.send_raw(
        client("sesv2"),
        from_address=sender[0],
        to=request.to,
        raw=raw,
        tags=mime.ses_tags(request),
        configuration_set=settings.configuration_set_for(request.tracked(rendered.tracking)),
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
