"""A burst of single sends on the embedded local AWS: ``Email Requested`` events, each delivered
twice (EventBridge delivers at least once; the fault plan's ``eventDuplicate``).

    python -m bench.local_burst [--emails 300]

Puts ``--emails`` events on the stack's bus (10 per PutEvents), waits until every email has a
terminal status, and prints the wall time, emails/s, the send executions started (two per
email: the duplicate's ends after ValidateRequest, a repeat, ADR 0002) and the stack's memory.
Target (issue #13): >= 20 emails/s for 300. This bench on 47034ad (before the local stack's
speed-ups): 170.1 s, 1.8 emails/s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from sesflow_aws.dynamo import batch_get, to_plain

from bench.local_stack import peak_rss_mb, workers_memory
from sesflow.local import control
from sesflow.target import Target, local_target

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"sent", "delivered", "suppressed", "rejected", "failed", "bounced", "complained"}


def _http(target: Target, path: str, doc: Any = None) -> Any:
    req = urllib.request.Request(
        f"{target.state['endpoint']}{path}",
        method="POST" if doc is not None else "GET",
        data=None if doc is None else json.dumps(doc).encode(),
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def run(target: Target, n: int) -> dict[str, float]:
    _http(target, "/_sesflow/faults", {"seed": 1, "rules": [{"kind": "eventDuplicate", "p": 1.0}]})
    events = target.clients.client("events")
    bus = target.outputs["EventBusName"]
    ids = [f"burst-{i:05d}" for i in range(n)]
    started = time.perf_counter()
    for i in range(0, n, 10):
        entries = [
            {
                "EventBusName": bus,
                "Source": "com.example.bench",
                "DetailType": "Email Requested",
                "Detail": json.dumps(
                    {
                        "emailId": email_id,
                        "template": "welcome",
                        "to": f"{email_id}@example.org",
                        "data": {"name": "Ada", "product": "Acme"},
                    }
                ),
            }
            for email_id in ids[i : i + 10]
        ]
        assert not events.put_events(Entries=entries).get("FailedEntryCount")
    pending = set(ids)
    ddb = target.clients.client("dynamodb")
    table = target.outputs["TrackingTableName"]
    outcomes: dict[str, str] = {}
    while pending:  # a BatchGetItem per 100 emails a pass: the bench's reads stay a small load
        keys = [{"emailId": {"S": e}} for e in sorted(pending)]
        for item in map(to_plain, batch_get(ddb, table, keys, ["emailId", "status"])):
            if item.get("status") in TERMINAL:
                outcomes[str(item["emailId"])] = str(item["status"])
        pending -= set(outcomes)
        if time.perf_counter() - started > 1800:
            raise TimeoutError(f"{len(pending)} emails without a terminal status after 1800 s")
        time.sleep(0.25)
    wall = time.perf_counter() - started
    sfn = target.clients.client("stepfunctions")
    runs = 0
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=target.outputs["SendStateMachineArn"]):
        runs += len(page["executions"])
    _http(target, "/_sesflow/faults", {"seed": 1, "rules": []})
    # a stack that keeps up sends them all; one that times out under the load fails some
    # (Lambda timeouts past their retries): that is not a figure, it is a failure
    lost = sorted(e for e, status in outcomes.items() if status not in ("sent", "delivered"))
    if lost:
        [item] = map(to_plain, batch_get(ddb, table, [{"emailId": {"S": lost[0]}}], ["status", "reason"]))
        raise RuntimeError(
            f"{len(lost)} of {n} emails were not sent (e.g. {lost[0]}: {item.get('status')}, {item.get('reason')})"
        )
    return {"emails": n, "seconds": wall, "emailsPerSecond": n / wall, "executions": runs}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=300)
    args = parser.parse_args(argv)
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-burst-"))
    state, _ = control.up(ROOT, port=0, sdir=sdir)
    try:
        result = run(local_target(ROOT, sdir), args.emails)
        result["peakRssMb"] = peak_rss_mb(int(state["pid"]))
        result["workers"], result["workersRssMb"] = workers_memory(state["endpoint"])
    finally:
        control.down(ROOT, sdir=sdir)
    print(
        f"local burst: {args.emails} Email Requested events, each delivered twice: all terminal in "
        f"{result['seconds']:.1f} s = {result['emailsPerSecond']:.1f} emails/s "
        f"({result['executions']:.0f} send executions started); server peak RSS {result['peakRssMb']:.0f} MB, "
        f"{result['workers']:.0f} Lambda worker processes {result['workersRssMb']:.0f} MB "
        "(target >= 20 emails/s; this bench on 47034ad, before the local stack's speed-ups: 170.1 s, 1.8 emails/s; "
        "on f83f214, before repeats ended at ValidateRequest: 27 s at a fast hour of the machine, "
        "33 to 44 s at a slow one)"
    )
    return result


if __name__ == "__main__":
    main()
