"""ValidateRequest: check and normalise the send request, open its tracking item.

Input: ``{"request": <send request>, "executionName": "...", "executionId": "..."}``.
Output: ``{"valid": true, "request": <normalised>, "suppressionTopics", "meta"}``, plus
``"repeat": <outcome>`` when another execution has sent this emailId or is sending it
(``tracking.repeat_outcome``: the machine ends with that outcome and does nothing); for a
request that breaks the contract ``{"valid": false, "request": <what could be kept>,
"outcome": <rejected, with the reason>, "meta"}``, which the machine records as
``rejected``. A rejected request's emailId is its own when valid, else the execution name.
A request with ``sendAt`` ahead keeps it in ``request`` (the machine then schedules it), and
its item is kept ``TrackingRetentionDays`` after that time rather than after now.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sesflow_aws import tracking
from sesflow_core import request as req
from sesflow_core import scheduling, status, suppression
from sesflow_core.errors import InvalidEmailRequest

from ._common import Settings, client, logger


@logger.inject_lambda_context(log_event=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    raw = event.get("request", event) if isinstance(event, dict) else event
    execution_name = event.get("executionName") if isinstance(event, dict) else None
    now = time.time()
    try:
        request = req.validate(
            raw,
            identity=settings.sender_identity,
            default_email_id=execution_name,
            now=datetime.fromtimestamp(now, UTC),
        )
    except InvalidEmailRequest as exc:
        meta = {"expiresAt": str(settings.expires_at(now))}
        kept = req.kept_fields(raw, execution_name)
        logger.info("request rejected", extra={"emailId": kept["emailId"], "reason": str(exc)})
        outcome = {"emailId": kept["emailId"], "status": status.REJECTED, "messageId": None, "reason": str(exc)}
        return {"valid": False, "request": kept, "outcome": outcome, "meta": meta}
    logger.append_keys(emailId=request.emailId, template=request.template, topic=request.topic)
    # once: the record and the machine's meta agree
    expires_at = settings.expires_at(max(now, scheduling.epoch(request.sendAt)) if request.sendAt else now)
    meta = {"expiresAt": str(expires_at)}
    execution_id = event.get("executionId") if isinstance(event, dict) else None
    old = tracking.open_item(client("dynamodb"), settings.tracking_table, request, expires_at, execution_id)
    accepted: dict[str, Any] = {
        "valid": True,
        "meta": meta,
        "request": request.to_dict(),
        "suppressionTopics": suppression.send_topics(request.topic),
    }
    repeat = tracking.repeat_outcome(old, request, execution_id, now) if execution_id else None
    if repeat is not None:
        # a redelivered event or a retried call: the machine ends with this (Repeat), no step after
        logger.info("repeat of a request", extra={"status": repeat["status"]})
        accepted["repeat"] = repeat
    else:
        logger.info("request accepted")
    return accepted
