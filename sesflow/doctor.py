"""``sesflow doctor``: what would stop mail going out, and what the bulk-sender rules want.

Three layers, so that every check can be tested without AWS or DNS:

* :func:`fetch` reads the SES account, the sender identity and the configuration set with a
  boto3 ``sesv2`` client into :class:`Facts` (a failed call is recorded, never raised);
* :func:`run_checks` turns :class:`Facts` plus DNS answers into :class:`Check` results
  (``pass`` / ``warn`` / ``fail``, a one-line detail and a one-line fix hint);
* DNS goes through a :class:`Resolver` (``txt(name)``, ``cname(name)``); the default,
  :class:`DnsPythonResolver`, uses dnspython with a 2 s limit per lookup. An unanswerable
  lookup raises :class:`DnsError` and becomes a ``warn`` with its reason.

The DNS rules are those of the Gmail / Yahoo bulk-sender requirements (2024) and of
Microsoft's for senders of more than 5,000 emails a day (from 2025-05-05): SPF, DKIM,
DMARC with at least ``p=none``, and the From domain aligned with the DKIM (or SPF) domain.

Relaxed alignment compares organizational domains; without the Public Suffix List they are
approximated (:func:`org_domain`: the last two labels, three under ``co.uk``-like suffixes).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

PASS, WARN, FAIL = "pass", "warn", "fail"
DNS_TIMEOUT_SECONDS = 2.0
SES_SPF_INCLUDE = "amazonses.com"
#: a DKIM CNAME target: <token>.dkim.amazonses.com, or <token>.dkim.<region>.amazonses.com
_DKIM_TARGET = re.compile(r"^(?P<token>[^.]+)\.dkim\.(?:[a-z0-9-]+\.)?amazonses\.com$")
_DMARC_POLICIES = ("none", "quarantine", "reject")
#: checks that the local emulator does not enforce: a ``fail`` there is reported as ``warn``
_LOCAL_ADVISORY_PREFIXES = ("dns.", "identity.dkim", "identity.mail-from")
_SECOND_LEVEL_LABELS = {"ac", "co", "com", "edu", "gov", "go", "ltd", "ne", "net", "or", "org", "plc"}


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class Check:
    name: str
    status: str  # PASS | WARN | FAIL
    detail: str
    hint: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def report(checks: list[Check]) -> dict[str, Any]:
    """The ``--json`` document: ``{"checks": [...], "ok": bool}``; ok means no ``fail``."""
    return {"checks": [c.as_dict() for c in checks], "ok": all(c.status != FAIL for c in checks)}


# ---------------------------------------------------------------- DNS
class DnsError(Exception):
    """A lookup that got no answer (timeout, no reachable nameserver, SERVFAIL, ...)."""


class Resolver(Protocol):
    def txt(self, name: str) -> list[str]:
        """The TXT records at ``name`` (each one's strings joined); ``[]`` when there are none."""
        ...

    def cname(self, name: str) -> str | None:
        """The CNAME target of ``name`` (lower case, no trailing dot); ``None`` when there is none."""
        ...


class DnsPythonResolver:
    """:class:`Resolver` over dnspython; every lookup gives up after ``timeout`` seconds."""

    def __init__(self, timeout: float = DNS_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout

    def _answer(self, name: str, rdtype: str) -> Any:
        import dns.exception
        import dns.resolver

        try:
            resolver = dns.resolver.Resolver()
            resolver.timeout = resolver.lifetime = self.timeout
            return resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.exception.Timeout:
            raise DnsError(f"no answer within {self.timeout:g} s") from None
        except dns.resolver.NoNameservers:
            raise DnsError("no nameserver answered (SERVFAIL or unreachable)") from None
        except dns.resolver.NoResolverConfiguration:
            raise DnsError("no DNS resolver configured") from None
        except (dns.exception.DNSException, OSError) as exc:
            raise DnsError(f"{type(exc).__name__}: {exc}") from None

    def txt(self, name: str) -> list[str]:
        answer = self._answer(name, "TXT")
        if answer is None or answer.rrset is None:
            return []
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    def cname(self, name: str) -> str | None:
        answer = self._answer(name, "CNAME")
        if answer is None or answer.rrset is None:
            return None
        for r in answer:
            return str(r.target.to_text()).rstrip(".").lower()
        return None


def default_resolver() -> Resolver:
    return DnsPythonResolver()


class _Memo:
    """Asks each name once per run (the answer, or the DnsError, is remembered)."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._seen: dict[tuple[str, str], Any] = {}

    def _ask(self, kind: str, name: str, fn: Callable[[str], Any]) -> Any:
        key = (kind, name.lower().rstrip("."))
        if key not in self._seen:
            try:
                self._seen[key] = fn(key[1])
            except DnsError as exc:
                self._seen[key] = exc
        value = self._seen[key]
        if isinstance(value, DnsError):
            raise value
        return value

    def txt(self, name: str) -> list[str]:
        result: list[str] = self._ask("txt", name, self.resolver.txt)
        return result

    def cname(self, name: str) -> str | None:
        value = self._ask("cname", name, self.resolver.cname)
        return None if value is None else str(value).rstrip(".").lower()


# ---------------------------------------------------------------- facts (AWS)
@dataclass
class Lookup:
    """One SES API answer: its data, or why there is none."""

    data: dict[str, Any] | None = None
    error: str | None = None  # "<code>: <message>", one line
    not_found: bool = False
    code: str | None = None  # the error code (NotFoundException, AccessDeniedException, 404, ...)


@dataclass
class Facts:
    sender_identity: str  # stack output SenderIdentity (a domain or an address)
    from_address: str  # stack output DefaultFromAddress ("" when the stack has none)
    config_set: str  # stack output ConfigurationSetName
    region: str
    account: Lookup
    identity: Lookup  # GetEmailIdentity(SenderIdentity)
    config: Lookup  # GetConfigurationSet
    destinations: Lookup  # GetConfigurationSetEventDestinations
    #: the identity whose DKIM and MAIL FROM settings apply to the From domain (the From
    #: domain's own identity if it has one, else SenderIdentity) and its answer
    signing_identity: str = ""
    signing: Lookup = field(default_factory=Lookup)
    local: bool = False

    def __post_init__(self) -> None:
        if not self.signing_identity:
            self.signing_identity, self.signing = self.sender_identity, self.identity

    @property
    def from_domain(self) -> str:
        source = self.from_address or self.sender_identity
        return normalize_domain(source.rsplit("@", 1)[-1])

    @property
    def dkim_domain(self) -> str:
        """The d= domain of SES's DKIM signature: the signing identity's domain."""
        return normalize_domain(self.signing_identity.rsplit("@", 1)[-1])


def normalize_domain(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def one_line(text: str, limit: int = 160) -> str:
    """``text`` on one line, HTML tags dropped, at most ``limit`` characters (error bodies can be pages)."""
    text = " ".join(re.sub(r"<[^>]*>", " ", text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _call(fn: Callable[..., Any], **kwargs: Any) -> Lookup:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        data = dict(fn(**kwargs))
    except ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "Error")
        message = one_line(str(err.get("Message") or exc), 100)
        return Lookup(error=f"{code}: {message}", not_found=code == "NotFoundException", code=code)
    except BotoCoreError as exc:
        return Lookup(error=one_line(f"{type(exc).__name__}: {exc}"))
    data.pop("ResponseMetadata", None)
    return Lookup(data=data)


def fetch(
    sesv2: Any, *, sender_identity: str, from_address: str, config_set: str, region: str, local: bool = False
) -> Facts:
    """Everything the checks need from SES v2, one call each; failures are kept, not raised."""
    if local:
        _read_emulator_sending_options(sesv2)
    facts = Facts(
        sender_identity=sender_identity,
        from_address=from_address,
        config_set=config_set,
        region=region,
        account=_call(sesv2.get_account),
        identity=_call(sesv2.get_email_identity, EmailIdentity=sender_identity),
        config=_call(sesv2.get_configuration_set, ConfigurationSetName=config_set),
        destinations=_call(sesv2.get_configuration_set_event_destinations, ConfigurationSetName=config_set),
        local=local,
    )
    # SES signs with the most specific verified identity: the From domain's own, if there is one
    if facts.from_domain != normalize_domain(sender_identity):
        own = _call(sesv2.get_email_identity, EmailIdentity=facts.from_domain)
        if not own.not_found:
            facts.signing_identity, facts.signing = facts.from_domain, own
    return facts


def _read_emulator_sending_options(sesv2: Any) -> None:
    """Local stack: make ``GetConfigurationSet`` report the emulator's real SendingEnabled.

    moto answers ``"SendingOptions": {"SendingEnabled": {"SendingEnabled": true}}`` (its v1
    ``enabled`` dict nested in the v2 field), which botocore parses as ``False``: every local
    configuration set would look paused. The raw body is read before botocore parses it.
    """
    events = getattr(getattr(sesv2, "meta", None), "events", None)
    if events is None:
        return
    service = sesv2.meta.service_model.service_id.hyphenize()

    def fix(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
        import json

        try:
            raw = json.loads(response_dict.get("body") or b"{}")
        except ValueError:
            return
        value = (raw.get("SendingOptions") or {}).get("SendingEnabled") if isinstance(raw, dict) else None
        if isinstance(value, dict):
            customized_response_dict["SendingOptions"] = {"SendingEnabled": bool(value.get("SendingEnabled", True))}

    events.register(f"before-parse.{service}.GetConfigurationSet", fix, unique_id="sesflow-doctor-sending-options")


# ---------------------------------------------------------------- account
def _unavailable(name: str, what: str, lookup: Lookup, hint: str) -> Check:
    return Check(name, WARN, f"not checked: {what} failed ({lookup.error})", hint)


def check_account(facts: Facts) -> list[Check]:
    names = ("account.sending", "account.production", "account.quota", "account.enforcement")
    acct = facts.account.data
    if acct is None:
        hint = "allow ses:GetAccount for this caller and run doctor again"
        return [_unavailable(n, "GetAccount", facts.account, hint) for n in names]
    region = facts.region
    checks: list[Check] = []
    if acct.get("SendingEnabled", True):
        checks.append(
            Check(
                names[0],
                PASS,
                f"sending is enabled for the account in {region}",
                "if paused: aws sesv2 put-account-sending-attributes --sending-enabled",
            )
        )
    else:
        checks.append(
            Check(
                names[0],
                FAIL,
                f"sending is paused for the whole account in {region}",
                "find why (SES console, account dashboard), then "
                "aws sesv2 put-account-sending-attributes --sending-enabled",
            )
        )
    if acct.get("ProductionAccessEnabled"):
        checks.append(Check(names[1], PASS, "production access (out of the sandbox)", "nothing to do"))
    else:
        checks.append(
            Check(
                names[1],
                WARN,
                "sandbox: mail only to verified addresses, at most 200 a day and 1 a second",
                "request production access: SES console → Account dashboard, or aws sesv2 put-account-details",
            )
        )
    checks.append(_quota(names[2], acct.get("SendQuota") or {}))
    enforcement = str(acct.get("EnforcementStatus") or "unknown")
    status = {"HEALTHY": PASS, "SHUTDOWN": FAIL}.get(enforcement, WARN)
    detail = {
        "HEALTHY": "enforcement status HEALTHY",
        "PROBATION": "enforcement status PROBATION: the account is under review",
        "SHUTDOWN": "enforcement status SHUTDOWN: SES has stopped the account's sending",
    }
    checks.append(
        Check(
            names[3],
            status,
            detail.get(enforcement, f"enforcement status {enforcement}"),
            "lower bounce and complaint rates (SES console → Reputation metrics); "
            "after a shutdown, ask AWS support to review",
        )
    )
    return checks


def _quota(name: str, quota: dict[str, Any]) -> Check:
    peak = float(quota.get("Max24HourSend", 0.0))
    sent = float(quota.get("SentLast24Hours", 0.0))
    rate = float(quota.get("MaxSendRate", 0.0))
    hint = "ask for a higher sending quota (Service Quotas → Amazon SES) or spread sends over the day"
    if peak < 0:
        return Check(name, PASS, f"no 24-hour limit, {sent:,.0f} sent, max send rate {rate:g}/s", hint)
    detail = f"{sent:,.0f} of {peak:,.0f} emails sent in the last 24 h, max send rate {rate:g}/s"
    if peak == 0 or sent >= peak:
        return Check(name, FAIL, detail + ": quota used up, sends are refused", hint)
    if sent >= 0.8 * peak:
        return Check(name, WARN, detail + f" ({sent / peak:.0%} used)", hint)
    return Check(name, PASS, detail, hint)


# ---------------------------------------------------------------- identity
def belongs_to_identity(address: str, identity: str) -> bool:
    """True when ``address`` may be sent from under ``identity`` (an address, or a domain and its subdomains)."""
    ident = identity.strip().lower()
    if "@" in ident:
        return address.strip().lower() == ident
    domain = normalize_domain(address.rsplit("@", 1)[-1])
    ident = normalize_domain(ident)
    return domain == ident or domain.endswith("." + ident)


def check_identity(facts: Facts) -> list[Check]:
    ident, region = facts.sender_identity, facts.region
    checks: list[Check] = []
    verify_hint = (
        f"verify {ident} in {region}: SES console → Identities, then publish its DKIM CNAMEs "
        "(a domain) or click the link SES mailed (an address)"
    )
    data = facts.identity.data
    if data is None and facts.identity.not_found:
        checks.append(Check("identity.verified", FAIL, f"SES in {region} has no identity {ident}", verify_hint))
    elif data is None:
        checks.append(
            _unavailable(
                "identity.verified",
                "GetEmailIdentity",
                facts.identity,
                "allow ses:GetEmailIdentity for this caller and run doctor again",
            )
        )
    elif data.get("VerifiedForSendingStatus") is True:
        checks.append(Check("identity.verified", PASS, f"{ident} is verified for sending", verify_hint))
    elif facts.local and data.get("VerificationStatus") == "SUCCESS":
        checks.append(Check("identity.verified", PASS, f"{ident} is verified by the local emulator", verify_hint))
    else:
        status = data.get("VerificationStatus") or "not verified"
        checks.append(Check("identity.verified", FAIL, f"{ident} is not verified for sending ({status})", verify_hint))

    if not facts.from_address:
        checks.append(
            Check(
                "identity.from-address",
                WARN,
                "the stack has no DefaultFromAddress output",
                "deploy with DefaultFromAddress set to an address under SenderIdentity",
            )
        )
    elif belongs_to_identity(facts.from_address, ident):
        checks.append(
            Check(
                "identity.from-address",
                PASS,
                f"DefaultFromAddress (domain {facts.from_domain}) belongs to {ident}",
                "keep DefaultFromAddress under SenderIdentity",
            )
        )
    else:
        checks.append(
            Check(
                "identity.from-address",
                FAIL,
                f"DefaultFromAddress (domain {facts.from_domain}) is not under {ident}: "
                "SES and the send function's IAM policy refuse it",
                "deploy with DefaultFromAddress under SenderIdentity (or SenderIdentity covering it)",
            )
        )
    checks.append(_dkim_status(facts))
    checks.append(_mail_from(facts))
    return checks


def _dkim_status(facts: Facts) -> Check:
    name, ident = "identity.dkim", facts.signing_identity
    hint = (
        f"publish the three CNAMEs <token>._domainkey.{facts.dkim_domain} → <token>.dkim.amazonses.com "
        f"shown for {ident} in the SES console, and keep DKIM signing enabled"
    )
    if facts.signing.data is None:
        if facts.signing.not_found:
            return Check(name, FAIL, f"no identity {ident}, so no DKIM signature", hint)
        return _unavailable(name, "GetEmailIdentity", facts.signing, hint)
    dkim = facts.signing.data.get("DkimAttributes") or {}
    status = str(dkim.get("Status") or "NOT_STARTED")
    if not dkim.get("SigningEnabled"):
        return Check(name, FAIL, f"DKIM signing is disabled for {ident} (status {status})", hint)
    if status == "SUCCESS":
        origin = dkim.get("SigningAttributesOrigin") or "AWS_SES"
        return Check(name, PASS, f"DKIM signing enabled, status SUCCESS ({origin}) for {ident}", hint)
    if status in ("PENDING", "TEMPORARY_FAILURE"):
        return Check(name, WARN, f"DKIM status {status} for {ident}: SES has not confirmed the DNS records yet", hint)
    return Check(
        name,
        FAIL,
        f"DKIM status {status} for {ident}: mail goes out without a {facts.dkim_domain} DKIM signature",
        hint,
    )


def mail_from_domain(facts: Facts) -> str | None:
    """The custom MAIL FROM domain SES uses for the From domain, when one is configured."""
    attrs = ((facts.signing.data or {}).get("MailFromAttributes")) or {}
    domain = attrs.get("MailFromDomain")
    return normalize_domain(str(domain)) if domain else None


def _mail_from(facts: Facts) -> Check:
    name, domain = "identity.mail-from", facts.from_domain
    hint = (
        f"set a custom MAIL FROM subdomain (e.g. bounce.{domain}) with MX 10 feedback-smtp.{facts.region}"
        f'.amazonses.com and TXT "v=spf1 include:amazonses.com ~all"'
    )
    if facts.signing.data is None:
        if facts.signing.not_found:
            return Check(name, FAIL, f"no identity {facts.signing_identity}", hint)
        return _unavailable(name, "GetEmailIdentity", facts.signing, hint)
    attrs = facts.signing.data.get("MailFromAttributes") or {}
    mail_from = mail_from_domain(facts)
    if not mail_from:
        return Check(
            name,
            WARN,
            "no custom MAIL FROM: the envelope sender is amazonses.com, so SPF cannot "
            f"align with {domain} (DKIM alignment still can)",
            hint,
        )
    status = str(attrs.get("MailFromDomainStatus") or "PENDING")
    if status == "SUCCESS":
        return Check(name, PASS, f"custom MAIL FROM {mail_from} is set up (SUCCESS)", hint)
    if status == "PENDING":
        return Check(name, WARN, f"custom MAIL FROM {mail_from} is PENDING: SES has not found its MX record yet", hint)
    if attrs.get("BehaviorOnMxFailure") == "REJECT_MESSAGE":
        return Check(
            name,
            FAIL,
            f"custom MAIL FROM {mail_from} is {status} and BehaviorOnMxFailure is REJECT_MESSAGE: SES refuses to send",
            hint,
        )
    return Check(name, WARN, f"custom MAIL FROM {mail_from} is {status}: SES falls back to amazonses.com", hint)


# ---------------------------------------------------------------- configuration set
def _sending_enabled(config: dict[str, Any]) -> bool:
    value = (config.get("SendingOptions") or {}).get("SendingEnabled", True)
    if isinstance(value, dict):  # the local emulator (moto) nests its v1 "enabled" dict here
        value = value.get("SendingEnabled", True)
    return bool(value)


def check_configuration_set(facts: Facts) -> list[Check]:
    name = facts.config_set
    exists_hint = "deploy the stack again (the configuration set is one of its resources)"
    if facts.config.data is None:
        if facts.config.not_found:
            first = Check(
                "configset.sending", FAIL, f"configuration set {name} does not exist: every send fails", exists_hint
            )
        else:
            first = _unavailable(
                "configset.sending",
                "GetConfigurationSet",
                facts.config,
                "allow ses:GetConfigurationSet for this caller and run doctor again",
            )
    elif _sending_enabled(facts.config.data):
        first = Check(
            "configset.sending",
            PASS,
            f"configuration set {name} exists, sending enabled",
            f"if paused: aws sesv2 put-configuration-set-sending-options --configuration-set-name {name} "
            "--sending-enabled",
        )
    else:
        first = Check(
            "configset.sending",
            FAIL,
            f"sending is paused for configuration set {name}",
            f"aws sesv2 put-configuration-set-sending-options --configuration-set-name {name} --sending-enabled",
        )
    return [first, _event_destinations(facts)]


def _event_destinations(facts: Facts) -> Check:
    name = "configset.events"
    hint = (
        f"add an enabled event destination to {facts.config_set} matching BOUNCE and COMPLAINT "
        "(the stack's SesEventsToEventBridge / SesEventsToSns resource)"
    )
    if facts.destinations.data is None:
        if facts.config.not_found or facts.destinations.not_found:
            return Check(name, FAIL, f"no configuration set {facts.config_set}, so no event destination", hint)
        if facts.local:
            return Check(
                name,
                WARN,
                "not checked: the local emulator does not serve "
                f"GetConfigurationSetEventDestinations ({facts.destinations.code or facts.destinations.error})",
                hint,
            )
        return _unavailable(name, "GetConfigurationSetEventDestinations", facts.destinations, hint)
    covered: set[str] = set()
    names: list[str] = []
    for dest in facts.destinations.data.get("EventDestinations") or []:
        if not dest.get("Enabled"):
            continue
        types = {str(t).upper() for t in dest.get("MatchingEventTypes") or []}
        if types & {"BOUNCE", "COMPLAINT"}:
            covered |= types & {"BOUNCE", "COMPLAINT"}
            names.append(str(dest.get("Name") or "?"))
    missing = sorted({"BOUNCE", "COMPLAINT"} - covered)
    if not missing:
        return Check(name, PASS, f"bounces and complaints are published ({', '.join(names)})", hint)
    return Check(
        name,
        FAIL,
        f"no enabled event destination receives {' or '.join(missing)} events: "
        "the suppression list never learns of them",
        hint,
    )


# ---------------------------------------------------------------- DNS checks
def org_domain(domain: str) -> str:
    """Approximate organizational domain (RFC 7489 3.2) without the Public Suffix List."""
    labels = normalize_domain(domain).split(".")
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL_LABELS:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def aligned(from_domain: str, other: str, mode: str) -> bool:
    """DMARC identifier alignment: strict (``s``) needs equal domains, relaxed (``r``) equal org domains."""
    a, b = normalize_domain(from_domain), normalize_domain(other)
    if mode == "s":
        return a == b
    return a == b or org_domain(a) == org_domain(b)


def spf_records(records: list[str]) -> list[str]:
    return [r.strip() for r in records if re.match(r"^\s*v=spf1(\s|$)", r, re.IGNORECASE)]


def spf_includes(record: str, domain: str = SES_SPF_INCLUDE) -> bool:
    """True when the SPF record authorizes ``domain`` directly (``include:`` with a pass qualifier)."""
    terms = record.lower().split()[1:]
    return any(t in (f"include:{domain}", f"+include:{domain}") for t in terms)


def _spf_delegates(record: str) -> bool:
    """True when the record hands over to another domain's SPF (other than amazonses.com itself)."""
    terms = [t.lstrip("+?~-") for t in record.lower().split()[1:]]
    return any(t.startswith(("include:", "redirect=")) and t != f"include:{SES_SPF_INCLUDE}" for t in terms)


@dataclass(frozen=True)
class Dmarc:
    policy: str
    subdomain_policy: str | None
    adkim: str
    aspf: str
    pct: int


class DmarcSyntaxError(ValueError):
    """A DMARC record receivers would discard."""


def parse_dmarc(record: str) -> Dmarc:
    """Parse a DMARC TXT record (RFC 7489 6.3/6.4); raise :class:`DmarcSyntaxError`."""
    pairs: list[tuple[str, str]] = []
    for part in record.split(";"):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise DmarcSyntaxError(f"tag {part!r} has no '='")
        key, value = part.split("=", 1)
        pairs.append((key.strip().lower(), value.strip()))
    if not pairs or pairs[0] != ("v", "DMARC1"):
        raise DmarcSyntaxError("it must start with v=DMARC1;")
    tags = dict(pairs)
    if "p" not in tags:
        raise DmarcSyntaxError("no p= tag")
    policy = tags["p"].lower()
    if policy not in _DMARC_POLICIES:
        raise DmarcSyntaxError(f"p={tags['p']} is not none, quarantine or reject")
    sub = tags.get("sp")
    if sub is not None and sub.lower() not in _DMARC_POLICIES:
        raise DmarcSyntaxError(f"sp={sub} is not none, quarantine or reject")
    modes: dict[str, str] = {}
    for key in ("adkim", "aspf"):
        modes[key] = tags.get(key, "r").lower()
        if modes[key] not in ("r", "s"):
            raise DmarcSyntaxError(f"{key}={tags[key]} is not r or s")
    try:
        pct = int(tags.get("pct", "100"))
    except ValueError:
        raise DmarcSyntaxError(f"pct={tags['pct']} is not a number") from None
    if not 0 <= pct <= 100:
        raise DmarcSyntaxError(f"pct={pct} is not between 0 and 100")
    return Dmarc(policy, sub.lower() if sub else None, modes["adkim"], modes["aspf"], pct)


def _dns_warn(name: str, what: str, exc: DnsError, hint: str) -> Check:
    return Check(name, WARN, f"DNS unreachable for {what}: {exc}", hint)


def check_spf(facts: Facts, dns: Resolver) -> Check:
    name, domain = "dns.spf", facts.from_domain
    mail_from = mail_from_domain(facts)
    hint = f'publish TXT {domain} "v=spf1 include:amazonses.com ~all" (merged into any SPF record already there)'
    try:
        found = spf_records(dns.txt(domain))
    except DnsError as exc:
        return _dns_warn(name, domain, exc, hint)
    if not found:
        return Check(name, FAIL, f"no SPF record on {domain}", hint)
    if len(found) > 1:
        return Check(
            name,
            FAIL,
            f"{len(found)} SPF records on {domain}: receivers treat that as an error (permerror)",
            "merge them into one v=spf1 record",
        )
    record = found[0]
    if mail_from:
        mf_hint = f'publish TXT {mail_from} "v=spf1 include:amazonses.com ~all"'
        try:
            mf_found = spf_records(dns.txt(mail_from))
        except DnsError as exc:
            return _dns_warn(name, mail_from, exc, mf_hint)
        if len(mf_found) == 1 and spf_includes(mf_found[0]):
            return Check(name, PASS, f"{domain} has SPF; MAIL FROM {mail_from} SPF includes amazonses.com", mf_hint)
        # receivers check SPF on the envelope sender: the MAIL FROM domain, not the From domain
        what = "no SPF record" if not mf_found else f"{len(mf_found)} SPF records" if len(mf_found) > 1 else "SPF"
        return Check(
            name,
            FAIL,
            f"MAIL FROM {mail_from}: {what} without include:amazonses.com, so SPF fails for every message",
            mf_hint,
        )
    if spf_includes(record):
        return Check(name, PASS, f"{domain} SPF includes amazonses.com", hint)
    if _spf_delegates(record):
        return Check(
            name,
            WARN,
            f"{domain} SPF does not include amazonses.com directly (nested include:/redirect= are not followed)",
            hint,
        )
    return Check(name, FAIL, f"{domain} SPF does not include amazonses.com", hint)


def dkim_tokens(facts: Facts) -> tuple[list[str], str]:
    dkim = (facts.signing.data or {}).get("DkimAttributes") or {}
    return [str(t) for t in dkim.get("Tokens") or []], str(dkim.get("SigningAttributesOrigin") or "AWS_SES")


def check_dkim_dns(facts: Facts, dns: Resolver) -> Check:
    name, domain = "dns.dkim", facts.dkim_domain
    tokens, origin = dkim_tokens(facts)
    hint = (
        f"publish CNAME <token>._domainkey.{domain} → <token>.dkim.amazonses.com for each of the "
        f"tokens SES shows for {facts.signing_identity}"
    )
    if facts.signing.data is None and not facts.signing.not_found:
        return _unavailable(name, "GetEmailIdentity", facts.signing, hint)
    if not tokens:
        return Check(
            name,
            FAIL,
            f"SES has no DKIM tokens for {facts.signing_identity}: Easy DKIM is not set up",
            "enable Easy DKIM on the identity (SES console → Identities → Authentication), then " + hint,
        )
    if origin == "EXTERNAL":  # BYODKIM: the token is the selector of a TXT public key
        byo_hint = f"publish TXT <selector>._domainkey.{domain} with the public key (v=DKIM1; k=rsa; p=...)"
        bad = []
        for selector in tokens:
            try:
                keys = [r for r in dns.txt(f"{selector}._domainkey.{domain}") if "p=" in r.replace(" ", "")]
            except DnsError as exc:
                return _dns_warn(name, f"{selector}._domainkey.{domain}", exc, byo_hint)
            if not keys:
                bad.append(selector)
        if bad:
            return Check(name, FAIL, "no DKIM key at " + ", ".join(f"{b}._domainkey.{domain}" for b in bad), byo_hint)
        return Check(name, PASS, f"DKIM key published for selector {', '.join(tokens)} on {domain}", byo_hint)
    wrong = []
    for token in tokens:
        record = f"{token}._domainkey.{domain}"
        try:
            target = dns.cname(record)
        except DnsError as exc:
            return _dns_warn(name, record, exc, hint)
        match = _DKIM_TARGET.match(target or "")
        if match is None or match.group("token") != token.lower():
            wrong.append(f"{token[:8]}… → {target or 'nothing'}")
    if wrong:
        return Check(
            name,
            FAIL,
            f"{len(wrong)} of {len(tokens)} DKIM CNAMEs on {domain} are wrong or missing: " + "; ".join(wrong),
            hint,
        )
    return Check(name, PASS, f"all {len(tokens)} DKIM CNAMEs on {domain} point to amazonses.com", hint)


def find_dmarc(dns: Resolver, domain: str) -> tuple[str, list[str]]:
    """The DMARC records for ``domain``: at ``_dmarc.<domain>``, else at its organizational domain."""
    org = org_domain(domain)
    for where in dict.fromkeys((domain, org)):
        records = [r.strip() for r in dns.txt(f"_dmarc.{where}") if re.search(r"v\s*=\s*dmarc", r, re.I)]
        if records:
            return where, records
    return domain, []


def check_dmarc(facts: Facts, dns: Resolver) -> tuple[Check, Dmarc | None]:
    name, domain = "dns.dmarc", facts.from_domain
    hint = (
        f'publish TXT _dmarc.{org_domain(domain)} "v=DMARC1; p=none; rua=mailto:<reports address>" '
        "(then move to quarantine/reject)"
    )
    try:
        where, records = find_dmarc(dns, domain)
    except DnsError as exc:
        return _dns_warn(name, f"_dmarc.{domain}", exc, hint), None
    if not records:
        return Check(
            name,
            FAIL,
            f"no DMARC record at _dmarc.{domain}"
            + (f" or _dmarc.{org_domain(domain)}" if org_domain(domain) != domain else ""),
            hint,
        ), None
    if len(records) > 1:
        return Check(
            name,
            FAIL,
            f"{len(records)} DMARC records at _dmarc.{where}: receivers ignore them all",
            "keep exactly one v=DMARC1 record",
        ), None
    try:
        dmarc = parse_dmarc(records[0])
    except DmarcSyntaxError as exc:
        return Check(name, FAIL, f"malformed DMARC record at _dmarc.{where}: {exc}", hint), None
    policy = dmarc.policy if where == domain else (dmarc.subdomain_policy or dmarc.policy)
    detail = f"_dmarc.{where}: p={policy}" + (f" (for subdomain {domain})" if where != domain else "")
    if policy == "none":
        detail += ", monitoring only (meets the bulk-sender minimum)"
    return Check(name, PASS, detail, "raise p= to quarantine or reject once the aggregate reports are clean"), dmarc


def check_alignment(facts: Facts, dmarc: Dmarc | None) -> Check:
    name, domain = "dns.alignment", facts.from_domain
    adkim, aspf = (dmarc.adkim, dmarc.aspf) if dmarc else ("r", "r")
    mail_from = mail_from_domain(facts)
    hint = (
        f"sign with Easy DKIM on {domain} (or its parent) and set a custom MAIL FROM under {domain}; "
        "keep adkim/aspf relaxed unless the domains are equal"
    )
    dkim = ((facts.signing.data or {}).get("DkimAttributes")) or {}
    if facts.signing.data is None and not facts.signing.not_found:
        return _unavailable(name, "GetEmailIdentity", facts.signing, hint)
    dkim_signs = bool(dkim.get("SigningEnabled")) and dkim.get("Status") == "SUCCESS"
    dkim_ok = dkim_signs and aligned(domain, facts.dkim_domain, adkim)
    mail_from_ok = bool(mail_from) and (
        ((facts.signing.data or {}).get("MailFromAttributes") or {}).get("MailFromDomainStatus") == "SUCCESS"
    )
    spf_ok = mail_from_ok and aligned(domain, mail_from or "", aspf)
    modes = f"adkim={adkim}, aspf={aspf}"
    dkim_text = (
        f"DKIM d={facts.dkim_domain} aligned"
        if dkim_ok
        else f"DKIM d={facts.dkim_domain} not aligned"
        if dkim_signs
        else "no working DKIM signature"
    )
    spf_text = (
        f"SPF {mail_from} aligned"
        if spf_ok
        else f"SPF {mail_from} not aligned"
        if mail_from_ok
        else "SPF not aligned (envelope sender amazonses.com)"
    )
    detail = f"From {domain} ({modes}): {dkim_text}; {spf_text}"
    if dkim_ok:
        return Check(name, PASS, detail, hint)
    if spf_ok:
        return Check(name, WARN, detail + " (SPF alone breaks on forwarding)", hint)
    return Check(name, FAIL, detail + ": DMARC fails for every message", hint)


# ---------------------------------------------------------------- all of it
def run_checks(facts: Facts, resolver: Resolver) -> list[Check]:
    """Every check, in a fixed order; DNS answers are asked once per name."""
    dns = _Memo(resolver)
    checks = [*check_account(facts), *check_identity(facts), *check_configuration_set(facts)]
    checks.append(check_spf(facts, dns))
    checks.append(check_dkim_dns(facts, dns))
    dmarc_check, dmarc = check_dmarc(facts, dns)
    checks.append(dmarc_check)
    checks.append(check_alignment(facts, dmarc))
    if facts.local:
        checks = [_advisory(c) for c in checks]
    return checks


def _advisory(check: Check) -> Check:
    """On the local stack, DNS and DKIM/MAIL FROM are not enforced: a failure there is a warning."""
    if check.status == FAIL and check.name.startswith(_LOCAL_ADVISORY_PREFIXES):
        return Check(check.name, WARN, f"local stack, not enforced by the emulator: {check.detail}", check.hint)
    return check
