"""Attachments: what a request may attach, the MIME structure, the send step reading S3."""

from __future__ import annotations

import base64
import email
from email.message import Message
from typing import Any

import pytest
from sesflow_core import attachments as att
from sesflow_core import request as req
from sesflow_core.errors import InvalidEmailRequest
from sesflow_handlers import send

from .conftest import ATTACHMENTS_BUCKET, Aws, LambdaContext, normalised

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF_ITEM = {"filename": "invoice-1042.pdf", "contentType": "application/pdf", "s3": {"key": "invoices/1042.pdf"}}
LOGO = {
    "filename": "logo.png",
    "contentType": "image/png",
    "content": base64.b64encode(PNG).decode(),
    "disposition": "inline",
    "contentId": "logo",
}


def validated(items: Any) -> list[dict[str, Any]]:
    raw = {"template": "welcome", "to": "a@example.org", "data": {}, "attachments": items}
    return req.validate(raw, identity="example.com").attachments


def test_valid_attachments_are_normalised() -> None:
    out = validated([PDF_ITEM, {**LOGO, "contentType": "IMAGE/PNG"}])
    assert out[0] == {
        "filename": "invoice-1042.pdf",
        "contentType": "application/pdf",
        "s3": {"key": "invoices/1042.pdf"},
    }
    assert out[1]["contentType"] == "image/png" and out[1]["disposition"] == "inline"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({**PDF_ITEM, "filename": "../../etc/passwd"}, "path separators"),
        ({**PDF_ITEM, "filename": "a\\b.pdf"}, "path separators"),
        ({**PDF_ITEM, "filename": ".hidden.pdf"}, "leading dot"),
        ({**PDF_ITEM, "filename": "setup.exe"}, "file type .exe is not allowed"),
        ({**PDF_ITEM, "filename": "macro.js", "contentType": "text/plain"}, "file type .js"),
        ({**PDF_ITEM, "contentType": "application/x-msdownload"}, "is not allowed; allowed"),
        ({**PDF_ITEM, "contentType": "image/svg+xml"}, "is not allowed"),
        ({**PDF_ITEM, "s3": {"key": "k", "bucket": "someone-elses"}}, "no other bucket"),
        ({**PDF_ITEM, "s3": {"key": "../secrets"}}, "not a valid object key"),
        ({**LOGO, "contentId": None}, "needs a contentId"),
        ({**LOGO, "content": "not base64!"}, "not valid base64"),
        ({**LOGO, "content": base64.b64encode(b"x" * (att.MAX_INLINE_BYTES + 1)).decode()}, "use s3"),
        ({"filename": "a.pdf", "contentType": "application/pdf"}, "exactly one of s3"),
        ({**PDF_ITEM, "color": "red"}, "unknown field"),
    ],
)
def test_bad_attachments_are_rejected_with_the_reason(item: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEmailRequest, match=message):
        validated([item])


def test_too_many_attachments_and_duplicate_content_ids_are_rejected() -> None:
    with pytest.raises(InvalidEmailRequest, match="at most 10"):
        validated([PDF_ITEM] * 11)
    with pytest.raises(InvalidEmailRequest, match="same contentId"):
        validated([LOGO, LOGO])


def parts(msg: Message) -> list[str]:
    return [p.get_content_type() for p in msg.walk()]


def test_the_send_step_reads_s3_attachments_and_builds_mixed_related_alternative(aws: Aws, ctx: LambdaContext) -> None:
    pdf = b"%PDF-1.7 " + bytes(range(256)) * 40
    aws.put_object(ATTACHMENTS_BUCKET, "invoices/1042.pdf", pdf)
    request = normalised(emailId="att-1", attachments=[PDF_ITEM, LOGO])
    result: dict[str, Any] = send.handler({"request": request, "executionId": "x"}, ctx)
    assert result["duplicate"] is False
    [sent] = aws.sent()
    msg = email.message_from_string(sent.raw_data)
    assert parts(msg) == [
        "multipart/mixed",
        "multipart/related",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "image/png",
        "application/pdf",
    ]
    by_type = {p.get_content_type(): p for p in msg.walk()}
    assert by_type["application/pdf"].get_filename() == "invoice-1042.pdf"
    assert by_type["application/pdf"].get_payload(decode=True) == pdf
    assert by_type["image/png"]["Content-ID"] == "<logo>" and by_type["image/png"].get_content_disposition() == "inline"


def test_a_missing_s3_attachment_rejects_the_email_and_frees_the_ledger(aws: Aws, ctx: LambdaContext) -> None:
    request = normalised(emailId="att-2", attachments=[{**PDF_ITEM, "s3": {"key": "nope.pdf"}}])
    with pytest.raises(InvalidEmailRequest, match=r"nope\.pdf not found"):
        send.handler({"request": request, "executionId": "x"}, ctx)
    assert aws.sent() == []
    assert aws.item("att-2")["sendState"] == "retryable"  # uploaded later, a resend goes


def test_an_attachment_too_large_for_ses_is_refused_before_reading_it(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(att, "MAX_ATTACHMENT_BYTES", 1000)
    aws.put_object(ATTACHMENTS_BUCKET, "invoices/1042.pdf", b"x" * 1001)
    with pytest.raises(InvalidEmailRequest, match="1001 bytes; at most 1000"):
        send.handler({"request": normalised(emailId="att-3", attachments=[PDF_ITEM]), "executionId": "x"}, ctx)
    assert aws.sent() == []


def test_a_non_ascii_file_name_is_rfc_2231_encoded() -> None:
    from sesflow_core import mime
    from sesflow_core.render import Rendered

    request = req.validate({"template": "welcome", "to": "a@example.org", "data": {}}, identity="example.com")
    a = att.parse([{"filename": "Rechnung-März.pdf", "contentType": "application/pdf", "content": "JVBERg=="}])[0]
    raw = mime.build_message(
        request, Rendered("S", "<p>x</p>", "x"), sender=("a@example.com", None), files=[(a, b"%PDF")]
    )
    assert b"filename*=utf-8''Rechnung-M%C3%A4rz.pdf" in raw
    assert email.message_from_bytes(raw).get_payload()[1].get_filename() == "Rechnung-März.pdf"
