"""Localised templates: the locale on the request (and a campaign column), the variant with
its fallback chain, Babel's formatting filters, the locale recorded on the tracking item."""

from __future__ import annotations

import email
from typing import Any

import pytest
from sesflow_aws import templates
from sesflow_core import request as req
from sesflow_core.errors import InvalidEmailRequest, TemplateRenderError
from sesflow_core.localize import fallback_chain
from sesflow_core.render import CompiledTemplate, TemplateSource
from sesflow_handlers import send

from .conftest import TEMPLATES_BUCKET, Aws, LambdaContext, normalised

RECEIPT = {
    "shop": "Acme Store",
    "order_id": "A-1042",
    "currency": "EUR",
    "total": 1259.9,
    "order_date": "2026-11-24",
    "items": [{"name": "Notebook", "qty": 1200, "price": 12.5}],
}


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("de", "de"),
        ("pt_br", "pt-BR"),
        ("PT-br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("", None),
    ],
)
def test_a_locale_is_a_language_tag_normalised(given: str, normal: str | None) -> None:
    assert req.parse_locale(given) == normal


@pytest.mark.parametrize("bad", ["english", "d", "de-", "de-DE-x-private", "../de", "de DE", 42])
def test_a_malformed_locale_is_rejected_with_the_reason(bad: Any) -> None:
    with pytest.raises(InvalidEmailRequest, match="language tag"):
        req.validate({"template": "welcome", "to": "a@example.org", "locale": bad, "data": {}}, identity="example.com")


def test_the_fallback_chain_ends_in_the_default() -> None:
    assert fallback_chain("zh-Hant-TW") == ["zh-Hant-TW", "zh-Hant", "zh", None]
    assert fallback_chain(None) == [None]


def test_the_variant_falls_back_from_region_to_language_to_default(aws: Aws) -> None:
    s3 = aws.client("s3")
    de = templates.load_template(s3, TEMPLATES_BUCKET, "welcome", 300, "de-AT")
    assert de.source.locale == "de"
    assert de.render({"name": "Ada", "product": "Acme"}).subject == "Willkommen bei Acme, Ada!"
    assert templates.load_template(s3, TEMPLATES_BUCKET, "welcome", 300, "pt-BR").source.locale == "pt"
    fallback = templates.load_template(s3, TEMPLATES_BUCKET, "welcome", 300, "ja")
    assert fallback.source.locale is None and fallback.render({"name": "A", "product": "B"}).locale is None


def test_a_locale_variant_added_later_is_used_after_the_ttl(aws: Aws) -> None:
    s3 = aws.client("s3")
    assert templates.load_template(s3, TEMPLATES_BUCKET, "welcome", 0, "fr").source.locale is None
    aws.put_object(TEMPLATES_BUCKET, "welcome/fr/metadata.json", '{"subject": "Bienvenue, {{ name }}"}')
    aws.put_object(TEMPLATES_BUCKET, "welcome/fr/template.html", "<p>Bonjour {{ name }}</p>")
    fr = templates.load_template(s3, TEMPLATES_BUCKET, "welcome", 0, "fr")
    assert fr.source.locale == "fr" and fr.render({"name": "Ada"}).subject == "Bienvenue, Ada"


def test_format_filters_follow_the_rendered_locale(aws: Aws) -> None:
    de = templates.load_template(aws.client("s3"), TEMPLATES_BUCKET, "order-receipt", 300, "de-DE")
    html = de.render(RECEIPT).html
    assert "1.259,90\xa0€" in html and "12,50\xa0€" in html  # German grouping, decimal comma, € after
    assert "1.200" in html and "24. November 2026" in html


def source(html: str, **meta: Any) -> CompiledTemplate:
    return CompiledTemplate(TemplateSource("t", html, None, {"subject": "S", **meta}, "v1", meta.pop("locale", None)))


def test_filters_format_in_the_default_locale_and_refuse_what_they_cannot_format() -> None:
    assert source("{{ 1234.5 | format_number }}").render({}).html == "1,234.5"
    assert source("{{ 0.25 | format_percent }}").render({}).html == "25%"
    assert source("{{ x | format_currency('USD') }}", locale="en").render({"x": 5}).html == "$5.00"
    with pytest.raises(TemplateRenderError, match="template t: format_currency: 'XYZ' is not an ISO 4217"):
        source("{{ 5 | format_currency('XYZ') }}").render({})
    with pytest.raises(TemplateRenderError, match="format_date: 'soon' is not an ISO 8601"):
        source("{{ 'soon' | format_date }}").render({})
    with pytest.raises(TemplateRenderError, match="format_number: 'many' is not a number"):
        source("{{ 'many' | format_number }}").render({})


def test_data_cannot_choose_the_formatting_locale() -> None:
    t = source("{{ 1234.5 | format_number }}")
    assert t.render({"__sesflow_locale__": "de"}).html == "1,234.5"


def test_the_send_step_renders_the_locale_and_records_it(aws: Aws, ctx: LambdaContext) -> None:
    result: dict[str, Any] = send.handler(
        {"request": normalised(emailId="l-1", locale="de-CH"), "executionId": "x"}, ctx
    )
    assert result["duplicate"] is False
    [sent] = aws.sent()
    assert email.message_from_string(sent.raw_data)["Subject"] == "Willkommen bei Acme, Ada!"
    assert aws.item("l-1")["locale"] == "de"
    send.handler({"request": normalised(emailId="l-2", locale="ja"), "executionId": "y"}, ctx)
    assert "locale" not in aws.item("l-2")  # the default variant, which names no locale
