"""The planner's fast path for plain ASCII addresses gives exactly email-validator's verdict
and normalized form, or defers to it (never accepts what it would refuse)."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError, validate_email
from sesflow_core.errors import InvalidEmailRequest
from sesflow_core.request import parse_address, plain_ascii_address

CORPUS = [
    # valid
    "email@example.com",
    "firstname.lastname@example.com",
    "email@subdomain.example.com",
    "firstname+lastname@example.com",
    "1234567890@example.com",
    "email@example-one.com",
    "_______@example.com",
    "email@example.name",
    "email@example.museum",
    "email@example.co.jp",
    "firstname-lastname@example.com",
    "Ada.Lovelace@Example.ORG",
    "o'reilly@example.ie",
    "x@a-b.c-d.example",
    "much.more.unusual{}|~^`@example.org",
    "success+label@simulator.amazonses.com",
    "a@b.co",
    # valid but not plain (IDNA, Unicode): the validator decides
    "user@bücher.de",
    "user@xn--bcher-kva.de",
    "用户@例子.广告",
    "josé@example.com",
    # invalid
    "plainaddress",
    "#@%^%#$@#$@#.com",
    "@example.com",
    "Joe Smith <email@example.com>",
    "email.example.com",
    "email@example@example.com",
    ".email@example.com",
    "email.@example.com",
    "email..email@example.com",
    "email@example.com (Joe Smith)",
    "email@example",
    "email@-example.com",
    "email@example-.com",
    "email@111.222.333.44444",
    "email@123.123.123.123",
    "email@[123.123.123.123]",
    '"email"@example.com',
    "email@example..com",
    "email@ab--cd.com",
    "a@localhost",
    "a@printer.local",
    "a@x.test",
    "a@x.invalid",
    "a@onion",
    "a@x.onion",
    "a@1.2.3.in-addr.arpa",
    "a@example.c0m",
    "a@example.com.",
    "a b@example.com",
    "x" * 64 + "@example.com",
    "x" * 65 + "@example.com",
    "a@" + ("b" * 63 + ".") * 3 + "com",
    "a@" + "b" * 64 + ".com",
    "a@" + ("b" * 60 + ".") * 4 + "com",
]

ALPHABET = ["a", "B", "z", "0", "9", ".", "-", "_", "+", "@", "xn--", "--", "é", " ", '"', "!", "(", "[", "]", "\\"]
TAILS = ["com", "org", "test", "local", "arpa", "co.uk", "c0m", "x", "ONION", "example"]


def full(value: str) -> tuple[str, str] | None:
    try:
        info = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    return (info.ascii_email or info.normalized, info.normalized)


def fuzz(seed: int, n: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        local = "".join(rnd.choice(ALPHABET[:12]) for _ in range(rnd.choice([1, 2, 5, 20, 63, 64, 65])))
        labels = [
            "".join(rnd.choice(["a", "b", "0", "-", "Z", "xn--", "--"]) for _ in range(rnd.choice([1, 2, 4, 30, 62])))
            for _ in range(rnd.randint(0, 3))
        ]
        domain = ".".join([*labels, rnd.choice(TAILS)])
        sep = rnd.choice(["@", "@", "@", "@@", ""])
        noise = rnd.choice(["", "", "", rnd.choice(ALPHABET)])
        out.append(noise + local + sep + domain if rnd.random() < 0.5 else local + sep + domain + noise)
    return out


def plausible(seed: int, n: int) -> list[str]:
    """Mostly valid addresses, near the edges (lengths, hyphens, dots, TLDs, special names)."""
    rnd = random.Random(seed)
    atext = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
    out = []
    for _ in range(n):
        words = ["".join(rnd.choice(atext) for _ in range(rnd.randint(1, 22))) for _ in range(rnd.randint(1, 3))]
        local = ".".join(words)
        labels = []
        for _ in range(rnd.randint(1, 4)):
            size = rnd.choice([1, 2, 3, 8, 61, 62, 63, 64])
            body = "".join(rnd.choice("abcz09-") for _ in range(size))
            labels.append(body)
        tld = rnd.choice(["com", "org", "io", "museum", "test", "local", "arpa", "onion", "x1", "co", "ZZ", "a"])
        out.append(f"{local}@{'.'.join([*labels, tld])}")
    return out


def test_the_fast_path_agrees_with_email_validator() -> None:
    disagree = []
    for value in CORPUS + fuzz(7, 20000) + plausible(3, 10000):
        fast = plain_ascii_address(value)
        if fast is not None and full(value) != (fast.ascii, fast.display):
            disagree.append(value)
    assert not disagree


def test_the_fast_path_takes_most_plain_addresses() -> None:
    valid = [
        v
        for v in CORPUS + plausible(11, 3000)
        if full(v) and v.isascii() and "xn--" not in v.lower() and len(v.rsplit(".", 1)[1]) > 1  # a 1-letter TLD: slow
    ]
    taken = [v for v in valid if plain_ascii_address(v) is not None]
    assert len(valid) > 100 and len(taken) >= 0.9 * len(valid)


@pytest.mark.parametrize("value", [v for v in CORPUS if full(v) is None])
def test_invalid_addresses_keep_the_validators_reason(value: str) -> None:
    with pytest.raises(InvalidEmailRequest, match=r"valid address|non-empty|CR, LF"):
        parse_address(value, "email")
