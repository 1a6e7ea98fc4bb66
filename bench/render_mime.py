"""Render + MIME throughput per core for the starter templates (target >= 2,000 emails/s),
then the same with a locale variant and its Babel filters (order-receipt in de: currency,
numbers, a date) and with attachments (a 100 KB PDF, and a 1 MB PDF plus an inline logo),
against the plain case.

python -m bench.render_mime [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sesflow_core import mime
from sesflow_core.render import CompiledTemplate, TemplateSource, parse_metadata
from sesflow_core.request import validate

ROOT = Path(__file__).resolve().parent.parent
TARGET = 2000.0


def load(name: str, locale: str | None = None) -> CompiledTemplate:
    d = ROOT / "templates" / name / (locale or "")
    txt = d / "template.txt"
    return CompiledTemplate(
        TemplateSource(
            name,
            (d / "template.html").read_text(),
            txt.read_text() if txt.exists() else None,
            parse_metadata(name, (d / "metadata.json").read_text()),
            "bench",
            locale,
        )
    )


def rate_of(
    req: object, tpl: CompiledTemplate, seconds: float, files: list[tuple[object, bytes]] | None = None
) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() < start + seconds:
        rendered = tpl.render(req.data, req.topic)  # type: ignore[attr-defined]
        mime.build_message(req, rendered, sender=("no-reply@example.com", "Acme"), files=files or [])  # type: ignore[arg-type]
        n += 1
    return n / (time.perf_counter() - start)


def variants(seconds: float) -> dict[str, float]:
    """order-receipt: plain, in German with Babel filters, with attachments."""
    import os

    from sesflow_core.attachments import parse

    raw = json.loads((ROOT / "events" / "send-order-receipt.json").read_text())
    raw["data"]["order_date"] = "2026-11-24"
    req = validate(raw, identity="example.com")
    pdf = parse([{"filename": "invoice.pdf", "contentType": "application/pdf", "s3": {"key": "k"}}])[0]
    logo = parse(
        [
            {
                "filename": "l.png",
                "contentType": "image/png",
                "content": "iVBORw0K",
                "disposition": "inline",
                "contentId": "l",
            }
        ]
    )[0]
    small, big = os.urandom(100_000), os.urandom(1_000_000)
    cases = {
        "order-receipt (en, no attachment)": (load("order-receipt"), None),
        "order-receipt de (Babel filters)": (load("order-receipt", "de"), None),
        "+ 100 KB PDF attached": (load("order-receipt"), [(pdf, small)]),
        "+ 1 MB PDF and an inline logo": (load("order-receipt"), [(pdf, big), (logo, b"\x89PNG" * 200)]),
    }
    out = {}
    print("locales and attachments, one core")
    for name, (tpl, files) in cases.items():
        out[name] = rate_of(req, tpl, seconds / len(cases), files)
        print(f"  {name:<36} {out[name]:8.0f} emails/s")
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    events = ROOT / "events"
    cases = []
    for file in ("send-welcome.json", "send-password-reset.json", "send-order-receipt.json", "send-newsletter.json"):
        raw = json.loads((events / file).read_text())
        req = validate(raw, identity="example.com")
        cases.append((req, load(req.template)))
    results: dict[str, float] = {}
    print("render + MIME throughput, one core (compiled templates cached as in a warm Lambda)")
    total_n, total_t = 0, 0.0
    for req, tpl in cases:
        n, start = 0, time.perf_counter()
        deadline = start + args.seconds / len(cases)
        while time.perf_counter() < deadline:
            rendered = tpl.render(req.data, req.topic)
            mime.build_message(
                req,
                rendered,
                sender=("no-reply@example.com", "Acme"),
                unsubscribe_url="https://u.example.com/u?token=x" * (not req.transactional) or None,
            )
            n += 1
        elapsed = time.perf_counter() - start
        rate = n / elapsed
        results[req.template] = rate
        total_n, total_t = total_n + n, total_t + elapsed
        print(f"  {req.template:<16} {rate:8.0f} emails/s")
    overall = total_n / total_t
    results["overall"] = overall
    print(
        f"  {'all templates':<16} {overall:8.0f} emails/s   (target >= {TARGET:.0f}: "
        f"{'met' if overall >= TARGET else 'NOT met'})"
    )
    results.update(variants(args.seconds))
    return results


if __name__ == "__main__":
    main()
