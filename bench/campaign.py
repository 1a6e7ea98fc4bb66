"""Campaign benchmarks on the embedded local AWS.

    python -m bench.campaign [--recipients 1000] [--skip-rate] [--skip-memory]

1. Throughput of a 1,000-recipient staged campaign with no rate limit (target >= 50/s).
2. Rate control: the same with the local SES limited to 20 emails/s (targets: achieved
   rate >= 90 % of the limit, throttled SES calls <= 2 % of sends).
3. Cost per 1,000,000 emails, from the counts of run 1 (requests served and Lambda
   invocations/durations, counted by the local endpoint at ``/_sesflow/stats``) x public
   us-east-1 prices, beside two reference designs measured the same way on 20 single sends:
   one Standard execution per email and one Express execution per email (target <= $2.00).
4. Planner peak memory at 10k, 100k and 1M recipients (target: flat), each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from sesflow import executions
from sesflow.local import control
from sesflow.target import Target, local_target

ROOT = Path(__file__).resolve().parent.parent

# public us-east-1 prices (2026)
SFN_STANDARD_TRANSITION = 0.025 / 1000
SFN_EXPRESS_REQUEST = 1.00 / 1e6
SFN_EXPRESS_GB_SECOND = 0.00001667
LAMBDA_REQUEST = 0.20 / 1e6
LAMBDA_GB_SECOND_ARM = 0.0000133334
DDB_WRITE = 0.625 / 1e6
DDB_READ = 0.125 / 1e6
EVENTBRIDGE_CUSTOM_EVENT = 1.00 / 1e6
NEWS = {"title": "T", "intro": "I", "articles": []}

# Local Lambda durations are inflated by the single-process emulator, so GB-seconds use a
# latency model of AWS instead (ms): an SES SendEmail ~30, a DynamoDB write ~8, an
# EventBridge PutEvents ~15, plus ~5 of handler work per invocation.
AWS_MS = {
    # render + claim + send + the write that records sent and the messageId
    "CampaignSendBatchFunction": lambda batch: 5 + batch * (1 + 8 + 30 + 8),
    # the tracking write (event key pending) + the status event + the write that ends pending
    "FeedbackFunction": lambda _: 5 + 8 + 15 + 8,
    "ValidateFunction": lambda _: 5 + 8,
    "SendFunction": lambda _: 5 + 2 + 8 + 30 + 8,  # claim, render, SES, release
}


def stats(target: Target, reset: bool = False) -> dict[str, Any]:
    url = f"{target.state['endpoint']}/_sesflow/stats" + ("?reset=1" if reset else "")
    with urllib.request.urlopen(url, timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def drain(target: Target, settle: float = 2.0, timeout: float = 300) -> None:
    """Wait until the feedback backlog is processed (no new invocations for ``settle`` s)."""
    deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        n = sum(v[0] for v in stats(target)["lambda"].values())
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since > settle:
            return
        time.sleep(0.25)


def run_campaign(target: Target, n: int, stages: list[float], cid: str, **extra: Any) -> dict[str, Any]:
    key = f"uploads/{cid}.csv"
    body = "email,name\n" + "\n".join(f"r{i}@example.org,R{i}" for i in range(n))
    target.clients.client("s3").put_object(Bucket=target.outputs["CampaignsBucketName"], Key=key, Body=body.encode())
    payload = {
        "campaignId": cid,
        "template": "newsletter",
        "topic": "newsletter",
        "recipients": {"key": key},
        "data": NEWS,
        "stages": stages,
        "gate": {"observeSeconds": 1, "minSample": 10**9},
        **extra,
    }
    sfn = target.clients.client("stepfunctions")
    started = time.perf_counter()
    arn = sfn.start_execution(
        stateMachineArn=target.outputs["CampaignStateMachineArn"], name=cid, input=json.dumps(payload)
    )["executionArn"]
    executions.wait(sfn, arn, timeout=1800)
    wall = time.perf_counter() - started
    desc = sfn.describe_execution(executionArn=arn)
    report: dict[str, Any] = json.loads(desc["output"])
    report["wallSeconds"] = wall
    report["parentTransitions"] = executions.report(sfn, arn).transitions
    return report


def _fn(stats_lambda: dict[str, list[float]], logical: str) -> tuple[float, float, float]:
    for name, (count, ms, mem) in stats_lambda.items():
        if f"-{logical}-" in name:
            return count, ms, mem
    return 0.0, 0.0, 0.0


def cost_lines(
    st: dict[str, Any], emails: int, sfn_lines: list[tuple[str, float]], batch: int = 50
) -> list[tuple[str, float]]:
    """$ per 1,000,000 emails for everything but SES, from one run's per-email counts."""
    scale = 1e6 / emails
    req = st["requests"]
    lines = list(sfn_lines)
    invocations, gbs = 0.0, 0.0
    for name, (count, ms, mem) in st["lambda"].items():
        if "CampaignPlanFunction" in name or "CampaignControlFunction" in name:
            continue  # per campaign, not per email: nil at a million
        logical = name.split("-")[2]
        invocations += count
        modelled = AWS_MS[logical](batch) if logical in AWS_MS else ms / max(count, 1)
        gbs += count * modelled / 1000 * mem / 1024
    lines.append(("Lambda requests", invocations * LAMBDA_REQUEST * scale))
    lines.append(("Lambda GB-seconds (arm64, AWS latency model)", gbs * LAMBDA_GB_SECOND_ARM * scale))
    writes = sum(v for k, v in req.items() if k.split(":")[-1] in ("UpdateItem", "PutItem", "DeleteItem"))
    reads = req.get("dynamodb:GetItem", 0) + req.get("dynamodb:Query", 0) * 0.5
    lines.append(("DynamoDB writes", writes * DDB_WRITE * scale))
    lines.append(("DynamoDB reads", reads * DDB_READ * scale))
    lines.append(("EventBridge custom-bus events", req.get("events:PutEvents", 0) * EVENTBRIDGE_CUSTOM_EVENT * scale))
    return lines


def suppression_read_cost(emails: int) -> float:
    """BatchGetItem keys are not counted by the endpoint: 3 keys per address at planning and 3
    at sending, eventually consistent (0.5 RRU each)."""
    return 6 * 0.5 * DDB_READ * 1e6 if emails else 0.0


def single_sends(target: Target, n: int = 20) -> dict[str, Any]:
    stats(target, reset=True)
    sfn = target.clients.client("stepfunctions")
    req = json.loads((ROOT / "events" / "send-welcome.json").read_text())
    durations, transitions = [], 0
    for i in range(n):
        t0 = time.perf_counter()
        arn = executions.start(sfn, target.outputs["SendStateMachineArn"], req | {"emailId": f"ref-{i}"})
        executions.wait(sfn, arn)
        durations.append(time.perf_counter() - t0)
        transitions += executions.report(sfn, arn).transitions
    drain(target)
    return {"stats": stats(target), "n": n, "transitions": transitions, "seconds": sum(durations)}


def planner_memory(n: int) -> dict[str, float]:
    """Time and peak memory of planning n rows in a fresh process (``bench.planner``'s list)."""
    from bench import planner

    return planner.run(n, fast=True, trace=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args(argv)
    n = args.recipients

    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-campaign-"))
    control.up(ROOT, port=0, sdir=sdir)
    try:
        target = local_target(ROOT, sdir)
        ref = single_sends(target)
        stats(target, reset=True)
        rep = run_campaign(target, n, [1, 10, 100], "bench-throughput")
        drain(target)
        st = stats(target)
    finally:
        control.down(ROOT, sdir=sdir)
    accepted = rep["totals"]["accepted"]
    print(f"campaign throughput, {n} recipients, stages 1/10/100 %, no rate limit (local stack)")
    print(
        f"  sending throughput      {accepted / rep['sendingSeconds']:7.1f} emails/s  (target >= 50; "
        f"{accepted} sent in {rep['sendingSeconds']:.1f} s of sending)"
    )
    print(
        f"  whole campaign          {accepted / rep['wallSeconds']:7.1f} emails/s  ({rep['wallSeconds']:.1f} s with "
        "planning and two 1 s observation waits)"
    )

    per_million_batches = 1e6 / 50
    send_batch_s = AWS_MS["CampaignSendBatchFunction"](50) / 1000
    child_lines = [
        ("Step Functions: 1 parent transition per child execution", per_million_batches * SFN_STANDARD_TRANSITION),
        ("Step Functions: Express child executions (requests)", per_million_batches * SFN_EXPRESS_REQUEST),
        (
            "Step Functions: Express child duration (64 MB)",
            per_million_batches * send_batch_s * 0.0625 * SFN_EXPRESS_GB_SECOND,
        ),
    ]
    # the stats cover the campaign's emails only (per-campaign plan/control/parent work is excluded)
    ours = cost_lines(st, accepted, child_lines)
    ours.append(("DynamoDB suppression lookups (BatchGetItem)", suppression_read_cost(accepted)))
    # the same run with per-email delivery tracking (CampaignDeliveryTracking=true): one
    # feedback invocation, two tracking writes (the event key pending, then done) and one
    # status event more per email
    full_st = json.loads(json.dumps(st))
    full_st["requests"]["dynamodb:UpdateItem"] = full_st["requests"].get("dynamodb:UpdateItem", 0) + 2 * accepted
    full_st["requests"]["events:PutEvents"] = full_st["requests"].get("events:PutEvents", 0) + accepted
    feedback = next((e for n, e in full_st["lambda"].items() if "FeedbackFunction" in n), None)
    if feedback is None:
        full_st["lambda"]["sesflow-local-FeedbackFunction-X"] = feedback = [0, 0.0, 256]
    feedback[0] += accepted
    full = cost_lines(full_st, accepted, child_lines)
    full.append(("DynamoDB suppression lookups (BatchGetItem)", suppression_read_cost(accepted)))
    ref_st, ref_n = ref["stats"], ref["n"]
    std = cost_lines(
        ref_st,
        ref_n,
        [("Step Functions: Standard transitions", ref["transitions"] * SFN_STANDARD_TRANSITION * 1e6 / ref_n)],
    )
    express_s = sum(AWS_MS[f](0) for f in ("ValidateFunction", "SendFunction")) / 1000 + 0.1
    exp = cost_lines(
        ref_st,
        ref_n,
        [
            (
                "Step Functions: Express requests + duration",
                (SFN_EXPRESS_REQUEST + express_s * 0.0625 * SFN_EXPRESS_GB_SECOND) * 1e6,
            )
        ],
    )
    columns = {"campaign": ours, "campaign+": full, "Std/email": std, "Exp/email": exp}
    print("\ncost per 1,000,000 emails, everything but SES (SES itself: $100), us-east-1 prices")
    labels: list[str] = []
    for col in columns.values():
        labels += [lab for lab, _ in col if lab not in labels]
    print(f"  {'':<58}" + "".join(f"{c:>11}" for c in columns))
    for label in labels:
        print(f"  {label:<58}" + "".join(f"{dict(col).get(label, 0):>11.3f}" for col in columns.values()))
    totals = {c: sum(v for _, v in col) for c, col in columns.items()}
    print(f"  {'total':<58}" + "".join(f"{t:>11.2f}" for t in totals.values()))
    print(
        f"  target <= $2.00: campaign {'met' if totals['campaign'] <= 2 else 'NOT met'}   "
        "(+ with CampaignDeliveryTracking=true: every delivery recorded and announced as well)"
    )
    print(
        "  counts per campaign email: "
        + ", ".join(f"{k} {v / accepted:.3f}" for k, v in sorted(st["requests"].items()) if v / accepted >= 0.01)
    )
    print(
        "  Lambda invocations per campaign email: "
        + ", ".join(f"{name.split('-')[2]} {c / accepted:.3f}" for name, (c, _, _) in st["lambda"].items())
    )

    if not args.skip_rate:
        sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-rate-"))
        control.up(ROOT, port=0, ses_max_send_rate=20, sdir=sdir)
        try:
            rate_rep = run_campaign(local_target(ROOT, sdir), n, [100], "bench-rate")
        finally:
            control.down(ROOT, sdir=sdir)
        achieved = rate_rep["achievedSendRate"]
        print(f"\nrate control: local SES limited to 20/s, {n} recipients (maxSendRate from GetAccount)")
        print(f"  achieved send rate      {achieved:7.2f} /s = {achieved / 20:.0%} of the limit (target >= 90 %)")
        print(
            f"  throttled SES calls     {rate_rep['throttledCalls']} = {rate_rep['throttledPercent']:.2f} % of sends "
            "(target <= 2 %)"
        )
        pace = 20 * 0.95 / rate_rep["maxConcurrency"]
        print(f"  workers x pace          {rate_rep['maxConcurrency']} x {pace:.2f}/s")

    if not args.skip_memory:
        print("\nplanner peak memory (fresh process each; suppression lookups stubbed)")
        for size in (10_000, 100_000, 1_000_000):
            m = planner_memory(size)
            print(
                f"  {size:>9,} recipients  Python heap peak {m['tracemalloc_peak_mb']:6.1f} MB   "
                f"max RSS {m['maxrss_mb']:6.1f} MB   {m['seconds']:6.1f} s"
            )


if __name__ == "__main__":
    main()
