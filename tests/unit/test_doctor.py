"""``sesflow doctor``: every check over fake SES v2 answers and a fake resolver (no network, no AWS)."""

from __future__ import annotations

import argparse
import copy
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from sesflow import cli, doctor
from sesflow.cli import app, inputs
from sesflow.cli import doctor as cli_doctor
from sesflow.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from sesflow.doctor import FAIL, PASS, WARN, DnsError
from sesflow.target import Target, TargetError

TOKENS = ["abcdefghijklmnop1", "abcdefghijklmnop2", "abcdefghijklmnop3"]
ACCOUNT: dict[str, Any] = {
    "SendingEnabled": True,
    "ProductionAccessEnabled": True,
    "EnforcementStatus": "HEALTHY",
    "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": 120.0},
}
IDENTITY: dict[str, Any] = {
    "IdentityType": "DOMAIN",
    "VerifiedForSendingStatus": True,
    "VerificationStatus": "SUCCESS",
    "DkimAttributes": {
        "SigningEnabled": True,
        "Status": "SUCCESS",
        "Tokens": TOKENS,
        "SigningAttributesOrigin": "AWS_SES",
    },
    "MailFromAttributes": {
        "MailFromDomain": "bounce.example.com",
        "MailFromDomainStatus": "SUCCESS",
        "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
    },
}
CONFIG: dict[str, Any] = {"ConfigurationSetName": "sesflow-cs", "SendingOptions": {"SendingEnabled": True}}
DESTINATIONS: dict[str, Any] = {
    "EventDestinations": [
        {
            "Name": "sesflow-eventbridge",
            "Enabled": True,
            "MatchingEventTypes": [
                "SEND",
                "REJECT",
                "BOUNCE",
                "COMPLAINT",
                "DELIVERY",
                "DELIVERY_DELAY",
                "RENDERING_FAILURE",
            ],
            "EventBridgeDestination": {"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/default"},
        }
    ]
}
SPF = "v=spf1 include:amazonses.com ~all"
TXT: dict[str, list[str]] = {
    "example.com": [SPF, "google-site-verification=abc"],
    "bounce.example.com": [SPF],
    "_dmarc.example.com": ["v=DMARC1; p=quarantine; rua=mailto:reports@example.com; adkim=r; aspf=r"],
}
CNAME: dict[str, str] = {f"{t}._domainkey.example.com": f"{t}.dkim.amazonses.com" for t in TOKENS}


class FakeResolver:
    """Answers from dicts; a name in ``errors`` raises DnsError like a timeout would."""

    def __init__(
        self,
        txt: dict[str, list[str]] | None = None,
        cname: dict[str, str] | None = None,
        errors: set[str] | None = None,
    ) -> None:
        self.txt_records = copy.deepcopy(TXT if txt is None else txt)
        self.cnames = dict(CNAME if cname is None else cname)
        self.errors = errors or set()
        self.asked: list[str] = []

    def _check(self, name: str) -> None:
        self.asked.append(name)
        if name in self.errors or "*" in self.errors:
            raise DnsError(f"no answer within 2 s ({name})")

    def txt(self, name: str) -> list[str]:
        self._check(name)
        return list(self.txt_records.get(name, []))

    def cname(self, name: str) -> str | None:
        self._check(name)
        return self.cnames.get(name)


def not_found(op: str) -> ClientError:
    return ClientError({"Error": {"Code": "NotFoundException", "Message": "not found"}}, op)


class FakeSes:
    """The four SES v2 reads doctor makes; ``None`` for an identity means NotFoundException."""

    def __init__(
        self,
        account: dict[str, Any] | Exception | None = None,
        identities: dict[str, dict[str, Any] | None] | None = None,
        config: dict[str, Any] | Exception | None = None,
        destinations: dict[str, Any] | Exception | None = None,
    ) -> None:
        self.account = copy.deepcopy(ACCOUNT) if account is None else account
        self.identities = {"example.com": copy.deepcopy(IDENTITY)} if identities is None else identities
        self.config = copy.deepcopy(CONFIG) if config is None else config
        self.destinations = copy.deepcopy(DESTINATIONS) if destinations is None else destinations

    @staticmethod
    def _answer(value: Any) -> dict[str, Any]:
        if isinstance(value, Exception):
            raise value
        return {**value, "ResponseMetadata": {"HTTPStatusCode": 200}}

    def get_account(self) -> dict[str, Any]:
        return self._answer(self.account)

    def get_email_identity(self, EmailIdentity: str) -> dict[str, Any]:
        found = self.identities.get(EmailIdentity)
        if found is None:
            raise not_found("GetEmailIdentity")
        return self._answer(found)

    def get_configuration_set(self, ConfigurationSetName: str) -> dict[str, Any]:
        return self._answer(self.config)

    def get_configuration_set_event_destinations(self, ConfigurationSetName: str) -> dict[str, Any]:
        return self._answer(self.destinations)


def facts(
    ses: FakeSes | None = None,
    *,
    identity: str = "example.com",
    from_address: str = "no-reply@example.com",
    local: bool = False,
) -> doctor.Facts:
    return doctor.fetch(
        ses or FakeSes(),
        sender_identity=identity,
        from_address=from_address,
        config_set="sesflow-cs",
        region="us-east-1",
        local=local,
    )


def run(ses: FakeSes | None = None, resolver: FakeResolver | None = None, **kwargs: Any) -> dict[str, doctor.Check]:
    checks = doctor.run_checks(facts(ses, **kwargs), resolver or FakeResolver())
    return {c.name: c for c in checks}


def statuses(checks: dict[str, doctor.Check]) -> dict[str, str]:
    return {name: c.status for name, c in checks.items()}


ALL_NAMES = [
    "account.sending",
    "account.production",
    "account.quota",
    "account.enforcement",
    "identity.verified",
    "identity.from-address",
    "identity.dkim",
    "identity.mail-from",
    "configset.sending",
    "configset.events",
    "dns.spf",
    "dns.dkim",
    "dns.dmarc",
    "dns.alignment",
]


# ---------------------------------------------------------------- the healthy domain
def test_healthy_domain_passes_every_check() -> None:
    checks = run()
    assert list(checks) == ALL_NAMES
    assert statuses(checks) == dict.fromkeys(ALL_NAMES, PASS), {n: c.detail for n, c in checks.items()}
    assert doctor.report(list(checks.values()))["ok"] is True
    assert "bounce.example.com aligned" in checks["dns.alignment"].detail


def test_every_check_has_a_one_line_detail_and_hint() -> None:
    for check in run(FakeSes(account={**ACCOUNT, "SendingEnabled": False}), FakeResolver(errors={"*"})).values():
        assert check.status in (PASS, WARN, FAIL)
        for text in (check.detail, check.hint):
            assert text and "\n" not in text


# ---------------------------------------------------------------- account
def test_sandbox_warns_and_is_still_ok() -> None:
    checks = run(FakeSes(account={**ACCOUNT, "ProductionAccessEnabled": False}))
    assert checks["account.production"].status == WARN
    assert "sandbox" in checks["account.production"].detail
    assert doctor.report(list(checks.values()))["ok"] is True


def test_account_sending_disabled_fails() -> None:
    checks = run(FakeSes(account={**ACCOUNT, "SendingEnabled": False}))
    assert checks["account.sending"].status == FAIL
    assert doctor.report(list(checks.values()))["ok"] is False


@pytest.mark.parametrize(
    ("sent", "peak", "status"),
    [
        (120.0, 50000.0, PASS),
        (45000.0, 50000.0, WARN),
        (200.0, 200.0, FAIL),
        (10.0, -1.0, PASS),
    ],
)
def test_quota(sent: float, peak: float, status: str) -> None:
    quota = {"Max24HourSend": peak, "MaxSendRate": 14.0, "SentLast24Hours": sent}
    check = run(FakeSes(account={**ACCOUNT, "SendQuota": quota}))["account.quota"]
    assert check.status == status
    assert "14/s" in check.detail


@pytest.mark.parametrize(("enforcement", "status"), [("HEALTHY", PASS), ("PROBATION", WARN), ("SHUTDOWN", FAIL)])
def test_enforcement_status(enforcement: str, status: str) -> None:
    assert run(FakeSes(account={**ACCOUNT, "EnforcementStatus": enforcement}))["account.enforcement"].status == status


def test_get_account_denied_warns_instead_of_crashing() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetAccount")
    checks = run(FakeSes(account=denied))
    for name in ALL_NAMES[:4]:
        assert checks[name].status == WARN
        assert "AccessDeniedException" in checks[name].detail


# ---------------------------------------------------------------- identity
def test_unverified_identity_fails() -> None:
    identity = {**IDENTITY, "VerifiedForSendingStatus": False, "VerificationStatus": "PENDING"}
    check = run(FakeSes(identities={"example.com": identity}))["identity.verified"]
    assert check.status == FAIL
    assert "PENDING" in check.detail


def test_missing_identity_fails() -> None:
    checks = run(FakeSes(identities={}))
    assert checks["identity.verified"].status == FAIL
    assert checks["identity.dkim"].status == FAIL
    assert checks["dns.dkim"].status == FAIL


def test_from_address_outside_the_identity_fails_without_printing_it() -> None:
    check = run(from_address="someone@other.org")["identity.from-address"]
    assert check.status == FAIL
    assert "someone" not in check.detail


def test_address_identity_uses_the_domain_identity_for_dkim() -> None:
    ses = FakeSes(
        identities={
            "no-reply@example.com": {**IDENTITY, "IdentityType": "EMAIL_ADDRESS"},
            "example.com": copy.deepcopy(IDENTITY),
        }
    )
    f = facts(ses, identity="no-reply@example.com")
    assert f.signing_identity == "example.com"
    checks = {c.name: c for c in doctor.run_checks(f, FakeResolver())}
    assert statuses(checks) == dict.fromkeys(ALL_NAMES, PASS)


def test_subdomain_from_without_its_own_identity_signs_with_the_parent() -> None:
    f = facts(from_address="news@mail.example.com")
    assert (f.from_domain, f.signing_identity, f.dkim_domain) == ("mail.example.com", "example.com", "example.com")
    resolver = FakeResolver(txt={**TXT, "mail.example.com": [SPF]})
    checks = {c.name: c for c in doctor.run_checks(f, resolver)}
    assert checks["identity.from-address"].status == PASS
    # no _dmarc.mail.example.com: the organizational domain's record applies
    assert checks["dns.dmarc"].status == PASS and "_dmarc.example.com" in checks["dns.dmarc"].detail
    assert checks["dns.alignment"].status == PASS  # relaxed: same organizational domain


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("SUCCESS", PASS),
        ("PENDING", WARN),
        ("TEMPORARY_FAILURE", WARN),
        ("FAILED", FAIL),
        ("NOT_STARTED", FAIL),
    ],
)
def test_dkim_status(status: str, expected: str) -> None:
    identity = copy.deepcopy(IDENTITY)
    identity["DkimAttributes"]["Status"] = status
    checks = run(FakeSes(identities={"example.com": identity}))
    assert checks["identity.dkim"].status == expected
    if status != "SUCCESS":  # not signing yet: only SPF (custom MAIL FROM) can align
        assert checks["dns.alignment"].status == WARN


def test_dkim_signing_disabled_fails() -> None:
    identity = copy.deepcopy(IDENTITY)
    identity["DkimAttributes"]["SigningEnabled"] = False
    assert run(FakeSes(identities={"example.com": identity}))["identity.dkim"].status == FAIL


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"MailFromDomain": "bounce.example.com", "MailFromDomainStatus": "SUCCESS"}, PASS),
        ({"MailFromDomain": "bounce.example.com", "MailFromDomainStatus": "PENDING"}, WARN),
        (
            {
                "MailFromDomain": "bounce.example.com",
                "MailFromDomainStatus": "FAILED",
                "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
            },
            WARN,
        ),
        (
            {
                "MailFromDomain": "bounce.example.com",
                "MailFromDomainStatus": "FAILED",
                "BehaviorOnMxFailure": "REJECT_MESSAGE",
            },
            FAIL,
        ),
        ({}, WARN),
    ],
)
def test_custom_mail_from_status(attrs: dict[str, str], expected: str) -> None:
    identity = {**IDENTITY, "MailFromAttributes": attrs}
    assert run(FakeSes(identities={"example.com": identity}))["identity.mail-from"].status == expected


# ---------------------------------------------------------------- configuration set
def test_paused_configuration_set_fails() -> None:
    checks = run(FakeSes(config={**CONFIG, "SendingOptions": {"SendingEnabled": False}}))
    assert checks["configset.sending"].status == FAIL


def test_emulator_nested_sending_options_are_read() -> None:
    # moto answers SendingOptions: {"SendingEnabled": <its v1 dict>}
    assert run(FakeSes(config={**CONFIG, "SendingOptions": {"SendingEnabled": {}}}))["configset.sending"].status == PASS
    assert (
        run(FakeSes(config={**CONFIG, "SendingOptions": {"SendingEnabled": {"SendingEnabled": False}}}))[
            "configset.sending"
        ].status
        == FAIL
    )


def test_missing_configuration_set_fails() -> None:
    checks = run(
        FakeSes(config=not_found("GetConfigurationSet"), destinations=not_found("GetConfigurationSetEventDestinations"))
    )
    assert checks["configset.sending"].status == FAIL
    assert checks["configset.events"].status == FAIL


@pytest.mark.parametrize(
    ("destinations", "expected"),
    [
        ([{"Name": "a", "Enabled": True, "MatchingEventTypes": ["BOUNCE", "COMPLAINT"]}], PASS),
        (
            [
                {"Name": "a", "Enabled": True, "MatchingEventTypes": ["BOUNCE"]},
                {"Name": "b", "Enabled": True, "MatchingEventTypes": ["COMPLAINT"]},
            ],
            PASS,
        ),
        ([{"Name": "a", "Enabled": True, "MatchingEventTypes": ["SEND", "BOUNCE"]}], FAIL),
        ([{"Name": "a", "Enabled": False, "MatchingEventTypes": ["BOUNCE", "COMPLAINT"]}], FAIL),
        ([], FAIL),
    ],
)
def test_event_destinations(destinations: list[dict[str, Any]], expected: str) -> None:
    check = run(FakeSes(destinations={"EventDestinations": destinations}))["configset.events"]
    assert check.status == expected
    if expected == FAIL:
        assert "COMPLAINT" in check.detail or "BOUNCE" in check.detail


def test_unreadable_event_destinations_warn() -> None:
    unknown = ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "GetConfigurationSetEventDestinations")
    check = run(FakeSes(destinations=unknown))["configset.events"]
    assert check.status == WARN and "404" in check.detail


def test_unreachable_endpoint_is_recorded_not_raised() -> None:
    gone = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    checks = run(FakeSes(account=gone, config=gone, destinations=gone))
    assert checks["account.sending"].status == WARN
    assert checks["configset.sending"].status == WARN


# ---------------------------------------------------------------- SPF
@pytest.mark.parametrize(
    ("domain_txt", "mail_from_txt", "expected"),
    [
        ([SPF], [SPF], PASS),
        ([], [SPF], FAIL),  # no SPF on the From domain
        (["v=spf1 include:_spf.google.com -all"], [SPF], PASS),  # the MAIL FROM's SPF covers SES
        (["v=spf1 include:_spf.google.com -all"], [], FAIL),
        ([SPF], ["v=spf1 -all"], FAIL),  # SPF is checked on the envelope (MAIL FROM) domain
        ([SPF, "v=spf1 mx -all"], [SPF], FAIL),  # two SPF records: permerror
    ],
)
def test_spf_with_custom_mail_from(domain_txt: list[str], mail_from_txt: list[str], expected: str) -> None:
    resolver = FakeResolver(txt={**TXT, "example.com": domain_txt, "bounce.example.com": mail_from_txt})
    assert run(resolver=resolver)["dns.spf"].status == expected


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("v=spf1 include:amazonses.com ~all", PASS),
        ("v=spf1 +include:AmazonSES.com -all", PASS),
        ("v=spf1 mx -all", FAIL),  # missing the amazonses.com include
        ("v=spf1 include:_spf.example.net ~all", WARN),  # maybe nested: not followed
        ("v=spf1 ~include:amazonses.com -all", FAIL),  # softfail qualifier authorizes nothing
    ],
)
def test_spf_without_custom_mail_from(record: str, expected: str) -> None:
    identity = {**IDENTITY, "MailFromAttributes": {}}
    resolver = FakeResolver(txt={**TXT, "example.com": [record, "some-other=txt"]})
    check = run(FakeSes(identities={"example.com": identity}), resolver)["dns.spf"]
    assert check.status == expected
    if expected == FAIL:
        assert "amazonses.com" in check.hint


# ---------------------------------------------------------------- DKIM DNS
def test_dkim_cname_missing_or_wrong_fails() -> None:
    cnames = dict(CNAME)
    del cnames[f"{TOKENS[0]}._domainkey.example.com"]
    cnames[f"{TOKENS[1]}._domainkey.example.com"] = "elsewhere.example.net"
    check = run(resolver=FakeResolver(cname=cnames))["dns.dkim"]
    assert check.status == FAIL
    assert "2 of 3" in check.detail


def test_dkim_cname_regional_target_passes() -> None:
    cnames = {k: v.replace(".dkim.", ".dkim.af-south-1.") for k, v in CNAME.items()}
    assert run(resolver=FakeResolver(cname=cnames))["dns.dkim"].status == PASS


def test_dkim_cname_with_another_token_fails() -> None:
    cnames = {k: f"{TOKENS[0]}.dkim.amazonses.com" for k in CNAME}
    assert run(resolver=FakeResolver(cname=cnames))["dns.dkim"].status == FAIL


def test_byodkim_selector_txt() -> None:
    identity = copy.deepcopy(IDENTITY)
    identity["DkimAttributes"].update(Tokens=["sel1"], SigningAttributesOrigin="EXTERNAL")
    ses = FakeSes(identities={"example.com": identity})
    good = FakeResolver(txt={**TXT, "sel1._domainkey.example.com": ["v=DKIM1; k=rsa; p=MIIB"]})
    assert run(ses, good)["dns.dkim"].status == PASS
    assert run(ses, FakeResolver())["dns.dkim"].status == FAIL


# ---------------------------------------------------------------- DMARC
@pytest.mark.parametrize(
    ("records", "expected"),
    [
        ([], FAIL),
        (["v=DMARC1; p=none"], PASS),
        (["v=DMARC1; p=reject; adkim=s; aspf=r; pct=100; rua=mailto:reports@example.com"], PASS),
        (["v=DMARC1 p=none"], FAIL),  # missing ';'
        (["v=DMARC1; rua=mailto:reports@example.com"], FAIL),  # no p=
        (["v=DMARC1; p=monitor"], FAIL),
        (["p=none; v=DMARC1"], FAIL),  # v= must come first
        (["v=dmarc1; p=none"], FAIL),
        (["v=DMARC1; p=none; adkim=x"], FAIL),
        (["v=DMARC1; p=none; pct=150"], FAIL),
        (["v=DMARC1; p=none", "v=DMARC1; p=reject"], FAIL),  # two records: both ignored
    ],
)
def test_dmarc(records: list[str], expected: str) -> None:
    check = run(resolver=FakeResolver(txt={**TXT, "_dmarc.example.com": records}))["dns.dmarc"]
    assert check.status == expected, check.detail
    if not records:
        assert "no DMARC record" in check.detail
    elif expected == FAIL and len(records) == 1:
        assert "malformed" in check.detail


def test_dmarc_p_none_passes_as_the_minimum() -> None:
    check = run(resolver=FakeResolver(txt={**TXT, "_dmarc.example.com": ["v=DMARC1; p=none;"]}))["dns.dmarc"]
    assert check.status == PASS
    assert "p=none" in check.detail and "monitoring" in check.detail


def test_dmarc_subdomain_policy_from_the_organizational_domain() -> None:
    txt = {**TXT, "mail.example.com": [SPF], "_dmarc.example.com": ["v=DMARC1; p=reject; sp=none"]}
    f = facts(from_address="news@mail.example.com")
    checks = {c.name: c for c in doctor.run_checks(f, FakeResolver(txt=txt))}
    assert checks["dns.dmarc"].status == PASS
    assert "p=none" in checks["dns.dmarc"].detail


def test_parse_dmarc() -> None:
    d = doctor.parse_dmarc(" v=DMARC1 ; p=Quarantine; sp=reject; adkim=s ")
    assert d == doctor.Dmarc(policy="quarantine", subdomain_policy="reject", adkim="s", aspf="r", pct=100)
    with pytest.raises(doctor.DmarcSyntaxError):
        doctor.parse_dmarc("v=DMARC1; p")


# ---------------------------------------------------------------- alignment
def _with_dmarc(record: str) -> FakeResolver:
    return FakeResolver(txt={**TXT, "_dmarc.example.com": [record]})


def test_strict_spf_alignment_is_impossible_with_a_mail_from_subdomain_but_dkim_aligns() -> None:
    check = run(resolver=_with_dmarc("v=DMARC1; p=reject; aspf=s"))["dns.alignment"]
    assert check.status == PASS
    assert "bounce.example.com not aligned" in check.detail


def test_custom_mail_from_alone_aligns_spf() -> None:
    identity = copy.deepcopy(IDENTITY)
    identity["DkimAttributes"]["Status"] = "FAILED"
    check = run(FakeSes(identities={"example.com": identity}))["dns.alignment"]
    assert check.status == WARN
    assert "SPF bounce.example.com aligned" in check.detail


def test_mail_from_outside_the_from_domain_does_not_align() -> None:
    identity = copy.deepcopy(IDENTITY)
    identity["DkimAttributes"]["Status"] = "FAILED"
    identity["MailFromAttributes"]["MailFromDomain"] = "bounce.example.net"
    check = run(FakeSes(identities={"example.com": identity}))["dns.alignment"]
    assert check.status == FAIL


def test_no_dkim_and_no_mail_from_fails_alignment() -> None:
    identity = copy.deepcopy(IDENTITY)
    identity["DkimAttributes"]["SigningEnabled"] = False
    identity["MailFromAttributes"] = {}
    check = run(FakeSes(identities={"example.com": identity}))["dns.alignment"]
    assert check.status == FAIL
    assert "amazonses.com" in check.detail


def test_strict_dkim_alignment_needs_the_exact_domain() -> None:
    txt = {**TXT, "mail.example.com": [SPF], "_dmarc.mail.example.com": ["v=DMARC1; p=none; adkim=s"]}
    f = facts(from_address="news@mail.example.com")
    check = {c.name: c for c in doctor.run_checks(f, FakeResolver(txt=txt))}["dns.alignment"]
    assert "DKIM d=example.com not aligned" in check.detail
    # relaxed SPF still aligns (bounce.example.com and mail.example.com share example.com), but alone
    assert "SPF bounce.example.com aligned" in check.detail
    assert check.status == WARN


@pytest.mark.parametrize(
    ("a", "b", "mode", "expected"),
    [
        ("example.com", "example.com", "s", True),
        ("mail.example.com", "example.com", "s", False),
        ("mail.example.com", "example.com", "r", True),
        ("news.example.com", "bounce.example.com", "r", True),
        ("example.com", "example.net", "r", False),
        ("shop.example.co.uk", "example.co.uk", "r", True),
        ("a.co.uk", "b.co.uk", "r", False),
    ],
)
def test_aligned(a: str, b: str, mode: str, expected: bool) -> None:
    assert doctor.aligned(a, b, mode) is expected


# ---------------------------------------------------------------- DNS failures
def test_dns_timeout_is_a_warning_with_the_reason() -> None:
    checks = run(resolver=FakeResolver(errors={"*"}))
    for name in ("dns.spf", "dns.dkim", "dns.dmarc"):
        assert checks[name].status == WARN
        assert "no answer within 2 s" in checks[name].detail
    assert doctor.report(list(checks.values()))["ok"] is True


def test_one_name_timing_out_affects_only_its_check() -> None:
    checks = run(resolver=FakeResolver(errors={"_dmarc.example.com"}))
    assert checks["dns.dmarc"].status == WARN
    assert checks["dns.spf"].status == PASS and checks["dns.dkim"].status == PASS


def test_each_name_is_asked_once() -> None:
    resolver = FakeResolver(errors={"*"})
    run(resolver=resolver)
    assert len(resolver.asked) == len(set(resolver.asked))


class _Rdata:
    def __init__(self, strings: tuple[bytes, ...] = (), target: str = "") -> None:
        self.strings = strings
        self.target = type("Name", (), {"to_text": lambda _self: target})()


class _Answer(list[_Rdata]):
    rrset = True


def test_dnspython_resolver_maps_answers_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import dns.exception
    import dns.resolver

    seen: dict[str, Any] = {}

    def resolve(self: dns.resolver.Resolver, name: str, rdtype: str, **kwargs: Any) -> Any:
        seen.update(timeout=self.timeout, lifetime=self.lifetime, search=kwargs.get("search"))
        if name == "nx.example.com":
            raise dns.resolver.NXDOMAIN
        if name == "slow.example.com":
            raise dns.resolver.LifetimeTimeout(timeout=2.0, errors=[])  # type: ignore[no-untyped-call]
        if name == "broken.example.com":
            raise dns.resolver.NoNameservers
        if rdtype == "TXT":
            return _Answer([_Rdata((b"v=spf1 include:", b"amazonses.com ~all"))])
        return _Answer([_Rdata(target="Token.DKIM.amazonses.com.")])

    monkeypatch.setattr(dns.resolver.Resolver, "resolve", resolve)
    r = doctor.DnsPythonResolver()
    assert r.txt("example.com") == ["v=spf1 include:amazonses.com ~all"]
    assert seen == {"timeout": 2.0, "lifetime": 2.0, "search": False}
    assert r.cname("t._domainkey.example.com") == "token.dkim.amazonses.com"
    assert r.txt("nx.example.com") == [] and r.cname("nx.example.com") is None
    with pytest.raises(DnsError, match="2 s"):
        r.txt("slow.example.com")
    with pytest.raises(DnsError, match="nameserver"):
        r.cname("broken.example.com")


def test_dnspython_resolver_without_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    import dns.resolver

    def no_config(self: dns.resolver.Resolver, *args: Any, **kwargs: Any) -> None:
        raise dns.resolver.NoResolverConfiguration

    monkeypatch.setattr(dns.resolver.Resolver, "__init__", no_config)
    with pytest.raises(DnsError, match="no DNS resolver"):
        doctor.DnsPythonResolver().txt("example.com")


# ---------------------------------------------------------------- the local stack
LOCAL_IDENTITY: dict[str, Any] = {  # what the emulator (moto) answers for a CloudFormation-verified domain
    "IdentityType": "DOMAIN",
    "FeedbackForwardingStatus": False,
    "VerifiedForSendingStatus": False,
    "DkimAttributes": {
        "SigningEnabled": False,
        "Status": "NOT_STARTED",
        "NextSigningKeyLength": "RSA_1024_BIT",
        "SigningAttributesOrigin": "AWS_SES",
    },
    "Policies": {},
    "Tags": None,
    "ConfigurationSetName": None,
    "VerificationStatus": "SUCCESS",
}


def local_ses() -> FakeSes:
    unknown = ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "GetConfigurationSetEventDestinations")
    return FakeSes(
        identities={"example.com": copy.deepcopy(LOCAL_IDENTITY)},
        config={**CONFIG, "SendingOptions": {"SendingEnabled": {}}},
        destinations=unknown,
    )


def test_local_stack_without_dns_warns_but_nothing_fails() -> None:
    checks = run(local_ses(), FakeResolver(errors={"*"}), local=True)
    assert {n for n, c in checks.items() if c.status == FAIL} == set()
    assert checks["identity.verified"].status == PASS
    assert checks["identity.dkim"].status == WARN and "local stack" in checks["identity.dkim"].detail
    assert checks["dns.spf"].status == WARN
    assert doctor.report(list(checks.values()))["ok"] is True


def test_the_same_answers_from_aws_fail() -> None:
    checks = run(local_ses(), FakeResolver(errors={"*"}), local=False)
    assert checks["identity.verified"].status == FAIL
    assert checks["identity.dkim"].status == FAIL


def test_local_stack_still_fails_what_the_emulator_enforces() -> None:
    ses = local_ses()
    ses.account = {**ACCOUNT, "SendingEnabled": False}
    assert run(ses, FakeResolver(errors={"*"}), local=True)["account.sending"].status == FAIL


# ---------------------------------------------------------------- the command
class FakeClients:
    def __init__(self, ses: FakeSes, region: str = "eu-west-1") -> None:
        self.ses, self.region = ses, region

    def client(self, service: str) -> Any:
        assert service == "sesv2"
        return self.ses


OUTPUTS = {
    "SenderIdentity": "example.com",
    "DefaultFromAddress": "no-reply@example.com",
    "ConfigurationSetName": "sesflow-cs",
}


def fake_target(ses: FakeSes | None = None, outputs: dict[str, str] | None = None, local: bool = False) -> Target:
    return Target(
        FakeClients(ses or FakeSes()),  # type: ignore[arg-type]
        "sesflow-dev",
        dict(OUTPUTS if outputs is None else outputs),
        {},
        local,
    )


def parse(*argv: str) -> argparse.Namespace:
    return app.build_parser().parse_args(["doctor", *argv])


def test_registered_as_a_sub_command() -> None:
    assert cli_doctor in app.COMMANDS
    args = parse("--json", "--stack", "sesflow-dev", "--region", "eu-west-1")
    assert args.func is cli_doctor.cmd_doctor
    assert (args.json, args.stack, args.region) == (True, "sesflow-dev", "eu-west-1")


def test_cmd_doctor_json_shape_and_exit_0(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(inputs, "resolve_target", lambda args: fake_target())
    assert cli_doctor.cmd_doctor(parse("--json"), resolver=FakeResolver()) == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"checks", "ok"} and out["ok"] is True
    assert [c["name"] for c in out["checks"]] == ALL_NAMES
    for c in out["checks"]:
        assert set(c) == {"name", "status", "detail", "hint"}
        assert all(isinstance(v, str) for v in c.values())


def test_cmd_doctor_exit_1_and_text(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ses = FakeSes(account={**ACCOUNT, "SendingEnabled": False, "ProductionAccessEnabled": False})
    monkeypatch.setattr(inputs, "resolve_target", lambda args: fake_target(ses))
    assert cli_doctor.cmd_doctor(parse(), resolver=FakeResolver()) == EXIT_FAILED
    out = capsys.readouterr().out
    assert "FAIL  account.sending" in out and "WARN  account.production" in out
    assert "fix: " in out
    assert out.rstrip().endswith("something stops or will stop mail going out")
    assert "no-reply@" not in out  # no addresses in the output


def test_cmd_doctor_json_ok_false(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(inputs, "resolve_target", lambda args: fake_target(FakeSes(identities={})))
    assert cli_doctor.cmd_doctor(parse("--json"), resolver=FakeResolver()) == EXIT_FAILED
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_a_stack_without_sesflow_outputs_is_a_target_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "resolve_target", lambda args: fake_target(outputs={"Stage": "dev"}))
    with pytest.raises(TargetError, match="SenderIdentity"):
        cli_doctor.cmd_doctor(parse(), resolver=FakeResolver())


@pytest.mark.parametrize(
    ("make_target", "expected"),
    [
        (lambda: fake_target(), EXIT_OK),
        (lambda: fake_target(FakeSes(config=not_found("GetConfigurationSet"))), EXIT_FAILED),
        (lambda: fake_target(outputs={}), EXIT_USAGE),
    ],
)
def test_exit_codes_through_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], make_target: Any, expected: int
) -> None:
    monkeypatch.setattr(inputs, "resolve_target", lambda args: make_target())
    monkeypatch.setattr(doctor, "default_resolver", FakeResolver)
    assert cli.main(["doctor", "--json"]) == expected


def test_no_stack_is_exit_2_through_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def no_stack(args: argparse.Namespace) -> Target:
        raise TargetError("the local stack is not running; start it with `sesflow local up`")

    monkeypatch.setattr(inputs, "resolve_target", no_stack)
    assert cli.main(["doctor"]) == EXIT_USAGE
    assert "not running" in capsys.readouterr().err


def test_unknown_option_is_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["doctor", "--bogus"]) == EXIT_USAGE
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_local_event_destinations_name_the_emulator_gap() -> None:
    check = run(local_ses(), FakeResolver(errors={"*"}), local=True)["configset.events"]
    assert check.status == WARN
    assert check.detail == "not checked: the local emulator does not serve GetConfigurationSetEventDestinations (404)"


def test_error_pages_become_one_short_line() -> None:
    page = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>" + "x" * 300
    text = doctor.one_line(page, 60)
    assert "\n" not in text and "<" not in text and len(text) == 60
    assert text.startswith("404 Not Found Not Found")


def test_emulator_sending_options_are_read_from_the_raw_body() -> None:
    import boto3

    ses = boto3.client("sesv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    doctor._read_emulator_sending_options(ses)
    doctor._read_emulator_sending_options(ses)  # registering twice is harmless
    for body, expected in (
        (b'{"SendingOptions": {"SendingEnabled": {"SendingEnabled": true}}}', {"SendingEnabled": True}),
        (b'{"SendingOptions": {"SendingEnabled": {"SendingEnabled": false}}}', {"SendingEnabled": False}),
        (b'{"SendingOptions": {"SendingEnabled": {}}}', {"SendingEnabled": True}),
    ):
        custom: dict[str, Any] = {}
        ses.meta.events.emit(
            "before-parse.sesv2.GetConfigurationSet",
            operation_model=None,
            response_dict={"body": body},
            customized_response_dict=custom,
        )
        assert custom == {"SendingOptions": expected}
    custom = {}
    ses.meta.events.emit(
        "before-parse.sesv2.GetConfigurationSet",
        operation_model=None,
        response_dict={"body": b'{"SendingOptions": {"SendingEnabled": false}}'},
        customized_response_dict=custom,
    )
    assert custom == {}  # AWS's own shape is left to botocore
