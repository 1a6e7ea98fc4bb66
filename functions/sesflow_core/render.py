"""Render an email template: Jinja2 sandbox, strict undefined, autoescape for HTML.

A template is three files under ``<name>/`` in the templates bucket:
``template.html``, ``template.txt`` (optional: generated from the HTML when absent) and
``metadata.json``::

    {"subject": "Welcome, {{ name }}", "from": "Acme <hello@example.com>",
     "requiredVariables": ["name"], "topic": "transactional", "description": "..."}

Variables are data: a value such as ``"{{ 7*7 }}"`` is printed as-is, never evaluated.
The subject is rendered without HTML escaping and must not contain CR/LF.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from html.parser import HTMLParser
from typing import Any

from . import localize
from .errors import TemplateRenderError

#: html + text + subject. The rendered message never passes through Step Functions state or a
#: Lambda payload (the send step renders it), so the bound is SES's: 40 MB per message after
#: MIME encoding (base64/quoted-printable grow it by up to a third), with room for headers.
MAX_RENDERED_BYTES = 10 * 1024 * 1024
MAX_SUBJECT_CHARS = 998 - len("Subject: ")


@dataclass(frozen=True)
class TemplateSource:
    name: str
    html: str
    text: str | None
    metadata: dict[str, Any]
    version: str = ""
    locale: str | None = None  # the variant's folder (templates/<name>/<locale>/); None: the default


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str
    sender: str | None = None
    template_version: str = ""
    topic: str | None = None
    locale: str | None = None  # the locale it was rendered in (the variant's, else metadata "locale")
    tracking: bool = True  # metadata "tracking": false keeps SES from tracking opens and clicks

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "from": self.sender,
            "templateVersion": self.template_version,
            "topic": self.topic,
            "locale": self.locale,
        }


def parse_metadata(name: str, raw: str | bytes) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TemplateRenderError(f"template {name}: metadata.json is not valid JSON: {exc.msg}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("subject"), str):
        raise TemplateRenderError(f"template {name}: metadata.json needs a string 'subject'")
    required = meta.get("requiredVariables", [])
    if not isinstance(required, list) or not all(isinstance(v, str) for v in required):
        raise TemplateRenderError(f"template {name}: requiredVariables must be a list of names")
    return meta


@cache
def _env(autoescape: bool) -> Any:
    """The sandboxed Jinja2 environment (jinja2 is imported on first use: handlers that only
    need :class:`Rendered` do not pay for it at cold start)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(localize.filters())
    return env


def _template_error() -> type[Exception]:
    from jinja2 import TemplateError

    return TemplateError


class _TextExtractor(HTMLParser):
    _BLOCK = frozenset({"p", "div", "br", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "li", "table", "hr"})
    _SKIP = frozenset({"style", "script", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0
        self._href: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")
        if tag == "a":
            self._href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")
        if tag == "a" and self._href:
            href = self._href.pop()
            if href and not href.startswith("#"):
                self.parts.append(f" ({href})")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable plain-text part from HTML (used when template.txt is absent)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


@dataclass
class CompiledTemplate:
    """Templates compiled once (cached by the handler per S3 object version)."""

    source: TemplateSource
    subject: Any = field(init=False)
    html: Any = field(init=False)
    text: Any = field(init=False)

    def __post_init__(self) -> None:
        name = self.source.name
        text_env, html_env = _env(False), _env(True)
        try:
            self.subject = text_env.from_string(self.source.metadata["subject"])
            self.html = html_env.from_string(self.source.html)
            self.text = text_env.from_string(self.source.text) if self.source.text is not None else None
        except _template_error() as exc:
            raise TemplateRenderError(f"template {name}: does not compile: {exc}") from None

    def render(self, data: dict[str, Any], topic: str | None = None) -> Rendered:
        """Render with ``data``. A template that declares a ``topic`` only renders for it,
        so subscription mail can never go out without its unsubscribe headers."""
        name = self.source.name
        meta = self.source.metadata
        declared = meta.get("topic")
        if topic is not None and declared and declared != topic:
            raise TemplateRenderError(f"template {name} is for topic {declared!r}; the request has topic {topic!r}")
        missing = [v for v in meta.get("requiredVariables", []) if v not in data]
        if missing:
            raise TemplateRenderError(f"template {name}: missing variable(s): {', '.join(missing)}")
        locale = self.source.locale or (meta.get("locale") if isinstance(meta.get("locale"), str) else None)
        context = {**data, localize.LOCALE_VAR: locale or localize.DEFAULT_LOCALE}
        try:
            subject = self.subject.render(context).strip()
            html = self.html.render(context)
            text = self.text.render(context) if self.text is not None else html_to_text(html)
        except _template_error() as exc:
            # StrictUndefined / SecurityError: the message names the variable or the operation
            raise TemplateRenderError(f"template {name}: {type(exc).__name__}: {exc}") from None
        except TemplateRenderError as exc:  # a format_* filter's value
            raise TemplateRenderError(f"template {name}: {exc}") from None
        if re.search(r"[\r\n\x00]", subject):
            raise TemplateRenderError(f"template {name}: the rendered subject contains CR, LF or NUL")
        if not subject:
            raise TemplateRenderError(f"template {name}: the rendered subject is empty")
        if len(subject) > MAX_SUBJECT_CHARS:
            raise TemplateRenderError(f"template {name}: the rendered subject is too long")
        size = len(subject.encode()) + len(html.encode()) + len(text.encode())
        if size > MAX_RENDERED_BYTES:
            raise TemplateRenderError(
                f"template {name}: the rendered message is {size} bytes; the limit is {MAX_RENDERED_BYTES}"
            )
        sender = meta.get("from")
        return Rendered(
            subject,
            html,
            text,
            sender if isinstance(sender, str) else None,
            self.source.version,
            meta.get("topic"),
            locale,
            meta.get("tracking") is not False,
        )


def render(source: TemplateSource, data: dict[str, Any], topic: str | None = None) -> Rendered:
    return CompiledTemplate(source).render(data, topic)
