"""Locale-aware formatting filters for templates (Babel), and the locale fallback chain.

Filters (each takes the value first, as Jinja2 filters do; the locale is the one the email
is rendered in, never a template variable a recipient's data could set):

- ``{{ when | format_date }}`` / ``format_date("long")``: an ISO 8601 date or date-time string
  (or a date); ``format_datetime`` also takes ``tz="Europe/Berlin"``;
- ``{{ n | format_number }}``, ``{{ 0.25 | format_percent }}``;
- ``{{ amount | format_currency("EUR") }}``.

A value that cannot be formatted (not a date, not a number, an unknown currency) is a
:class:`TemplateRenderError` naming the filter: the email is not sent with a broken line.
Babel is imported on the first use of a filter (about 30 ms), not at cold start.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from .errors import TemplateRenderError

#: the template context key holding the rendering locale (set by the renderer after the
#: request's data, so data cannot change it)
LOCALE_VAR: Final = "__sesflow_locale__"
DEFAULT_LOCALE: Final = "en"


def fallback_chain(locale: str | None) -> list[str | None]:
    """Where a template variant is looked for: ``pt-BR`` -> ``pt`` -> the default (None)."""
    chain: list[str | None] = []
    if locale:
        parts = locale.split("-")
        for n in range(len(parts), 0, -1):
            chain.append("-".join(parts[:n]))
    chain.append(None)
    return chain


def _babel_locale(ctx: Any) -> Any:
    from babel import Locale, UnknownLocaleError

    tag = str(ctx.get(LOCALE_VAR) or DEFAULT_LOCALE)
    for candidate in fallback_chain(tag)[:-1]:
        try:
            return Locale.parse(str(candidate), sep="-")
        except (UnknownLocaleError, ValueError):
            continue
    return Locale.parse(DEFAULT_LOCALE)


def _instant(value: Any, name: str) -> datetime | date:
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed.date() if len(value) == 10 else parsed
    raise TemplateRenderError(f"{name}: {str(value)[:40]!r} is not an ISO 8601 date or date-time")


def _number(value: Any, name: str) -> Decimal:
    if isinstance(value, bool):
        raise TemplateRenderError(f"{name}: {value!r} is not a number")
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise TemplateRenderError(f"{name}: {str(value)[:40]!r} is not a number") from None


def format_date(ctx: Any, value: Any, format: str = "medium") -> str:
    from babel.dates import format_date as babel_date

    when = _instant(value, "format_date")
    return str(
        babel_date(when.date() if isinstance(when, datetime) else when, format=format, locale=_babel_locale(ctx))
    )


def format_datetime(ctx: Any, value: Any, format: str = "medium", tz: str | None = None) -> str:
    from babel.dates import format_datetime as babel_datetime
    from babel.dates import get_timezone

    when = _instant(value, "format_datetime")
    if not isinstance(when, datetime):
        when = datetime(when.year, when.month, when.day)
    try:
        zone = get_timezone(tz) if tz else None
    except LookupError:
        raise TemplateRenderError(f"format_datetime: unknown time zone {tz!r}") from None
    return str(babel_datetime(when, format=format, tzinfo=zone, locale=_babel_locale(ctx)))


def format_number(ctx: Any, value: Any) -> str:
    from babel.numbers import format_decimal

    return str(format_decimal(_number(value, "format_number"), locale=_babel_locale(ctx)))


def format_percent(ctx: Any, value: Any) -> str:
    from babel.numbers import format_percent as babel_percent

    return str(babel_percent(_number(value, "format_percent"), locale=_babel_locale(ctx)))


def format_currency(ctx: Any, value: Any, currency: str) -> str:
    from babel.numbers import UnknownCurrencyError, is_currency
    from babel.numbers import format_currency as babel_currency

    if not isinstance(currency, str) or not is_currency(currency.upper()):
        raise TemplateRenderError(f"format_currency: {str(currency)[:10]!r} is not an ISO 4217 currency code")
    try:
        return str(babel_currency(_number(value, "format_currency"), currency.upper(), locale=_babel_locale(ctx)))
    except UnknownCurrencyError:  # pragma: no cover - is_currency said yes
        raise TemplateRenderError(f"format_currency: unknown currency {currency!r}") from None


def filters() -> dict[str, Any]:
    """The filters, each taking the Jinja2 context (for the locale)."""
    from jinja2 import pass_context

    return {
        f.__name__: pass_context(f)
        for f in (format_date, format_datetime, format_number, format_percent, format_currency)
    }
