"""Cancel a scheduled single send (``sesflow cancel``, ``sesflow.client.cancel_email``).

Three calls with the caller's credentials (``scheduler:DeleteSchedule`` on the stack's
schedule group, ``dynamodb:UpdateItem`` on the tracking table, ``events:PutEvents`` on the
project bus):

1. one conditional write: ``scheduled`` -> ``cancelled`` and the send ledger closed
   (``tracking.cancel_scheduled``); it fails when the email is being sent or was sent;
2. the schedule is deleted (gone already is fine: a schedule that fired meets the closed
   ledger, ``EmailCancelled``, and sends nothing);
3. ``Email Status Changed`` (``cancelled``, with the write's sequence) on the project bus.

A repeated cancel of a cancelled email does 2 and 3 again (same sequence), so a cancel
interrupted after its write still completes. Rescheduling is a cancel plus a new request
with a new emailId (the emailId of a cancelled email stays cancelled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sesflow_core import scheduling, status

from . import ledger, scheduler, tracking

Client = Callable[[str], Any]

DEFAULT_REASON = "cancelled before its scheduled time"


def _why_not(item: dict[str, Any] | None) -> str:
    if not item:
        return "no such email"
    state, current = ledger.attr(item, "sendState"), tracking.s(item, "status")
    if state == ledger.SENDING:
        return "it is being sent"
    if state == ledger.SENT:
        return f"it was sent (status {current})"
    return f"it is {current}, not scheduled: only a scheduled email can be cancelled"


def cancel(
    client: Client, *, table: str, group: str, bus: str, email_id: str, reason: str = DEFAULT_REASON
) -> dict[str, Any]:
    """Cancel a scheduled email. ``cancelled`` says whether it is cancelled now (by this call,
    or before it: ``alreadyCancelled``); when it is not, ``status`` is its status (None: no
    such email) and ``reason`` says why."""
    result = tracking.cancel_scheduled(client("dynamodb"), table, email_id, reason)
    item = result.item
    if not result.cancelled and result.status != status.CANCELLED:
        return {"emailId": email_id, "cancelled": False, "status": result.status, "reason": _why_not(item)}
    deleted = scheduler.delete_once(client("scheduler"), name=scheduling.schedule_name(email_id), group=group)
    previous = tracking.s(item or {}, "previousStatus")
    recorded_reason = tracking.s(item or {}, "reason")
    tracking.emit_status(
        client("events"),
        bus,
        email_id,
        status.CANCELLED,
        previous,
        item,
        recorded_reason,
        timestamp=tracking.s(item or {}, "updatedAt"),
        sequence=result.sequence,
    )
    return {
        "emailId": email_id,
        "cancelled": True,
        "alreadyCancelled": not result.cancelled,
        "status": status.CANCELLED,
        "previousStatus": previous,
        "sequence": result.sequence,
        "scheduledFor": tracking.s(item or {}, "scheduledFor"),
        "scheduleDeleted": deleted,
        "reason": recorded_reason,
    }
