"""Defer: SES refused for rate or quota past the in-place retries; try again in a new
execution later (an EXPRESS execution may not wait), or give up after MaxSendRounds.

Input: ``{"request": <normalised>, "error": {"Error": name}, "stateMachineArn"}``.
Output: the outcome ``{emailId, status: "deferred" | "failed", messageId: null, reason}``.
"""

from __future__ import annotations

import json
from typing import Any

from sesflow_core import deferral, status
from sesflow_core.request import SendRequest

from ._common import Settings, client, logger, metrics


def schedule(settings: Settings, machine_arn: str, request: SendRequest, plan: deferral.Deferral) -> None:
    """A one-time schedule that starts the send machine with the same request, next round.
    A duplicate deferral of the same round finds the schedule there: nothing to do."""
    assert plan.at is not None
    scheduler = client("scheduler")
    try:
        scheduler.create_schedule(
            Name=deferral.schedule_name(request.emailId, plan.next_round),
            GroupName=settings.schedule_group,
            ScheduleExpression=deferral.at_expression(plan.at),
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Target={"Arn": machine_arn, "RoleArn": settings.scheduler_role_arn,
                    "Input": json.dumps({**request.as_input(), "sendRound": plan.next_round})},
        )
    except scheduler.exceptions.ConflictException:
        logger.info("deferral already scheduled")


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    request = SendRequest.from_dict(event["request"])
    error = str(event.get("error", {}).get("Error", "SesThrottled"))
    logger.append_keys(emailId=request.emailId)
    plan = deferral.plan(error, request.sendRound, max_rounds=settings.max_send_rounds,
                         throttle_wait=settings.throttle_wait_seconds, quota_wait=settings.quota_wait_seconds)
    if plan.give_up:
        logger.warning("send rounds exhausted", extra={"round": request.sendRound})
        return {"emailId": request.emailId, "status": status.FAILED, "messageId": None, "reason": plan.reason}
    schedule(settings, event["stateMachineArn"], request, plan)
    metrics.add_metric(name="SendsDeferred", unit="Count", value=1)
    logger.info("deferred", extra={"round": plan.next_round, "at": plan.at.isoformat() if plan.at else None})
    return {"emailId": request.emailId, "status": status.DEFERRED, "messageId": None, "reason": plan.reason}
