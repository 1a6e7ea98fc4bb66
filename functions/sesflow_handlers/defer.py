"""Defer: SES refused for rate or quota past the in-place retries; try again in a new
execution later (an EXPRESS execution may not wait), or give up after MaxSendRounds.

Input: ``{"request": <normalised>, "error": {"Error": name}, "stateMachineArn"}``.
Output: the outcome ``{emailId, status: "deferred" | "failed", messageId: null, reason}``.
"""

from __future__ import annotations

from typing import Any

from sesflow_aws import scheduler
from sesflow_core import deferral, status
from sesflow_core.request import SendRequest

from ._common import Settings, client, logger, metrics


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    request = SendRequest.from_dict(event["request"])
    logger.append_keys(emailId=request.emailId)
    plan = deferral.plan(
        str(event.get("error", {}).get("Error", "SesThrottled")),
        request.sendRound,
        max_rounds=settings.max_send_rounds,
        throttle_wait=settings.throttle_wait_seconds,
        quota_wait=settings.quota_wait_seconds,
    )
    outcome = {"emailId": request.emailId, "status": status.FAILED, "messageId": None, "reason": plan.reason}
    if plan.give_up or plan.at is None:
        logger.warning("send rounds exhausted", extra={"round": request.sendRound})
        return outcome
    created = scheduler.start_once(
        client("scheduler"),
        name=deferral.schedule_name(request.emailId, plan.next_round),
        group=settings.schedule_group,
        at=plan.at,
        machine_arn=event["stateMachineArn"],
        role_arn=settings.scheduler_role_arn,
        payload={**request.as_input(), "sendRound": plan.next_round},
    )
    metrics.add_metric(name="SendsDeferred", unit="Count", value=1)
    logger.info("deferred", extra={"round": plan.next_round, "at": plan.at.isoformat(), "scheduled": created})
    return {**outcome, "status": status.DEFERRED}
