"""CampaignControl: between stages — pause/cancel, the gate, approvals, the summary
(``mode``: ready and hold — may a stage send now, or wait for its start time, window or
daily cap — after-stage, gate, request-approval, summarize), and a failed batch's record
(``batch-failed``, from the Distributed Map child)."""

from __future__ import annotations

from typing import Any

from sesflow_aws import campaign_flow

from ._common import Settings, client, logger, throttling_as_aws_throttled

MODES = {
    "ready": campaign_flow.ready,
    "hold": campaign_flow.hold,
    "after-stage": campaign_flow.after_stage,
    "gate": campaign_flow.run_gate,
    "request-approval": campaign_flow.request_approval,
    "summarize": campaign_flow.summarize,
    "batch-failed": campaign_flow.batch_failed,
}


@logger.inject_lambda_context(log_event=False)
@throttling_as_aws_throttled
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    mode = MODES.get(str(event.get("mode")))
    if mode is None:
        raise ValueError(f"unknown mode {event.get('mode')!r}")
    return mode(client, event, Settings.from_env())
