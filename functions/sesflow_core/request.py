"""The send request contract: validation and normalisation (no AWS inside).

Limits (documented in README and schemas/send-request.schema.json):

* ``data``: at most 32 KiB as compact JSON; the whole request at most 64 KiB, so that the
  request plus the rendered message stays far below Step Functions' 256 KB payload limit;
* header-bound fields (names, subject-bearing data is rendered later): no CR, LF or NUL;
* ``template``: ``[a-z0-9_-]{1,64}``; ``emailId``: ``[A-Za-z0-9_-]{1,80}`` (valid as an
  execution name and as an SES tag value);
* ``to``: one address (a message has exactly one recipient; SES allows 50, we use 1 so
  that suppression, tracking and feedback stay per recipient);
* ``from``/``replyTo``: must belong to the stack's SES identity (the address itself, or an
  address at that domain or a subdomain of it);
* ``tags``: up to 10, names and values ``[A-Za-z0-9_-]{1,256}``;
* ``sendAt``: an ISO 8601 date and time with a UTC offset, in the future (60 s of clock skew
  allowed: then it is sent at once), at most a year ahead (``scheduling``); ``scheduledFor``
  is what the schedule's execution carries instead (set by the send machine).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import attachments, ids, scheduling
from .errors import InvalidEmailRequest

MAX_DATA_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 64 * 1024
MAX_NAME_CHARS = 200
MAX_TAGS = 10
TRANSACTIONAL = "transactional"
RESERVED_TAGS = frozenset({"emailId", "template", "topic", "campaignId", "stage", "variant"})

_TEMPLATE_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
_TOPIC_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_HEADER_BREAKERS = re.compile(r"[\r\n\x00]")
KNOWN_FIELDS = frozenset(
    {
        "emailId",
        "template",
        "to",
        "toName",
        "data",
        "from",
        "fromName",
        "replyTo",
        "topic",
        "tags",
        "campaignId",
        "stage",
        "sendRound",
        "sendAt",
        "scheduledFor",
        "locale",
        "attachments",
        "tracking",
        "variant",
    }
)
#: a BCP 47 language tag as templates are localised: language, optional script, optional
#: region (``de``, ``pt-BR``, ``zh-Hant-TW``, ``es-419``); ``_`` is accepted for ``-``
_LOCALE_RE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|\d{3}))?$")
#: deferrals are numbered by the machine (``sendRound``); far more than any MaxSendRounds
MAX_SEND_ROUND = 100


@dataclass(frozen=True)
class Address:
    """A validated address: ``ascii`` is what SES gets (IDN domain as punycode)."""

    ascii: str
    display: str

    @property
    def normalized(self) -> str:
        """Lower-cased ASCII form: the key for suppression and per-recipient tracking."""
        return self.ascii.lower()


@dataclass(frozen=True)
class SendRequest:
    emailId: str
    template: str
    to: str
    recipient: str
    toName: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    from_: str | None = None
    fromName: str | None = None
    replyTo: str | None = None
    topic: str = TRANSACTIONAL
    tags: dict[str, str] = field(default_factory=dict)
    campaignId: str | None = None
    stage: str | None = None
    sendRound: int = 0  # set by the send machine when it defers a send (0: the first try)
    sendAt: str | None = None  # a future time (UTC, normalised): the send machine schedules it
    scheduledFor: str | None = None  # set by the send machine: the time a scheduled send was for
    locale: str | None = None  # BCP 47 (normalised: pt-BR): the template variant and formatting
    #: validated attachments (``sesflow_core.attachments``): S3 keys or small inline content
    attachments: list[dict[str, Any]] = field(default_factory=list)
    #: open/click tracking: False never tracks; None follows the template (default: tracked)
    tracking: bool | None = None
    variant: str | None = None  # set by campaigns: the A/B variant (an SES tag, for feedback)

    def tracked(self, template_tracking: bool) -> bool:
        return template_tracking if self.tracking is None else self.tracking

    @property
    def transactional(self) -> bool:
        return self.topic == TRANSACTIONAL

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["from"] = d.pop("from_")
        return d

    def as_input(self) -> dict[str, Any]:
        """The request as a producer would send it (contract fields only, nothing empty):
        what a later execution of the send machine gets when this one is deferred."""
        d = self.to_dict()
        return {k: v for k, v in d.items() if (k in KNOWN_FIELDS and _given(v)) or k == "sendRound"}

    def scheduled_input(self) -> dict[str, Any]:
        """What the one-time schedule of a scheduled send starts: the request without
        ``sendAt`` (so a late start is not "in the past") and with ``scheduledFor``."""
        d = {k: v for k, v in self.as_input().items() if k != "sendAt"}
        d["scheduledFor"] = self.sendAt
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SendRequest:
        d = dict(d)
        d["from_"] = d.pop("from", None)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def _reject(reason: str) -> InvalidEmailRequest:
    return InvalidEmailRequest(reason)


def check_header_safe(name: str, value: str) -> None:
    if _HEADER_BREAKERS.search(value):
        raise _reject(f"{name} must not contain CR, LF or NUL characters")


# The fast path: a plain ASCII address (dot-atom local part, letters/digits/hyphen labels, an
# alphabetic TLD) is what most rows of a list are, and email-validator spends ~30 µs on it
# (IDNA, Unicode normalisation, special cases): a planner validating 10 million rows would pay
# that for nothing. The pattern accepts a strict subset of what email-validator accepts
# (check_deliverability=False, allow_smtputf8=False) and gives the same normalized result;
# anything else (IDNA, quoted or non-ASCII local parts, special-use domains, edge lengths and
# every invalid address) goes to email-validator, so rejections keep its reasons.
# tests/unit/test_address_fast_path.py checks the two against each other over a corpus.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_PLAIN_ADDRESS = re.compile(
    rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?\.)+[A-Za-z]{{2,63}})"
)
#: a label with "--" at positions 3-4 (IDNA's reserved form) or a special-use name: the slow path
_SLOW_DOMAIN = re.compile(
    r"(?:^|\.)..--|(?:^|\.)(?:arpa|invalid|local|localhost|onion|test|internal|alt)$", re.IGNORECASE
)


def plain_ascii_address(value: str) -> Address | None:
    """The validated address when ``value`` is plainly valid ASCII, else None (ask the validator)."""
    m = _PLAIN_ADDRESS.fullmatch(value)
    if m is None:
        return None
    local, domain = m.group(1), m.group(2)
    if len(local) > 64 or len(domain) > 253 or len(value) > 254 or _SLOW_DOMAIN.search(domain):
        return None
    normalized = f"{local}@{domain.lower()}"
    return Address(ascii=normalized, display=normalized)


def parse_address(value: Any, name: str) -> Address:
    """Syntax-check an address (no DNS at send time); SES needs an ASCII local part."""
    if not isinstance(value, str) or not value.strip():
        raise _reject(f"{name} must be a non-empty string")
    check_header_safe(name, value)
    if len(value) > 320:
        raise _reject(f"{name} is longer than 320 characters")
    fast = plain_ascii_address(value.strip())
    if fast is not None:
        return fast
    # imported here: ~15 ms of regex compilation that a cold start pays only when needed
    from email_validator import EmailNotValidError, validate_email

    try:
        info = validate_email(value.strip(), check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise _reject(f"{name} is not a valid address: {exc}") from None
    ascii_email = info.ascii_email or info.normalized
    return Address(ascii=ascii_email, display=info.normalized)


def _display_name(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _reject(f"{name} must be a string")
    check_header_safe(name, value)
    value = value.strip()
    if len(value) > MAX_NAME_CHARS:
        raise _reject(f"{name} is longer than {MAX_NAME_CHARS} characters")
    return value or None


def belongs_to_identity(address: Address, identity: str) -> bool:
    """True when ``address`` may be sent from under the SES ``identity``."""
    ident = identity.strip().lower()
    addr = address.normalized
    if "@" in ident:
        return addr == ident
    domain = addr.rsplit("@", 1)[1]
    return domain == ident or domain.endswith("." + ident)


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _reject("tags must be an object of name -> value")
    if len(value) > MAX_TAGS:
        raise _reject(f"at most {MAX_TAGS} tags are allowed")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str) or not _TAG_RE.match(k) or not _TAG_RE.match(v):
            raise _reject(f"tag {k!r}: names and values must match [A-Za-z0-9_-]{{1,256}}")
        if k in RESERVED_TAGS:
            raise _reject(f"tag {k!r} is reserved")
        out[k] = v
    return out


def _check_envelope(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _reject("the request must be a JSON object")
    try:
        size = len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        raise _reject("the request is not JSON-serialisable") from None
    if size > MAX_REQUEST_BYTES:
        raise _reject(f"the request is {size} bytes; the limit is {MAX_REQUEST_BYTES}")
    unknown = sorted(set(raw) - KNOWN_FIELDS)
    if unknown:
        raise _reject(f"unknown field(s): {', '.join(unknown)}")
    return raw


def _data(value: Any) -> dict[str, Any]:
    data = {} if value is None else value
    if not isinstance(data, dict):
        raise _reject("data must be a JSON object")
    data_size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    if data_size > MAX_DATA_BYTES:
        raise _reject(f"data is {data_size} bytes; the limit is {MAX_DATA_BYTES}")
    return data


def _own_address(value: Any, name: str, identity: str) -> str | None:
    """``from``/``replyTo``: an address under the stack's sending identity, or None."""
    if value is None:
        return None
    addr = parse_address(value, name)
    if not belongs_to_identity(addr, identity):
        raise _reject(f"{name} must belong to the sending identity {identity}")
    return addr.ascii


def _matching(value: Any, pattern: re.Pattern[str], name: str, shown: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise _reject(f"{name} must match {shown}")
    return value


def _campaign_fields(raw: dict[str, Any]) -> tuple[str | None, str | None, int]:
    """(campaignId, stage, sendRound): set by the campaign and the send machine."""
    campaign_id = raw.get("campaignId")
    if campaign_id is not None and not ids.is_campaign_id(campaign_id):
        raise _reject(f"campaignId must match {ids.CAMPAIGN_ID_PATTERN}")
    stage = raw.get("stage")
    if stage is not None and (not isinstance(stage, str | int) or not _TAG_RE.match(str(stage))):
        raise _reject("stage must match [A-Za-z0-9_-]")
    send_round = raw.get("sendRound", 0)
    if not isinstance(send_round, int) or isinstance(send_round, bool) or not 0 <= send_round <= MAX_SEND_ROUND:
        raise _reject(f"sendRound must be an integer 0..{MAX_SEND_ROUND}")
    return campaign_id, None if stage is None else str(stage), send_round


def _timing(raw: dict[str, Any], now: datetime) -> tuple[str | None, str | None]:
    """(sendAt, scheduledFor), normalised to UTC: ``sendAt`` only when it lies ahead; one due
    now (within the clock skew) is sent at once and its time kept as ``scheduledFor``."""
    send_at, scheduled_for = raw.get("sendAt"), raw.get("scheduledFor")
    if send_at is not None and scheduled_for is not None:
        raise _reject("sendAt and scheduledFor exclude each other (scheduledFor is set by the send machine)")
    if scheduled_for is not None:
        return None, scheduling.iso(scheduling.parse_instant(scheduled_for, "scheduledFor"))
    if send_at is None:
        return None, None
    at, ahead = scheduling.send_at(send_at, now)
    return (scheduling.iso(at), None) if ahead else (None, scheduling.iso(at))


def _given(value: Any) -> bool:
    """Not empty: None, {}, [] and 0 are left out of a request; False (tracking) is kept."""
    return value is False or value not in (None, {}, [], 0)


def _variant(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,20}", value):
        raise _reject("variant must match [A-Za-z0-9_-]{1,20} (set by campaigns)")
    return value


def _tracking(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _reject("tracking must be true or false")


def parse_locale(value: Any, name: str = "locale") -> str | None:
    """A language tag, normalised (``pt_br`` -> ``pt-BR``, ``zh-hant-tw`` -> ``zh-Hant-TW``); None
    when absent. Whether templates have that locale does not matter here (they fall back)."""
    if value is None or value == "":
        return None
    match = _LOCALE_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise _reject(f"{name} must be a language tag such as de, pt-BR or zh-Hant-TW, not {str(value)[:40]!r}")
    language, script, region = match.groups()
    return "-".join(
        p for p in (language.lower(), script.title() if script else None, region.upper() if region else None) if p
    )


def validate(
    raw: Any, *, identity: str, default_email_id: str | None = None, now: datetime | None = None
) -> SendRequest:
    """Validate and normalise a send request; raise :class:`InvalidEmailRequest`. ``now``
    (default: the clock) is what ``sendAt`` is checked against."""
    raw = _check_envelope(raw)
    email_id = raw.get("emailId") or default_email_id or str(uuid.uuid4())
    if not ids.is_email_id(email_id):
        raise _reject(f"emailId must match {ids.EMAIL_ID_PATTERN}")
    template = _matching(raw.get("template"), _TEMPLATE_RE, "template", "[a-z0-9_-]{1,64}")
    to = parse_address(raw.get("to"), "to")
    topic = _matching(raw.get("topic") or TRANSACTIONAL, _TOPIC_RE, "topic", "[a-z0-9_-]{1,64}")
    campaign_id, stage, send_round = _campaign_fields(raw)
    send_at, scheduled_for = _timing(raw, now or datetime.now(UTC))
    return SendRequest(
        emailId=email_id,
        template=template,
        to=to.ascii,
        recipient=to.normalized,
        toName=_display_name(raw.get("toName"), "toName"),
        data=_data(raw.get("data", {})),
        from_=_own_address(raw.get("from"), "from", identity),
        fromName=_display_name(raw.get("fromName"), "fromName"),
        replyTo=_own_address(raw.get("replyTo"), "replyTo", identity),
        topic=topic,
        tags=_tags(raw.get("tags")),
        campaignId=campaign_id,
        stage=stage,
        sendRound=send_round,
        sendAt=send_at,
        scheduledFor=scheduled_for,
        locale=parse_locale(raw.get("locale")),
        attachments=[a.as_dict() for a in attachments.parse(raw.get("attachments"))],
        tracking=_tracking(raw.get("tracking")),
        variant=_variant(raw.get("variant")),
    )


def kept_fields(raw: Any, default_email_id: str | None) -> dict[str, str | None]:
    """What a rejected request's record keeps: each field only when it is well-formed; the
    emailId is the request's own when valid, else ``default_email_id`` (the execution name)."""

    def kept(key: str, pattern: str) -> str | None:
        value = raw.get(key) if isinstance(raw, dict) else None
        return value if isinstance(value, str) and re.fullmatch(pattern, value) else None

    return {
        "emailId": kept("emailId", ids.EMAIL_ID_PATTERN) or default_email_id or "unknown",
        "template": kept("template", _TEMPLATE_RE.pattern.strip("^$")),
        "topic": kept("topic", _TOPIC_RE.pattern.strip("^$")),
        "campaignId": kept("campaignId", ids.CAMPAIGN_ID_PATTERN),
    }
