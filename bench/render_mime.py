"""Render + MIME throughput per core for the starter templates (target >= 2,000 emails/s).

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


def load(name: str) -> CompiledTemplate:
    d = ROOT / "templates" / name
    txt = d / "template.txt"
    return CompiledTemplate(
        TemplateSource(
            name,
            (d / "template.html").read_text(),
            txt.read_text() if txt.exists() else None,
            parse_metadata(name, (d / "metadata.json").read_text()),
            "bench",
        )
    )


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
    return results


if __name__ == "__main__":
    main()
