"""ValidateRequest: check and normalise the send request, open its tracking item.

Input: ``{"request": <send request>, "executionName": "..."}``.
Output: ``{"valid": true, "request": <normalised>, "suppressionTopics", "meta"}``; for a
request that breaks the contract (the domain raises
``InvalidEmailRequest``) ``{"valid": false, "request": <what could be kept>, "outcome":
<rejected, with the reason>, "meta"}``, which the machine records as ``rejected``. The
emailId of a rejected request is its own when that is valid, else the execution name.
"""

from __future__ import annotations

import re
from typing import Any

from sesflow_core import ids, status
from sesflow_core import request as req

from ._common import Settings, client, logger, now_iso


def open_tracking_item(settings: Settings, request: req.SendRequest) -> None:
    """Create the tracking item as ``queued``; never overwrite what an earlier run wrote."""
    values: dict[str, Any] = {
        ":queued": {"S": status.QUEUED},
        ":rcpt": {"S": request.recipient},
        ":tpl": {"S": request.template},
        ":topic": {"S": request.topic},
        ":now": {"S": now_iso()},
        ":exp": {"N": str(settings.expires_at())},
    }
    sets = [
        "#s = if_not_exists(#s, :queued)",
        "recipient = if_not_exists(recipient, :rcpt)",
        "template = if_not_exists(template, :tpl)",
        "topic = if_not_exists(topic, :topic)",
        "createdAt = if_not_exists(createdAt, :now)",
        "expiresAt = if_not_exists(expiresAt, :exp)",
    ]
    if request.campaignId:
        values[":cid"] = {"S": request.campaignId}
        sets.append("campaignId = if_not_exists(campaignId, :cid)")
    client("dynamodb").update_item(
        TableName=settings.tracking_table,
        Key={"emailId": {"S": request.emailId}},
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=values,
    )


def _kept(raw: Any, key: str, pattern: str) -> str | None:
    """A field of a rejected request worth keeping on its record (only when well-formed)."""
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, str) and re.fullmatch(pattern, value) else None


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    raw = event.get("request", event) if isinstance(event, dict) else event
    execution_name = event.get("executionName") if isinstance(event, dict) else None
    meta = {"expiresAt": str(settings.expires_at())}
    try:
        request = req.validate(raw, identity=settings.sender_identity, default_email_id=execution_name)
    except req.InvalidEmailRequest as exc:
        email_id = _kept(raw, "emailId", ids.EMAIL_ID_PATTERN) or execution_name or "unknown"
        logger.info("request rejected", extra={"emailId": email_id, "reason": str(exc)})
        return {
            "valid": False,
            "request": {
                "emailId": email_id,
                "template": _kept(raw, "template", r"[a-z0-9_-]{1,64}"),
                "topic": _kept(raw, "topic", r"[a-z0-9_-]{1,64}"),
                "campaignId": _kept(raw, "campaignId", ids.CAMPAIGN_ID_PATTERN),
            },
            "outcome": {"emailId": email_id, "status": status.REJECTED, "messageId": None, "reason": str(exc)},
            "meta": meta,
        }
    logger.append_keys(emailId=request.emailId, template=request.template, topic=request.topic)
    open_tracking_item(settings, request)
    logger.info("request accepted")
    return {
        "valid": True,
        "meta": meta,
        "request": request.to_dict(),
        "suppressionTopics": {
            "all": "*",
            "topic": request.topic,
            "class": "~transactional" if request.transactional else "~subscription",
        },
    }
