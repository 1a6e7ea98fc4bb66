"""Build the MIME message (stdlib ``email``): multipart/alternative, text then HTML; with
attachments ``multipart/mixed`` around it, and inline images (``cid:``) in a
``multipart/related`` with the HTML.

Non-transactional topics get RFC 2369 ``List-Unsubscribe`` and RFC 8058
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.
"""

from __future__ import annotations

from collections.abc import Sequence
from email import charset as _charset
from email import encoders
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import formataddr, formatdate, make_msgid, parseaddr

from .attachments import MAX_MESSAGE_BYTES, Attachment
from .errors import InvalidEmailRequest
from .render import Rendered
from .request import SendRequest, check_header_safe, parse_address

# The legacy ``email.mime`` API with the compat32 policy: the same RFC 5322/2047/2045
# output as ``EmailMessage``, about 3x faster (bench/render_mime.py).
# max_line_length: RFC 5322's hard limit; long unbreakable values (List-Unsubscribe URLs)
# stay on their header line instead of being folded before the value.
_SMTP = compat32.clone(linesep="\r\n", max_line_length=998)
_UTF8_QP = _charset.Charset("utf-8")
_UTF8_QP.header_encoding = _charset.QP
_UTF8_QP.body_encoding = _charset.QP


def mailbox(address: str, name: str | None) -> str:
    """``"Name" <addr>``: quoted as RFC 5322 needs, RFC 2047-encoded when not ASCII."""
    if name:
        check_header_safe("display name", name)
        return formataddr((name, address), charset="utf-8")
    return address


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, _UTF8_QP)


def _part(text: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype)
    if text.isascii() and max((len(line) for line in text.splitlines()), default=0) < 990:
        part.set_payload(text, "us-ascii")
    else:
        part.set_payload(text, _UTF8_QP)
    return part


def resolve_sender(request: SendRequest, rendered: Rendered, default_from: str) -> tuple[str, str | None]:
    """(address, display name) from the request, else the template, else the stack default."""
    if request.from_:
        return request.from_, request.fromName
    for candidate in (rendered.sender, default_from):
        if candidate:
            name, addr = parseaddr(candidate)
            parsed = parse_address(addr, "from")
            return parsed.ascii, request.fromName or name or None
    raise InvalidEmailRequest("no sender: set DefaultFromAddress, the template's from, or from")


def build_message(
    request: SendRequest,
    rendered: Rendered,
    *,
    sender: tuple[str, str | None],
    unsubscribe_url: str | None = None,
    unsubscribe_mailto: str | None = None,
    message_domain: str = "sesflow.local",
    files: Sequence[tuple[Attachment, bytes]] = (),
) -> bytes:
    body = MIMEMultipart("alternative")
    body.attach(_part(rendered.text, "plain"))
    body.attach(_part(rendered.html, "html"))
    inline = [(a, data) for a, data in files if a.disposition == "inline"]
    attached = [(a, data) for a, data in files if a.disposition != "inline"]
    if inline:
        related = MIMEMultipart("related")
        related.attach(body)
        for a, data in inline:
            related.attach(_file_part(a, data))
        body = related
    if attached:
        msg = MIMEMultipart("mixed")
        msg.attach(body)
        for a, data in attached:
            msg.attach(_file_part(a, data))
    else:
        msg = body
    msg["From"] = mailbox(sender[0], sender[1])
    msg["To"] = mailbox(request.to, request.toName)
    if request.replyTo:
        msg["Reply-To"] = request.replyTo
    msg["Subject"] = _header(rendered.subject)  # type: ignore[assignment]  # Header is accepted
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(idstring=request.emailId, domain=message_domain)
    msg["X-Sesflow-Email-Id"] = request.emailId
    if not request.transactional:
        targets = []
        if unsubscribe_url:
            check_header_safe("unsubscribe URL", unsubscribe_url)
            targets.append(f"<{unsubscribe_url}>")
        if unsubscribe_mailto:
            targets.append(f"<mailto:{unsubscribe_mailto}?subject=unsubscribe>")
        if targets:
            msg["List-Unsubscribe"] = ", ".join(targets)
            if unsubscribe_url:
                msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    raw = msg.as_bytes(policy=_SMTP)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEmailRequest(
            f"the message is {len(raw)} bytes with its attachments encoded; SES accepts {MAX_MESSAGE_BYTES}"
        )
    return raw


def _file_part(attachment: Attachment, data: bytes) -> MIMEBase:
    """One attachment, base64 (RFC 2045), its name RFC 2231-encoded when not ASCII."""
    maintype, subtype = attachment.content_type.split("/", 1)
    part = MIMEBase(maintype, subtype)
    part.set_payload(data)
    encoders.encode_base64(part)
    name = attachment.filename if attachment.filename.isascii() else ("utf-8", "", attachment.filename)
    part.add_header("Content-Disposition", attachment.disposition, filename=name)
    if attachment.content_id:
        part["Content-ID"] = f"<{attachment.content_id}>"
    return part


def ses_tags(request: SendRequest, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    """SES ``EmailTags``: the ids feedback needs to find the email, then the caller's tags."""
    tags = {"emailId": request.emailId, "template": request.template, "topic": request.topic}
    if request.campaignId:
        tags["campaignId"] = request.campaignId
    if request.stage:
        tags["stage"] = request.stage
    if request.variant:
        tags["variant"] = request.variant
    tags.update(request.tags)
    tags.update(extra or {})
    return [{"Name": k, "Value": v} for k, v in tags.items()]
