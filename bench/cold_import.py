"""Cold import time of each handler module in a fresh interpreter, as a ratio to a bare
`import boto3` (target <= 1.3x).

Each handler is imported together with boto3 (which the Lambda runtime provides and every
handler uses on its first call), so the figure is what a cold start really pays.

    python -m bench.cold_import [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

HANDLERS = ("sesflow_handlers.validate", "sesflow_handlers.send", "sesflow_handlers.defer")
TARGET = 1.3
SNIPPET = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def measure(module: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", SNIPPET.format(mod=module)],
            capture_output=True,
            text=True,
            check=True,
            env={"POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1", "PATH": ""},
        )
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    measure("boto3", 2)  # warm the file cache
    base = measure("boto3", args.runs)
    print(f"cold import, median of {args.runs} fresh interpreters (Python {sys.version.split()[0]})")
    print(f"  {'import boto3':<28} {base * 1000:7.1f} ms   1.00x")
    ratios = {}
    for mod in HANDLERS:
        t = measure(f"boto3, {mod}", args.runs)
        ratios[mod] = t / base
        print(
            f"  {mod:<28} {t * 1000:7.1f} ms   {t / base:.2f}x  (target <= {TARGET}x: "
            f"{'met' if t / base <= TARGET else 'NOT met'})"
        )
    return ratios


if __name__ == "__main__":
    main()
