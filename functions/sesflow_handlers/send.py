"""SendEmail: render the template, build the MIME message and send it through SES v2, at
most once per emailId.

Input: ``{"request": <normalised>, "executionId": "..."}``.
Output: ``{"emailId", "messageId", "duplicate"}``.

The send ledger lives on the tracking item (``sendState``/``sendOwner``): it is taken with
a conditional write *before* the SES call and completed after it, so a retried state, a
redelivered event or a second execution for the same emailId never sends twice. States:

* absent / ``retryable``: free, this execution takes it (``sending``);
* ``sending`` by another execution: ``SendInProgress`` (the machine retries, then reads
  the result); ``sending`` by this execution: the earlier attempt's outcome is unknown
  (crash between the SES call and the ledger write), so nothing is sent again;
* ``sent``: the first result is returned (``duplicate: true``);
* ``rejected``: ``SesMessageRejected`` again, with the first reason.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from sesflow_core import mime, ses_errors
from sesflow_core import unsubscribe as unsub
from sesflow_core.errors import (
    SendInProgress,
    SesConfigurationError,
    SesMessageRejected,
    SesTransientError,
    TemplateNotFound,
    TemplateRenderError,
)
from sesflow_core.render import Rendered
from sesflow_core.request import SendRequest

from ._common import Settings, client, logger, metrics, now_iso
from .secrets import unsubscribe_secrets
from .templates import load_template

RETRYABLE, SENDING, SENT, REJECTED = "retryable", "sending", "sent", "rejected"


def take_ledger(settings: Settings, email_id: str, owner: str,
                fields: dict[str, str] | None = None) -> dict[str, Any] | None:
    """Take the ledger; return None when taken, else the item that holds it.

    ``fields`` are written once (``if_not_exists``) with the claim: campaigns create the
    tracking item this way (no ValidateRequest step before them).
    """
    ddb = client("dynamodb")
    names: dict[str, str] = {}
    values: dict[str, Any] = {
        ":sending": {"S": SENDING}, ":owner": {"S": owner},
        ":now": {"S": now_iso()}, ":retryable": {"S": RETRYABLE},
    }
    sets = ["sendState = :sending", "sendOwner = :owner", "sendStartedAt = :now"]
    for i, (k, v) in enumerate((fields or {}).items()):
        names[f"#f{i}"] = k
        values[f":f{i}"] = {"N": v[2:]} if v.startswith("N:") else {"S": v}
        sets.append(f"#f{i} = if_not_exists(#f{i}, :f{i})")
    try:
        ddb.update_item(
            TableName=settings.tracking_table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="attribute_not_exists(sendState) OR sendState = :retryable",
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": names} if names else {}),
        )
        return None
    except ddb.exceptions.ConditionalCheckFailedException:
        item: dict[str, Any] = ddb.get_item(
            TableName=settings.tracking_table, Key={"emailId": {"S": email_id}}, ConsistentRead=True
        ).get("Item", {})
        return item


def release_ledger(settings: Settings, email_id: str, state: str, **fields: str) -> None:
    names = {"#st": "sendState"}
    values = {":st": {"S": state}, ":now": {"S": now_iso()}}
    sets = ["#st = :st", "sendFinishedAt = :now"]
    for i, (k, v) in enumerate(fields.items()):
        names[f"#f{i}"] = k
        values[f":f{i}"] = {"S": v}
        sets.append(f"#f{i} = :f{i}")
    client("dynamodb").update_item(
        TableName=settings.tracking_table,
        Key={"emailId": {"S": email_id}},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def _attr(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name, {})
    return value.get("S") if isinstance(value, dict) else None


def unsubscribe_url(settings: Settings, request: SendRequest) -> str | None:
    if request.transactional or not settings.unsubscribe_url:
        return None
    secrets = unsubscribe_secrets()
    if not secrets:
        return None
    token = unsub.make_token(secrets[0], request.recipient, request.topic, email_id=request.emailId)
    sep = "&" if "?" in settings.unsubscribe_url else "?"
    return f"{settings.unsubscribe_url}{sep}token={token}"


def send(settings: Settings, request: SendRequest, rendered: Rendered) -> str:
    """Build and send; return the SES MessageId or raise a classified error."""
    sender = mime.resolve_sender(request, rendered, settings.default_from)
    raw = mime.build_message(
        request, rendered, sender=sender,
        unsubscribe_url=unsubscribe_url(settings, request),
        unsubscribe_mailto=settings.unsubscribe_mailto or None,
        message_domain=sender[0].rsplit("@", 1)[1],
    )
    kwargs: dict[str, Any] = {
        "FromEmailAddress": sender[0],
        "Destination": {"ToAddresses": [request.to]},
        "Content": {"Raw": {"Data": raw}},
        "EmailTags": mime.ses_tags(request),
        "ConfigurationSetName": settings.configuration_set,
    }
    if request.replyTo:
        kwargs["ReplyToAddresses"] = [request.replyTo]
    try:
        resp = client("sesv2").send_email(**kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise ses_errors.to_exception(err.get("Code", ""), err.get("Message", ""), status) from None
    except BotoCoreError as exc:  # connection errors: the message was not accepted
        raise SesTransientError(f"{type(exc).__name__}: {exc}") from None
    message_id: str = resp["MessageId"]
    return message_id


def render(settings: Settings, request: SendRequest) -> Rendered:
    """Render in the send step: the message never travels through state (256 KiB limit)."""
    template = load_template(settings.templates_bucket, request.template, settings.template_cache_ttl)
    return template.render(request.data, request.topic)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Input ``{"request": <normalised>, "executionId"}``; output ``{"emailId", "messageId",
    "duplicate"}``. Raises the error names the machine retries or catches."""
    settings = Settings.from_env()
    request = SendRequest.from_dict(event["request"])
    owner = event.get("executionId") or context.aws_request_id
    logger.append_keys(emailId=request.emailId, template=request.template, topic=request.topic)

    holder = take_ledger(settings, request.emailId, owner)
    if holder is not None:
        state = _attr(holder, "sendState")
        if state == SENT:
            logger.info("duplicate request: already sent")
            return {"emailId": request.emailId, "messageId": _attr(holder, "messageId"), "duplicate": True}
        if state == REJECTED:
            raise SesMessageRejected(_attr(holder, "reason") or "rejected by SES earlier")
        if _attr(holder, "sendOwner") == owner:
            raise SesTransientError("an earlier attempt of this execution has an unknown outcome; not resending")
        raise SendInProgress(f"emailId {request.emailId} is being sent by another execution")

    try:
        rendered = render(settings, request)
        message_id = send(settings, request, rendered)
    except (TemplateNotFound, TemplateRenderError, SesConfigurationError, *ses_errors.RETRYABLE) as exc:
        # nothing was sent: a later run (a fixed template or set-up, a deferred round) may send
        release_ledger(settings, request.emailId, RETRYABLE, reason=str(exc)[:500])
        metrics.add_metric(name=type(exc).__name__, unit="Count", value=1)
        logger.warning("not sent", extra={"error": type(exc).__name__})
        raise
    except Exception as exc:
        release_ledger(settings, request.emailId, REJECTED, reason=str(exc)[:500])
        logger.warning("send rejected", extra={"error": type(exc).__name__})
        raise
    release_ledger(settings, request.emailId, SENT, messageId=message_id, templateVersion=rendered.template_version)
    metrics.add_metric(name="EmailsSent", unit="Count", value=1)
    logger.info("sent", extra={"messageId": message_id})
    return {"emailId": request.emailId, "messageId": message_id, "duplicate": False}
