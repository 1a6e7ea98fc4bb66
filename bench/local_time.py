"""Recipient-local-time delivery on the embedded local AWS: how late each recipient gets it.

    python -m bench.local_time [--recipients 10000] [--scale 120]

A 10,000-recipient campaign across 24 zones (one per whole UTC offset, -11 to +12),
``localTime`` 09:30, one stage, on a campaign clock running ``--scale`` times faster than
real time (120: the 24 send slots, an hour apart, come 30 real seconds apart, more than the
local stack needs to send a slot's ~417 emails; at 300 they come 12 s apart, faster than
it sends them, and the lateness piles up slot after slot). For every recipient: its actual send
time (the tracking item's ``sentAt``, whole seconds) minus its slot's target, in real
seconds; printed as p50/p99/max overall and per slot. The lateness is the time a slot's
emails take to send at the achieved rate (AWS: the account's MaxSendRate), so in AWS it is
about ``slot size / send rate``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sesflow_aws.dynamo import to_plain
from sesflow_core import campaign as cp
from sesflow_core.clock import Clock

from sesflow import executions
from sesflow.local import control
from sesflow.target import Target, local_target

ROOT = Path(__file__).resolve().parent.parent
NEWS = {"title": "T", "intro": "I", "articles": []}
ZONES = [
    "Pacific/Pago_Pago",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Halifax",
    "America/Sao_Paulo",
    "Atlantic/South_Georgia",
    "Atlantic/Cape_Verde",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Pacific/Noumea",
    "Pacific/Fiji",
]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(target: Target, n: int, scale: float) -> dict[str, Any]:
    cid = f"bench-localtime-{int(time.time())}"
    rows = ["email,name,timezone"] + [f"lt{i}@example.org,R{i},{ZONES[i % len(ZONES)]}" for i in range(n)]
    key = f"uploads/{cid}/recipients.csv"
    target.clients.client("s3").put_object(
        Bucket=target.outputs["CampaignsBucketName"], Key=key, Body="\n".join(rows).encode()
    )
    payload = {
        "campaignId": cid,
        "template": "newsletter",
        "recipients": {"key": key},
        "data": NEWS,
        "stages": [100],
        "localTime": "09:30",
        # the first slot (Fiji, +12: 09:30 there is 21:30 UTC) 2.5 campaign hours after the start
        "clock": {"scale": scale, "start": "2026-11-29T19:00:00Z"},
        "gate": {"observeSeconds": 1, "minSample": 10**9},
    }
    sfn = target.clients.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=target.outputs["CampaignStateMachineArn"], name=cid, input=json.dumps(payload)
    )["executionArn"]
    status = executions.wait(sfn, arn, timeout=3600)
    report: dict[str, Any] = json.loads(sfn.describe_execution(executionArn=arn).get("output") or "{}")
    assert status == "SUCCEEDED", (status, report)
    ddb = target.clients.client("dynamodb")
    item = ddb.get_item(TableName=target.outputs["CampaignsTableName"], Key={"campaignId": {"S": cid}})["Item"]
    clock = Clock.from_dict(to_plain(item)["plan"]["clock"])
    [stage] = report["stages"]
    real_target = {s["offsetMinutes"]: clock.real_time(epoch(s["target"])) for s in stage["slots"]}
    zone_offset = {z: _offset(z) for z in ZONES}
    late: dict[int, list[float]] = {}
    for i in range(n):
        email_id = cp.email_id_for(cid, f"lt{i}@example.org")
        got = ddb.get_item(TableName=target.outputs["TrackingTableName"], Key={"emailId": {"S": email_id}})["Item"]
        offset = zone_offset[ZONES[i % len(ZONES)]]
        late.setdefault(offset, []).append(epoch(got["sentAt"]["S"]) - real_target[offset])
    return {"report": report, "late": late}


def _offset(zone: str) -> int:
    from zoneinfo import ZoneInfo

    delta = datetime.fromisoformat("2026-11-30T00:00:00+00:00").astimezone(ZoneInfo(zone)).utcoffset()
    return int(delta.total_seconds() // 60) if delta else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--scale", type=float, default=120)
    args = parser.parse_args(argv)
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-localtime-"))
    control.up(ROOT, port=0, sdir=sdir)
    started = time.time()
    try:
        result = run(local_target(ROOT, sdir), args.recipients, args.scale)
    finally:
        control.down(ROOT, sdir=sdir)
    late = result["late"]
    everyone = [x for values in late.values() for x in values]
    report = result["report"]
    print(
        f"local-time delivery: {args.recipients} recipients, {len(late)} zones (send slots), localTime 09:30, "
        f"clock x{args.scale:g}, local stack ({time.time() - started:.0f} s)"
    )
    print(f"  sent {report['totals'].get('accepted', 0)}, status {report['status']}")
    print(
        "  lateness after each recipient's 09:30 (real seconds, sentAt has whole seconds): "
        f"p50 {statistics.median(everyone):.1f}, p99 {pct(everyone, 99):.1f}, max {max(everyone):.1f}, "
        f"min {min(everyone):.1f}"
    )
    print("  per slot (UTC offset: recipients, p50, p99 s)")
    for offset in sorted(late, reverse=True):
        values = late[offset]
        print(f"    {offset / 60:+5.1f} h: {len(values):5d}  {statistics.median(values):6.1f}  {pct(values, 99):6.1f}")


if __name__ == "__main__":
    main()
