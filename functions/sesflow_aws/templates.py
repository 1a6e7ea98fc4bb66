"""Templates from the S3 bucket, compiled once and cached by object version (TTL).

A template may have locale variants: ``<name>/<locale>/`` holds the same three parts. A
request for ``pt-BR`` renders ``<name>/pt-BR/``, else ``<name>/pt/``, else ``<name>/``
(:func:`sesflow_core.localize.fallback_chain`); a missing locale is never an error.

Hand-written cache: it checks the three parts' versions with HEAD requests only after the
TTL, so a warm function renders without touching S3 (Powertools' parameters utility caches
values, not compiled Jinja2 templates)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sesflow_core.errors import TemplateNotFound
from sesflow_core.localize import fallback_chain
from sesflow_core.render import CompiledTemplate, TemplateSource, parse_metadata

PARTS = ("metadata.json", "template.html", "template.txt")

# (bucket, name, requested locale) -> (checked_at, version, compiled)
_cache: dict[tuple[str, str, str | None], tuple[float, str, CompiledTemplate]] = {}


def _get(s3: Any, bucket: str, key: str) -> tuple[bytes, str] | None:
    try:
        obj = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    return obj["Body"].read(), obj.get("VersionId") or obj.get("ETag", "")


def _current_version(s3: Any, bucket: str, name: str) -> str | None:
    """A version id covering the three parts (HEAD requests only)."""
    versions = []
    for part in PARTS:
        try:
            head = s3.head_object(Bucket=bucket, Key=f"{name}/{part}")
        except s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                if part == "template.txt":
                    versions.append("-")
                    continue
                return None
            raise
        versions.append(head.get("VersionId") or head.get("ETag", ""))
    return _version_id(versions)


def _version_id(parts: list[str]) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _resolved_version(s3: Any, bucket: str, name: str, locale: str | None) -> str | None:
    """The version of the variant ``locale`` resolves to now (HEAD requests only): the first
    folder of the fallback chain that has the template, and its parts' versions."""
    for candidate in fallback_chain(locale):
        folder = f"{name}/{candidate}" if candidate else name
        version = _current_version(s3, bucket, folder)
        if version is not None:
            return f"{candidate or ''}:{version}"
    return None


def load_template(s3: Any, bucket: str, name: str, ttl: float, locale: str | None = None) -> CompiledTemplate:
    """The compiled template (the ``locale`` variant, with fallback); S3 is read again only
    after ``ttl`` and only if it changed (a locale variant added since counts as a change)."""
    key = (bucket, name, locale)
    now = time.monotonic()
    cached = _cache.get(key)
    if cached and now - cached[0] < ttl:
        return cached[2]
    if cached:
        version = _resolved_version(s3, bucket, name, locale)
        if version == cached[1]:
            _cache[key] = (now, version, cached[2])
            return cached[2]
    for candidate in fallback_chain(locale):
        folder = f"{name}/{candidate}" if candidate else name
        meta = _get(s3, bucket, f"{folder}/metadata.json")
        if meta is not None or candidate is None:
            break
    html = _get(s3, bucket, f"{folder}/template.html")
    if meta is None or html is None:
        missing = "metadata.json" if meta is None else "template.html"
        raise TemplateNotFound(f"template {folder!r} not found ({missing} missing in the templates bucket)")
    text = _get(s3, bucket, f"{folder}/template.txt")
    version = _version_id([meta[1], html[1], text[1] if text else "-"])
    source = TemplateSource(
        name=name,
        html=html[0].decode("utf-8"),
        text=text[0].decode("utf-8") if text else None,
        metadata=parse_metadata(name, meta[0]),
        version=version,
        locale=candidate,
    )
    compiled = CompiledTemplate(source)
    _cache[key] = (now, f"{candidate or ''}:{version}", compiled)
    return compiled
