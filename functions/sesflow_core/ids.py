"""Identifiers: one place owns their shapes and how derived ones are built.

* ``emailId``: ``[A-Za-z0-9_-]{1,80}`` — the idempotency key, the tracking item's key, an
  execution name and an SES tag value (all three accept it);
* ``campaignId``: ``[A-Za-z0-9_-]{1,60}`` — the campaign execution's name and the prefix
  of its recipients' emailIds;
* a campaign recipient's emailId: ``c-<campaignId>-<hash of the address>``, at most 80
  characters whatever the campaign id's length (the per-(campaign, recipient) ledger key);
* a stage counter's key: ``campaign#<campaignId>#stage#<n>`` in the tracking table.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

EMAIL_ID_PATTERN: Final = "[A-Za-z0-9_-]{1,80}"
CAMPAIGN_ID_PATTERN: Final = "[A-Za-z0-9_-]{1,60}"
MAX_EMAIL_ID: Final = 80
MAX_CAMPAIGN_ID: Final = 60
_RECIPIENT_HASH: Final = 24  # hex digits when they fit (ids of campaigns planned before kept them)
_MIN_RECIPIENT_HASH: Final = MAX_EMAIL_ID - len("c--") - MAX_CAMPAIGN_ID  # 17 hex = 68 bits

_EMAIL_ID_RE = re.compile(EMAIL_ID_PATTERN)
_CAMPAIGN_ID_RE = re.compile(CAMPAIGN_ID_PATTERN)


def is_email_id(value: object) -> bool:
    return isinstance(value, str) and _EMAIL_ID_RE.fullmatch(value) is not None


def is_campaign_id(value: object) -> bool:
    return isinstance(value, str) and _CAMPAIGN_ID_RE.fullmatch(value) is not None


def campaign_email_id(campaign_id: str, address: str) -> str:
    """The emailId of one campaign recipient (``address`` normalised: lower-cased ASCII).

    Stable, and never longer than 80 characters: the hash is shortened (to no fewer than
    17 hex digits) only for campaign ids of 55-60 characters."""
    prefix = f"c-{campaign_id}-"
    digits = min(_RECIPIENT_HASH, MAX_EMAIL_ID - len(prefix))
    assert digits >= _MIN_RECIPIENT_HASH, "campaign id longer than MAX_CAMPAIGN_ID"
    return prefix + hashlib.sha256(address.encode()).hexdigest()[:digits]


def stage_counter_key(campaign_id: str, stage: int | str | None) -> str:
    """The tracking-table key of a campaign stage's counters (``-``: stage unknown)."""
    return f"campaign#{campaign_id}#stage#{'-' if stage is None else stage}"
