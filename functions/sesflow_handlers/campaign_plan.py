"""CampaignPlan: validate the campaign, stream its list, plan stages and batches
(``sesflow_aws.campaign_flow.plan``); for a list over ``PLAN_CHUNK_KIB``, also a chunk of the
PlanChunks Map (``phase: chunk``) and MergePlan (``phase: merge``), ADR 0016. A campaign that
cannot go out raises a named error the machine catches (InvalidCampaign, TemplateNotFound,
TemplateRenderError)."""

from __future__ import annotations

from typing import Any

from sesflow_aws import campaign_flow

from ._common import Settings, client, logger, metrics, throttling_as_aws_throttled


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@throttling_as_aws_throttled
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return campaign_flow.plan(client, event, Settings.from_env())
