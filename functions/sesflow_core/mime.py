"""Build the MIME message (stdlib ``email``): multipart/alternative, text then HTML.

Non-transactional topics get RFC 2369 ``List-Unsubscribe`` and RFC 8058
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.
"""

from __future__ import annotations

from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import make_msgid, parseaddr

from .errors import InvalidEmailRequest
from .render import Rendered
from .request import SendRequest, check_header_safe, parse_address

MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # SES v2 limit for a raw message (after encoding: 40 MB)


def mailbox(address: str, name: str | None) -> str:
    """``"Name" <addr>`` with the name quoted/encoded as RFC 5322 requires."""
    if name:
        check_header_safe("display name", name)
        local, _, domain = address.rpartition("@")
        return str(HeaderAddress(display_name=name, username=local, domain=domain))
    return address


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
) -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = mailbox(sender[0], sender[1])
    msg["To"] = mailbox(request.to, request.toName)
    if request.replyTo:
        msg["Reply-To"] = request.replyTo
    msg["Subject"] = rendered.subject
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
    msg.set_content(rendered.text, subtype="plain", charset="utf-8")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8")
    raw = msg.as_bytes()
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidEmailRequest(f"the message is {len(raw)} bytes; SES accepts {MAX_MESSAGE_BYTES}")
    return raw


def ses_tags(request: SendRequest, extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    """SES ``EmailTags``: the ids feedback needs to find the email, then the caller's tags."""
    tags = {"emailId": request.emailId, "template": request.template, "topic": request.topic}
    if request.campaignId:
        tags["campaignId"] = request.campaignId
    if request.stage:
        tags["stage"] = request.stage
    tags.update(request.tags)
    tags.update(extra or {})
    return [{"Name": k, "Value": v} for k, v in tags.items()]


