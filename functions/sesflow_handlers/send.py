"""SendEmail: render, build the MIME message and send it through SES v2, at most once per
emailId (``sesflow_aws.sending``, the ledger of ADR 0001).

Input: ``{"request": <normalised>, "executionId": "..."}``.
Output: ``{"emailId", "messageId", "duplicate"}``; raises the error names the machine
retries or catches.
"""

from __future__ import annotations

from typing import Any

from sesflow_aws import sending
from sesflow_core.request import SendRequest

from ._common import Settings, client, logger, metrics


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    request = SendRequest.from_dict(event["request"])
    logger.append_keys(emailId=request.emailId, template=request.template, topic=request.topic)
    try:
        result = sending.send_once(client, settings, request, event.get("executionId") or context.aws_request_id)
    except Exception as exc:
        metrics.add_metric(name=type(exc).__name__, unit="Count", value=1)
        logger.warning("not sent", extra={"error": type(exc).__name__})
        raise
    if result["duplicate"]:
        logger.info("duplicate request: already sent")
    else:
        metrics.add_metric(name="EmailsSent", unit="Count", value=1)
        logger.info("sent", extra={"messageId": result["messageId"]})
    return result
