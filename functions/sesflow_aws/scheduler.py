"""One-time EventBridge Scheduler schedules that start a state machine (deferred and
scheduled sends)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sesflow_core import deferral


def start_once(
    scheduler: Any, *, name: str, group: str, at: datetime, machine_arn: str, role_arn: str, payload: dict[str, Any]
) -> bool:
    """Create the schedule (deleted after it fires); False when one of that name exists
    already (a duplicate deferral of the same round: nothing to do)."""
    try:
        scheduler.create_schedule(
            Name=name,
            GroupName=group,
            ScheduleExpression=deferral.at_expression(at),
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Target={"Arn": machine_arn, "RoleArn": role_arn, "Input": json.dumps(payload)},
        )
    except scheduler.exceptions.ConflictException:
        return False
    return True


def delete_once(scheduler: Any, *, name: str, group: str) -> bool:
    """Delete a schedule; False when there is none (it fired and deleted itself, or was
    deleted before)."""
    try:
        scheduler.delete_schedule(Name=name, GroupName=group)
    except scheduler.exceptions.ResourceNotFoundException:
        return False
    return True
