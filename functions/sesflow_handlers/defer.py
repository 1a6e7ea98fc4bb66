"""Defer: start a send in a new execution later, through a one-time EventBridge Scheduler
schedule (an EXPRESS execution may not wait). Two callers in the send machine:

* ``Defer``: SES refused for rate or quota past the in-place retries; the next round is
  scheduled (``deferred``), or the email is failed after MaxSendRounds.
  Input: ``{"request": <normalised>, "error": {"Error": name}, "stateMachineArn"}``.
* ``ScheduleSend`` (``"action": "schedule"``): the request's ``sendAt`` lies ahead; one
  schedule per emailId starts the request then, without ``sendAt`` and with
  ``scheduledFor`` (``scheduled``). A duplicate request finds the schedule there.
  Input: ``{"action": "schedule", "request": <normalised>, "stateMachineArn"}``.

Output: the outcome ``{emailId, status: "deferred" | "failed" | "scheduled", messageId: null, reason}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sesflow_aws import scheduler
from sesflow_core import deferral, scheduling, status
from sesflow_core.request import SendRequest

from ._common import Settings, client, logger, metrics

SCHEDULE = "schedule"


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    request = SendRequest.from_dict(event["request"])
    logger.append_keys(emailId=request.emailId)
    if event.get("action") == SCHEDULE:
        return schedule(settings, request, event["stateMachineArn"])
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


def schedule(settings: Settings, request: SendRequest, machine_arn: str) -> dict[str, Any]:
    """The one-time schedule of a request whose ``sendAt`` lies ahead (validated: normalised UTC)."""
    if not request.sendAt:
        raise ValueError("action schedule needs a request with sendAt")
    at = scheduling.parse_instant(request.sendAt, "sendAt")
    created = scheduler.start_once(
        client("scheduler"),
        name=scheduling.schedule_name(request.emailId),
        group=settings.schedule_group,
        at=scheduling.fire_time(at, datetime.now(UTC)),
        machine_arn=machine_arn,
        role_arn=settings.scheduler_role_arn,
        payload=request.scheduled_input(),
    )
    if created:
        metrics.add_metric(name="SendsScheduled", unit="Count", value=1)
        reason = scheduling.reason(request.sendAt)
    else:  # a duplicate request: the first one's schedule (and time) stands
        reason = "already scheduled by an earlier request with this emailId (its time stands)"
    logger.info("scheduled", extra={"at": request.sendAt, "newSchedule": created})
    return {"emailId": request.emailId, "status": status.SCHEDULED, "messageId": None, "reason": reason}
