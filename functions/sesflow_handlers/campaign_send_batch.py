"""CampaignSendBatch: one child execution of a stage's Distributed Map — send a batch at
most once per recipient, paced, within the function's time budget."""

from __future__ import annotations

from typing import Any

from sesflow_aws import campaign_flow

from ._common import Settings, client, logger, metrics


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = campaign_flow.send_batch(client, event, context, Settings.from_env())
    metrics.add_metric(name="CampaignEmailsSent", unit="Count", value=result["accepted"])
    return result
