"""Identifiers: derived ids always fit the contract, whatever the input's length."""

from __future__ import annotations

import pytest
from sesflow_core import ids
from sesflow_core.request import validate


@pytest.mark.parametrize("length", [1, 20, 54, 55, 59, 60])
def test_every_recipient_email_id_is_a_valid_email_id(length: int) -> None:
    cid = "c" * length
    email_id = ids.campaign_email_id(cid, "someone@example.org")
    assert ids.is_email_id(email_id) and len(email_id) <= ids.MAX_EMAIL_ID
    assert email_id.startswith(f"c-{cid}-")
    # the send request validator accepts it (a 60-character campaign id used to fail every send)
    req = validate(
        {"template": "welcome", "to": "someone@example.org", "emailId": email_id, "campaignId": cid},
        identity="example.com",
    )
    assert req.emailId == email_id


def test_recipient_email_ids_are_stable_and_distinct() -> None:
    cid = "x" * 60
    a = ids.campaign_email_id(cid, "a@example.org")
    assert a == ids.campaign_email_id(cid, "a@example.org")
    assert len({ids.campaign_email_id(cid, f"u{i}@example.org") for i in range(10_000)}) == 10_000


def test_short_campaign_ids_keep_the_ids_they_always_had() -> None:
    """Campaigns planned before keep their ledger keys (a resume must not send twice)."""
    import hashlib

    assert (
        ids.campaign_email_id("news", "a@example.org") == "c-news-" + hashlib.sha256(b"a@example.org").hexdigest()[:24]
    )


def test_campaign_ids_longer_than_60_are_refused() -> None:
    assert ids.is_campaign_id("c" * 60) and not ids.is_campaign_id("c" * 61)


def test_stage_counter_keys() -> None:
    assert ids.stage_counter_key("news", 2) == "campaign#news#stage#2"
    assert ids.stage_counter_key("news", None) == "campaign#news#stage#-"
