"""Localised templates through the send machine on the local stack (the repository's
templates/<name>/<locale>/ are uploaded with the stack)."""

from __future__ import annotations

import uuid
from typing import Any

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


def test_an_attachment_from_the_attachments_bucket_goes_out_in_the_message(stack: Target, tmp_path: Any) -> None:
    """`sesflow send --attach` uploads to the stack's AttachmentsBucket; the send step reads it
    (never through state) and the outbox message carries it."""
    import email
    import io
    import json
    import os
    from contextlib import redirect_stdout
    from pathlib import Path

    from sesflow import cli

    pdf = tmp_path / "invoice-7.pdf"
    pdf.write_bytes(b"%PDF-1.7 " + os.urandom(300_000))
    email_id = f"att-{uuid.uuid4().hex[:10]}"
    os.environ["SESFLOW_STATE_DIR"] = str(Path(stack.state["outbox"]).parent)
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            code = cli.main(
                ["send", "--template", "welcome", "--to", "success@simulator.amazonses.com",
                 "--data", json.dumps(WELCOME["data"]), "--email-id", email_id, "--attach", str(pdf), "--json"]
            )  # fmt: skip
    finally:
        os.environ.pop("SESFLOW_STATE_DIR", None)
    assert code == 0, out.getvalue()
    [message] = messages_for(stack, email_id)
    parsed = email.message_from_bytes(Path(message["path"]).read_bytes())
    [attached] = [p for p in parsed.walk() if p.get_filename() == "invoice-7.pdf"]
    assert attached.get_payload(decode=True) == pdf.read_bytes()


def test_a_forbidden_attachment_type_is_rejected_and_nothing_is_sent(stack: Target) -> None:
    email_id = f"att-{uuid.uuid4().hex[:10]}"
    bad = [{"filename": "run.exe", "contentType": "application/pdf", "content": "TVo="}]
    rep = run(stack, WELCOME | {"emailId": email_id, "attachments": bad})
    assert rep.output["status"] == "rejected" and ".exe is not allowed" in rep.output["reason"]
    assert messages_for(stack, email_id) == []
