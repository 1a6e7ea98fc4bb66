"""The console's page times with many executions, and the size of what it ships.

    python -m bench.console_pages [--executions 10000] [--repeat 20]

Starts a local stack, runs ``--executions`` sends through the send machine (requests that
are rejected at validation: the quickest whole execution, 4 states), then serves the console
and times each page (server time, over HTTP on 127.0.0.1: median and p95 of ``--repeat``
loads). The issue's bar: each page under 300 ms with 10,000 executions.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sesflow import executions
from sesflow.console.server import HERE, serve
from sesflow.local import control
from sesflow.target import find_root, local_target

BAD = {"template": "welcome", "to": "not-an-address", "data": {}}
GOOD = {"template": "welcome", "to": "success@simulator.amazonses.com", "data": {"name": "Ada", "product": "Acme"}}


def fill(target: object, n: int) -> float:
    """Start ``n`` sends (all but a few rejected at validation) and wait for all; return seconds."""
    sfn = target.clients.client("stepfunctions")  # type: ignore[attr-defined]
    machine = target.outputs["SendStateMachineArn"]  # type: ignore[attr-defined]
    started = time.perf_counter()

    def one(i: int) -> None:
        request = (GOOD if i % 1000 == 0 else BAD) | {"emailId": f"bench-{i:05d}"}
        arn = executions.start(sfn, machine, request, request["emailId"])
        executions.wait(sfn, arn, timeout=600)

    with ThreadPoolExecutor(16) as pool:
        for done, _ in enumerate(pool.map(one, range(n)), 1):
            if done % 1000 == 0:
                print(f"   {done} executions ({done / (time.perf_counter() - started):.0f}/s)", flush=True)
    return time.perf_counter() - started


def timed(url: str, repeat: int) -> tuple[float, float, int]:
    times = []
    size = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=60) as resp:
            size = len(resp.read())
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    root = find_root()
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-console-"))
    control.up(root, port=0, sdir=sdir)
    try:
        target = local_target(root, sdir)
        print(f"console pages with {args.executions:,} send executions")
        seconds = fill(target, args.executions)
        print(f"   ran them in {seconds:.0f} s")
        server, base = serve(target, 0)
        machine = target.outputs["SendStateMachineArn"]
        sfn = target.clients.client("stepfunctions")
        page2 = sfn.list_executions(stateMachineArn=machine, maxResults=50)["nextToken"]
        arn = machine.replace(":stateMachine:", ":execution:") + ":bench-00000"
        pages = {
            "executions, newest 50": "executions",
            "executions, page 2": "executions?token=" + urllib.parse.quote(page2, safe=""),
            "executions, FAILED only": "executions?status=FAILED",
            "search by emailId": "executions?q=bench-05000",
            "one execution (graph)": "execution?arn=" + urllib.parse.quote(arn, safe=""),
            "one email": "emails/bench-00000",
            "campaigns": "campaigns",
            "suppression list": "suppression",
            "outbox": "outbox",
        }
        print(f"   {'page':<26} {'median ms':>10} {'p95 ms':>8} {'bytes':>8}")
        worst = 0.0
        for label, path in pages.items():
            median, p95, size = timed(base + path, args.repeat)
            worst = max(worst, p95)
            print(f"   {label:<26} {median:>10.1f} {p95:>8.1f} {size:>8,}")
        server.shutdown()
        assets = sorted((HERE / "static").iterdir())
        total = sum(p.stat().st_size for p in assets)
        print(f"   slowest page p95: {worst:.0f} ms (bar: 300 ms)")
        print(
            f"   assets shipped: {total:,} bytes ({', '.join(f'{p.name} {p.stat().st_size:,}' for p in assets)}); "
            "no JavaScript, no fonts, no CDN"
        )
    finally:
        control.down(root, sdir=sdir)


if __name__ == "__main__":
    main()
