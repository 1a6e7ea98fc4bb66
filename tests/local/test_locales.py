"""Localised templates through the send machine on the local stack (the repository's
templates/<name>/<locale>/ are uploaded with the stack)."""

from __future__ import annotations

import uuid

import pytest

from sesflow.cli.send import tracking_item
from sesflow.target import Target

from .test_send_machine import messages_for, run, wait_for_status

pytestmark = pytest.mark.local

WELCOME = {"template": "welcome", "to": "success@simulator.amazonses.com", "data": {"name": "Ada", "product": "Acme"}}


@pytest.mark.parametrize(
    ("locale", "subject", "recorded"),
    [
        ("de-AT", "Willkommen bei Acme, Ada!", "de"),  # region -> language
        ("pt-BR", "Bem-vindo ao Acme, Ada!", "pt"),
        ("ja", "Welcome to Acme, Ada!", None),  # no variant: the default, never an error
    ],
)
def test_the_locale_picks_the_variant_with_fallback_and_is_recorded(
    stack: Target, locale: str, subject: str, recorded: str | None
) -> None:
    email_id = f"loc-{uuid.uuid4().hex[:10]}"
    rep = run(stack, WELCOME | {"emailId": email_id, "locale": locale})
    assert rep.status == "SUCCEEDED" and rep.output["status"] == "sent"
    [message] = messages_for(stack, email_id)
    assert message["subject"] == subject
    item = wait_for_status(stack, email_id, "delivered")
    assert item.get("locale") == recorded


def test_a_malformed_locale_is_rejected_and_nothing_is_sent(stack: Target) -> None:
    email_id = f"loc-{uuid.uuid4().hex[:10]}"
    rep = run(stack, WELCOME | {"emailId": email_id, "locale": "not a locale"})
    assert rep.output["status"] == "rejected" and "language tag" in rep.output["reason"]
    assert messages_for(stack, email_id) == []
    item = tracking_item(stack, email_id)
    assert item is not None and item["status"] == "rejected"
