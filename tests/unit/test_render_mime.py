"""Rendering (sandbox, strict variables, escaping) and the MIME message."""

from __future__ import annotations

import json
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sesflow_core import mime
from sesflow_core.errors import TemplateRenderError
from sesflow_core.render import TemplateSource, html_to_text, parse_metadata, render
from sesflow_core.request import validate

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SAMPLE_DATA = {
    "welcome": {"name": "Ada", "product": "Acme", "login_url": "https://x.example/login"},
    "password-reset": {"product": "Acme", "reset_url": "https://x.example/r?t=1", "expires_minutes": 30},
    "order-receipt": {
        "shop": "S",
        "order_id": "1",
        "currency": "EUR",
        "total": 3.5,
        "items": [{"name": "Pen", "qty": 1, "price": 3.5}],
    },
    "newsletter": {
        "title": "T",
        "intro": "I",
        "articles": [{"title": "a", "summary": "s", "url": "https://x.example"}],
    },
}


def source(name: str) -> TemplateSource:
    d = TEMPLATES / name
    text = d / "template.txt"
    return TemplateSource(
        name,
        (d / "template.html").read_text(),
        text.read_text() if text.exists() else None,
        parse_metadata(name, (d / "metadata.json").read_text()),
        "v1",
    )


def inline(html: str, subject: str = "Hi {{ name }}", text: str | None = None, **meta: object) -> TemplateSource:
    return TemplateSource("t", html, text, {"subject": subject, **meta})


@pytest.mark.parametrize("name", sorted(SAMPLE_DATA))
def test_starter_templates_render(name: str) -> None:
    meta = json.loads((TEMPLATES / name / "metadata.json").read_text())
    out = render(source(name), SAMPLE_DATA[name], meta["topic"])
    assert out.subject and "<" in out.html and out.text.strip()
    assert out.template_version == "v1"


def test_every_starter_template_declares_required_variables_that_it_uses() -> None:
    for name, data in SAMPLE_DATA.items():
        required = parse_metadata(name, (TEMPLATES / name / "metadata.json").read_text())["requiredVariables"]
        for var in required:
            partial = {k: v for k, v in data.items() if k != var}
            with pytest.raises(TemplateRenderError, match=f"missing variable\\(s\\): {var}"):
                render(source(name), partial)


def test_missing_variable_is_a_render_error() -> None:
    with pytest.raises(TemplateRenderError, match="'name' is undefined"):
        render(inline("<p>{{ name }}</p>", subject="Hello"), {})


def test_html_injection_is_escaped_in_html_but_not_in_text_or_subject() -> None:
    evil = '<script>alert(1)</script>&"'
    out = render(inline("<p>{{ name }}</p>", text="{{ name }}"), {"name": evil})
    assert "<script>" not in out.html and "&lt;script&gt;" in out.html
    assert out.text == evil
    assert out.subject == f"Hi {evil}"


def test_template_injection_in_data_is_printed_not_evaluated() -> None:
    payload = "{{ 7*7 }}{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}"
    out = render(inline("<p>{{ name }}</p>", text="{{ name }}"), {"name": payload})
    assert out.text == payload
    assert "49" not in out.html


def test_sandbox_blocks_unsafe_attribute_access_in_templates() -> None:
    with pytest.raises(TemplateRenderError, match=r"SecurityError|unsafe"):
        render(inline("{{ ''.__class__.__mro__[1].__subclasses__() }}", subject="x"), {})


def test_subject_with_newline_is_refused() -> None:
    with pytest.raises(TemplateRenderError, match=r"subject contains CR, LF"):
        render(inline("<p>x</p>", subject="Hi {{ name }}"), {"name": "a\r\nBcc: victim@example.com"})


def test_text_part_is_generated_from_html_when_absent() -> None:
    out = render(source("order-receipt"), SAMPLE_DATA["order-receipt"], "transactional")
    assert "Pen" in out.text and "<" not in out.text
    assert html_to_text('<p>Go <a href="https://x.example">here</a></p>').strip() == "Go here (https://x.example)"


def test_template_topic_must_match_request_topic() -> None:
    with pytest.raises(TemplateRenderError, match="is for topic 'newsletter'"):
        render(source("newsletter"), SAMPLE_DATA["newsletter"], "transactional")


def test_huge_rendered_output_is_refused() -> None:
    with pytest.raises(TemplateRenderError, match="rendered message is"):
        render(
            inline("{% for i in range(n) %}{{ chunk }}{% endfor %}", subject="s"), {"n": 1100, "chunk": "x" * 10_000}
        )


def test_a_300_kib_newsletter_renders() -> None:
    """Rendered in the send step, the body never meets the 256 KiB state limit."""
    rendered = render(
        inline("{% for i in range(n) %}{{ chunk }}{% endfor %}", subject="s"), {"n": 300, "chunk": "y" * 1024}
    )
    assert len(rendered.html) >= 300 * 1024


def test_bad_metadata() -> None:
    with pytest.raises(TemplateRenderError, match="not valid JSON"):
        parse_metadata("t", "{")
    with pytest.raises(TemplateRenderError, match="needs a string 'subject'"):
        parse_metadata("t", "{}")


def _parse(raw: bytes):  # type: ignore[no-untyped-def]
    return BytesParser(policy=policy.default).parsebytes(raw)


def test_mime_is_multipart_alternative_text_then_html() -> None:
    req = validate(
        {"template": "welcome", "to": "a@example.org", "toName": 'Ada "Countess" Lovelace'}, identity="example.com"
    )
    out = render(source("welcome"), SAMPLE_DATA["welcome"], "transactional")
    raw = mime.build_message(req, out, sender=("no-reply@example.com", "Acme, Inc."))
    msg = _parse(raw)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["To"].addresses[0].display_name == 'Ada "Countess" Lovelace'
    assert msg["From"].addresses[0].display_name == "Acme, Inc."
    assert "List-Unsubscribe" not in msg  # transactional


def test_non_ascii_display_name_is_encoded() -> None:
    req = validate({"template": "welcome", "to": "a@example.org", "toName": "Zoë Ünal"}, identity="example.com")
    raw = mime.build_message(req, render(inline("<p>x</p>", subject="s"), {}), sender=("n@example.com", None))
    assert b"=?utf-8?" in raw.split(b"\r\n\r\n")[0]
    assert _parse(raw)["To"].addresses[0].display_name == "Zoë Ünal"


def test_subscription_topics_get_one_click_unsubscribe_headers() -> None:
    req = validate({"template": "newsletter", "to": "a@example.org", "topic": "newsletter"}, identity="example.com")
    out = render(source("newsletter"), SAMPLE_DATA["newsletter"], "newsletter")
    raw = mime.build_message(
        req,
        out,
        sender=("n@example.com", None),
        unsubscribe_url="https://u.example.com/u?token=abc",
        unsubscribe_mailto="u@example.com",
    )
    msg = _parse(raw)
    assert msg["List-Unsubscribe"] == "<https://u.example.com/u?token=abc>, <mailto:u@example.com?subject=unsubscribe>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_ses_tags_carry_the_ids_feedback_needs() -> None:
    req = validate(
        {"template": "welcome", "to": "a@example.org", "campaignId": "c1", "stage": 2, "tags": {"app": "x"}},
        identity="example.com",
    )
    tags = {t["Name"]: t["Value"] for t in mime.ses_tags(req)}
    assert tags == {
        "emailId": req.emailId,
        "template": "welcome",
        "topic": "transactional",
        "campaignId": "c1",
        "stage": "2",
        "app": "x",
    }
