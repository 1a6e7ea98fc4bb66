"""Feedback: SES events -> tracking status, suppression list, campaign counters, status events.

Input: an EventBridge event from SES (``source: aws.ses``), an SNS event (event publishing
or identity notifications), or a bare SES event. An envelope that is not an SES event
raises ``FeedbackParseError`` (Lambda retries it twice, then it lands in the failures queue).
"""

from __future__ import annotations

from typing import Any

from sesflow_aws import feedback
from sesflow_core import feedback as fb

from ._common import Settings, client, logger, metrics


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    try:
        parsed = fb.parse_envelope(event)
    except fb.FeedbackParseError as exc:
        logger.warning("not an SES event", extra={"reason": str(exc)})
        raise
    results = []
    for ses_event in parsed:
        result = feedback.process(client, settings, ses_event)
        metric = (
            "FeedbackForeign"
            if result.get("ignored") == "another configuration set"
            else "FeedbackDuplicates"
            if result["duplicate"]
            else f"Feedback{ses_event.kind.replace(' ', '')}"
        )
        metrics.add_metric(name=metric, unit="Count", value=1)
        if result.get("suppressed"):
            metrics.add_metric(name="AddressesSuppressed", unit="Count", value=result["suppressed"])
        logger.info(
            "feedback", extra={k: v for k, v in result.items() if k != "emailId"} | {"emailId": result["emailId"]}
        )
        results.append(result)
    return {"results": results}
