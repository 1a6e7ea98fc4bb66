"""Attachments of a send request (plain Python): what may be attached, and its MIME parts.

A request's ``attachments`` is a list (at most :data:`MAX_ATTACHMENTS`) of::

    {"filename": "invoice-1042.pdf", "contentType": "application/pdf",
     "s3": {"key": "invoices/1042.pdf"}}                       # in the stack's AttachmentsBucket
    {"filename": "logo.png", "contentType": "image/png", "content": "<base64>",
     "disposition": "inline", "contentId": "logo"}             # <img src="cid:logo">

The content never travels through Step Functions state (256 KiB): an ``s3`` attachment is
read by the send step from the stack's ``AttachmentsBucket`` (the only bucket the functions
may read attachments from); inline ``content`` is for small files (<= :data:`MAX_INLINE_BYTES`,
within the request's 64 KiB). Rules, each a clear :class:`InvalidEmailRequest`:

- a file name without path separators, control characters or a leading dot, <= 255 characters;
- a content type from :data:`ALLOWED_TYPES` (documents, images, calendar, text; no executables,
  scripts, archives or SVG) and a file extension SES accepts (:data:`BLOCKED_EXTENSIONS` is SES's
  list of unsupported attachment types);
- the whole message at most SES v2's 40 MB after MIME encoding (base64 adds a third).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Final

from .errors import InvalidEmailRequest

MAX_ATTACHMENTS: Final = 10
MAX_INLINE_BYTES: Final = 32 * 1024
#: SES v2: 40 MB per message, attachments and encoding included
MAX_MESSAGE_BYTES: Final = 40 * 1024 * 1024
#: an attachment read from S3 larger than this cannot fit the message once base64-encoded
MAX_ATTACHMENT_BYTES: Final = 29 * 1024 * 1024

ALLOWED_TYPES: Final = frozenset(
    {
        "application/pdf",
        "application/json",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/rtf",
        "text/plain",
        "text/csv",
        "text/calendar",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
    }
)
#: file extensions SES refuses as attachments ("Unsupported attachment types", SES developer
#: guide), checked on the name whatever the content type says
BLOCKED_EXTENSIONS: Final = frozenset(
    "ade adp app asp bas bat cer chm cmd com cpl crt csh der exe fxp gadget hlp hta inf ins isp its js jse "
    "ksh lib lnk mad maf mag mam maq mar mas mat mau mav maw mda mdb mde mdt mdw mdz msc msh msh1 msh2 "
    "mshxml msh1xml msh2xml msi msp mst ops pcd pif plg prf prg reg scf scr sct shb shs sys ps1 ps1xml "
    "ps2 ps2xml psc1 psc2 tmp url vb vbe vbs vps vsmacros vss vst vsw vxd ws wsc wsf wsh xnk".split()
)
_CID = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")
_KEY = re.compile(r"^[A-Za-z0-9!_.*'()/ =+,;:@&$-]{1,1024}$")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    disposition: str = "attachment"  # or "inline" (referenced by cid:)
    content_id: str | None = None
    s3_key: str | None = None
    content: bytes | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"filename": self.filename, "contentType": self.content_type}
        if self.disposition != "attachment":
            out["disposition"] = self.disposition
        if self.content_id:
            out["contentId"] = self.content_id
        if self.s3_key is not None:
            out["s3"] = {"key": self.s3_key}
        if self.content is not None:
            out["content"] = base64.b64encode(self.content).decode()
        return out


def _reject(where: str, why: str) -> InvalidEmailRequest:
    return InvalidEmailRequest(f"{where}: {why}")


def parse(value: Any) -> list[Attachment]:
    """The request's ``attachments``, validated (an empty list when absent)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidEmailRequest("attachments must be a list")
    if len(value) > MAX_ATTACHMENTS:
        raise InvalidEmailRequest(f"attachments: {len(value)} given; at most {MAX_ATTACHMENTS}")
    out = [_one(item, i) for i, item in enumerate(value)]
    cids = [a.content_id for a in out if a.content_id]
    if len(cids) != len(set(cids)):
        raise InvalidEmailRequest("attachments: two attachments have the same contentId")
    return out


def _one(item: Any, i: int) -> Attachment:
    where = f"attachments[{i}]"
    if not isinstance(item, dict):
        raise _reject(where, "must be an object with filename, contentType and s3 or content")
    unknown = set(item) - {"filename", "contentType", "disposition", "contentId", "s3", "content"}
    if unknown:
        raise _reject(where, f"unknown field(s): {', '.join(sorted(unknown))}")
    name = item.get("filename")
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or _BAD_NAME.search(name) or name.startswith("."):
        raise _reject(where, "filename must be 1-255 characters, no path separators, control characters or leading dot")
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension in BLOCKED_EXTENSIONS:
        raise _reject(where, f"file type .{extension} is not allowed (SES refuses executables and scripts)")
    ctype = str(item.get("contentType") or "").lower().strip()
    if ctype not in ALLOWED_TYPES:
        raise _reject(
            where, f"contentType {ctype or None!r} is not allowed; allowed: {', '.join(sorted(ALLOWED_TYPES))}"
        )
    disposition = item.get("disposition") or "attachment"
    if disposition not in ("attachment", "inline"):
        raise _reject(where, "disposition must be attachment or inline")
    cid = item.get("contentId")
    if cid is not None and (not isinstance(cid, str) or not _CID.match(cid)):
        raise _reject(where, "contentId must be 1-100 of A-Z a-z 0-9 . _ @ -")
    if disposition == "inline" and not cid:
        raise _reject(where, "an inline attachment needs a contentId (the HTML refers to it as cid:<contentId>)")
    return _with_source(item, where, Attachment(name, ctype, disposition, cid))


def _with_source(item: dict[str, Any], where: str, meta: Attachment) -> Attachment:
    """``meta`` with its content's source: an S3 key, or inline base64."""
    name, ctype, disposition, cid = meta.filename, meta.content_type, meta.disposition, meta.content_id
    s3, content = item.get("s3"), item.get("content")
    if (s3 is None) == (content is None):
        raise _reject(where, "give exactly one of s3 ({key}) and content (base64)")
    if s3 is not None:
        if not isinstance(s3, dict) or set(s3) != {"key"} or not isinstance(s3.get("key"), str):
            raise _reject(where, "s3 must be {key} of an object in the stack's AttachmentsBucket (no other bucket)")
        key = s3["key"]
        if not _KEY.match(key) or ".." in key.split("/") or key.startswith("/"):
            raise _reject(where, "s3.key is not a valid object key")
        return Attachment(name, ctype, disposition, cid, s3_key=key)
    if not isinstance(content, str):
        raise _reject(where, "content must be base64 text")
    try:
        raw = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise _reject(where, "content is not valid base64") from None
    if len(raw) > MAX_INLINE_BYTES:
        raise _reject(where, f"content is {len(raw)} bytes; inline content is at most {MAX_INLINE_BYTES} (use s3)")
    return Attachment(name, ctype, disposition, cid, content=raw)
