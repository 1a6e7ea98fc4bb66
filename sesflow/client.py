"""A small client for other services: start a send and (optionally) wait for its result.

    from sesflow.client import send_email
    result = send_email("password-reset", "user@example.com",
                        data={"product": "Acme", "reset_url": url, "expires_minutes": 30},
                        state_machine_arn=os.environ["SESFLOW_SEND_STATE_MACHINE_ARN"])
    # {"emailId": "...", "status": "sent", "messageId": "...", "reason": None}

The execution is named after the ``emailId`` (generated when not given), so a retried call
with the same ``email_id`` never sends twice: a STANDARD machine returns the existing
execution, and the send ledger stops a second SES call for EXPRESS machines.
EXPRESS machines are called with ``StartSyncExecution`` (the result comes back in the
response); STANDARD machines with ``StartExecution`` and a poll on the terminal status.

A scheduled send (``send_at``: an aware ``datetime`` or an ISO 8601 string with an offset, up
to a year ahead) ends ``scheduled``; until it is sent, ``cancel_email(email_id)`` cancels it:

    result = send_email("welcome", "user@example.com", data={...}, send_at=datetime(2026, 12, 1, 9, tzinfo=UTC))
    # {"emailId": "...", "status": "scheduled", "messageId": None, "reason": "scheduled for 2026-12-01T09:00:00Z"}
    cancel_email(result["emailId"])  # {"emailId": "...", "cancelled": True, "status": "cancelled", ...}
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def build_request(
    template: str,
    to: str,
    *,
    data: dict[str, Any] | None = None,
    to_name: str | None = None,
    email_id: str | None = None,
    topic: str | None = None,
    from_: str | None = None,
    reply_to: str | None = None,
    tags: dict[str, str] | None = None,
    send_at: datetime | str | None = None,
    locale: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    request: dict[str, Any] = {
        "emailId": email_id or uuid.uuid4().hex,
        "template": template,
        "to": to,
        "data": data or {},
    }
    optional = {
        "toName": to_name,
        "topic": topic,
        "from": from_,
        "replyTo": reply_to,
        "tags": tags,
        "sendAt": send_at_text(send_at),
        "locale": locale,
        "attachments": attachments,
    }
    request.update({k: v for k, v in optional.items() if v})
    return request


def send_at_text(send_at: datetime | str | None) -> str | None:
    """``sendAt`` as the request carries it: a string as given (the service checks it), an
    aware ``datetime`` in ISO 8601; a naive one is refused here (ValueError): its zone is unknown."""
    if send_at is None or isinstance(send_at, str):
        return send_at
    if send_at.tzinfo is None or send_at.utcoffset() is None:
        raise ValueError("send_at must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
    return send_at.isoformat()


def _result_from(
    email_id: str, status: str, output: str | None, error: str | None, cause: str | None
) -> dict[str, Any]:
    if status == "SUCCEEDED" and output:
        result: dict[str, Any] = json.loads(output)
        return result
    return {
        "emailId": email_id,
        "status": "failed",
        "messageId": None,
        "reason": f"execution {status}: {error or ''} {cause or ''}".strip(),
    }


def send_email(
    template: str,
    to: str,
    *,
    state_machine_arn: str | None = None,
    wait: bool = True,
    timeout: float = 120.0,
    sfn_client: Any = None,
    **fields: Any,
) -> dict[str, Any]:
    """Start one send; with ``wait`` return ``{emailId, status, messageId, reason}``.
    ``fields``: the keywords of :func:`build_request` (``data``, ``email_id``, ``send_at``...)."""
    import boto3

    sfn = sfn_client or boto3.client("stepfunctions")
    arn = state_machine_arn or os.environ["SESFLOW_SEND_STATE_MACHINE_ARN"]
    request = build_request(template, to, **fields)
    email_id = request["emailId"]
    payload = json.dumps(request)
    if sfn.describe_state_machine(stateMachineArn=arn).get("type") == "EXPRESS":
        if not wait:
            sfn.start_execution(stateMachineArn=arn, name=email_id, input=payload)
            return {"emailId": email_id, "status": "queued"}
        resp = sfn.start_sync_execution(stateMachineArn=arn, name=email_id, input=payload)
        return _result_from(email_id, resp["status"], resp.get("output"), resp.get("error"), resp.get("cause"))
    try:
        execution_arn = sfn.start_execution(stateMachineArn=arn, name=email_id, input=payload)["executionArn"]
    except sfn.exceptions.ExecutionAlreadyExists:
        # same emailId, different input: report the first request's execution
        execution_arn = arn.replace(":stateMachine:", ":execution:") + ":" + email_id
    if not wait:
        return {"emailId": email_id, "status": "queued", "executionArn": execution_arn}
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        desc = sfn.describe_execution(executionArn=execution_arn)
        if desc["status"] in TERMINAL:
            return _result_from(email_id, desc["status"], desc.get("output"), desc.get("error"), desc.get("cause"))
        if time.monotonic() > deadline:
            raise TimeoutError(f"email {email_id}: execution still {desc['status']} after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def _boto3_client(service: str) -> Any:
    import boto3

    make: Callable[..., Any] = boto3.client  # any service by name (the stubs type literal names)
    return make(service)


def cancel_email(
    email_id: str,
    *,
    reason: str | None = None,
    tracking_table: str | None = None,
    schedule_group: str | None = None,
    event_bus: str | None = None,
    aws: Callable[[str], Any] | None = None,
) -> dict[str, Any]:
    """Cancel a scheduled email (status ``scheduled`` -> ``cancelled``; nothing will be sent).

    Returns ``{"emailId", "cancelled": True, "alreadyCancelled", "status": "cancelled",
    "previousStatus", "sequence", "scheduledFor", "scheduleDeleted", "reason"}``, or
    ``{"emailId", "cancelled": False, "status", "reason"}`` when it cannot be cancelled
    (``status`` None: no such email; else it is being sent, was sent, or was never scheduled).
    The stack's names come from the arguments or ``SESFLOW_TRACKING_TABLE_NAME``,
    ``SESFLOW_SCHEDULE_GROUP_NAME``, ``SESFLOW_EVENT_BUS_NAME`` (the stack outputs
    ``TrackingTableName``, ``ScheduleGroupName``, ``EventBusName``); ``aws`` makes a boto3 client
    per service name (default ``boto3.client``). The caller needs ``dynamodb:UpdateItem`` on the
    tracking table, ``scheduler:DeleteSchedule`` on the schedule group's schedules and
    ``events:PutEvents`` on the bus. To reschedule, cancel and send a new request with a new emailId.
    """
    from sesflow_aws import scheduled

    env = os.environ
    return scheduled.cancel(
        aws or _boto3_client,
        table=tracking_table or env["SESFLOW_TRACKING_TABLE_NAME"],
        group=schedule_group or env["SESFLOW_SCHEDULE_GROUP_NAME"],
        bus=event_bus or env["SESFLOW_EVENT_BUS_NAME"],
        email_id=email_id,
        reason=reason or scheduled.DEFAULT_REASON,
    )
