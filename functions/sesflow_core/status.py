"""Email statuses and their precedence: a status never regresses to a lower rank."""

from __future__ import annotations

from typing import Final

QUEUED: Final = "queued"
SENDING: Final = "sending"  # a campaign recipient's claim, until SES answers
SENT: Final = "sent"
SUPPRESSED: Final = "suppressed"
REJECTED: Final = "rejected"
FAILED: Final = "failed"
PAUSED: Final = "paused"
DEFERRED: Final = "deferred"  # SES refused for rate/quota: a later execution tries again
SCHEDULED: Final = "scheduled"  # sendAt ahead: a one-time schedule starts the send then
CANCELLED: Final = "cancelled"  # a scheduled email cancelled before it was sent (sesflow cancel)
DELIVERY_DELAYED: Final = "delayed"
DELIVERED: Final = "delivered"
BOUNCED: Final = "bounced"
COMPLAINED: Final = "complained"
UNSUBSCRIBED: Final = "unsubscribed"

#: statuses the send machine records as its outcome (a repeat of a request in flight also
#: ends ``queued``, recording nothing: ADR 0002)
SEND_OUTCOMES: Final = (SENT, SUPPRESSED, REJECTED, FAILED, PAUSED, DEFERRED, SCHEDULED, CANCELLED)

RANK: Final[dict[str, int]] = {
    QUEUED: 0,
    # outcomes of a send attempt that did not reach SES: a later attempt may replace them
    PAUSED: 5,
    DEFERRED: 5,
    SCHEDULED: 5,
    FAILED: 5,
    REJECTED: 5,
    SUPPRESSED: 10,
    # a campaign claim: SES is being called. Feedback may move it on (it can overtake the write
    # that records the send); the send machine never writes over it (ranked as sent)
    SENDING: 10,
    SENT: 10,
    DELIVERY_DELAYED: 15,
    DELIVERED: 20,
    BOUNCED: 30,
    COMPLAINED: 40,
    UNSUBSCRIBED: 40,
    # terminal: the cancel closed the send ledger, so the email is never sent and no feedback
    # (delivery, bounce, unsubscribe...) can follow; nothing replaces it
    CANCELLED: 50,
}

#: statuses a send outcome may overwrite (the ASL Record states' condition lists these)
REPLACEABLE_BY_SEND: Final = tuple(s for s, r in RANK.items() if r < RANK[SENT])


def may_replace(current: str | None, new: str) -> bool:
    """True when ``new`` may overwrite ``current`` (same rank counts: complained after
    unsubscribed, delivered twice)."""
    if current is None:
        return True
    return RANK.get(new, -1) >= RANK.get(current, -1)
