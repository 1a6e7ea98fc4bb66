"""Campaign benchmarks on the embedded local AWS.

    python -m bench.campaign [--recipients 1000] [--skip-rate] [--skip-memory]

1. Throughput of a 1,000-recipient staged campaign with no rate limit (target, issue #13:
   >= 100 emails/s with ``--recipients 10000``; figures in the README).
2. Rate control: the same with the local SES limited to 20 emails/s (targets: achieved
   rate >= 96 % of the limit, throttled SES calls <= 0.5 % of sends; ``--rates``,
   ``--rate-sizes`` for 200/s and 10,000 recipients).
3. Cost per 1,000,000 emails, from the counts of run 1 (requests served and Lambda
   invocations/durations, counted by the local endpoint at ``/_sesflow/stats``) x public
   us-east-1 prices, beside two reference designs measured the same way on 20 single sends:
   one Standard execution per email and one Express execution per email (target <= $1.00).
4. Planner peak memory at 10k, 100k and 1M recipients (target: flat), each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sesflow_core import campaign as cp

from bench import log_bytes
from bench.local_stack import peak_rss_mb, workers_memory
from bench.log_bytes import drain, stats
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
XRAY_TRACE_RECORDED = 5.00 / 1e6
XRAY_SAMPLED = 0.05
NEWS = {"title": "T", "intro": "I", "articles": []}

# Local Lambda durations are inflated by the single-process emulator, so GB-seconds use a
# latency model of AWS instead (ms): an SES SendEmail ~30, a DynamoDB write or Query ~8, an
# EventBridge PutEvents ~15, ~5 of handler work per invocation, and per email CPU_MS_PER_EMAIL
# at one full vCPU, slowed by the function's share of a vCPU (Lambda: 1,769 MB = 1 vCPU).
#: render + MIME (~0.8 ms, bench.render_mime) and two signed AWS requests (~1 ms each)
CPU_MS_PER_EMAIL = 3.0


def vcpu(memory_mb: float) -> float:
    return min(1.0, memory_mb / 1769)


AWS_MS: dict[str, Callable[[float, float], float]] = {
    # the tracking write (event key pending) + the status event + the write that ends pending
    "FeedbackFunction": lambda _, mem: 5 + 8 + 15 + 8,
    "ValidateFunction": lambda _, mem: 5 + 8,
    "SendFunction": lambda _, mem: 5 + 8 + 30 + 8 + CPU_MS_PER_EMAIL / vcpu(mem),  # claim, render, SES, release
}

#: the SES sending rate (emails/s) the campaign's cost is priced at: a worker's billed time is
#: its wall time, paced by the rate (a published large sender: 300/s; a new account: 14/s)
COST_RATE = 200.0
SEND_BATCH_MB = 256


def send_batch_ms(emails: float, memory_mb: float, worker_rate: float) -> float:
    """One batch's billed duration: per batch the suppression Query, the stage counter and a
    result chunk per 12 emails; per email render, claim and SES call (ADR 0014), overlapped by
    the worker's senders except the CPU, and never faster than the worker's pace."""
    cpu = CPU_MS_PER_EMAIL / vcpu(memory_mb)
    threads = cp.sender_threads(worker_rate)
    busy = emails * max((8 + 30 + cpu) / threads, cpu)
    paced = emails / worker_rate * 1000 if worker_rate > 0 else 0.0
    return 5 + 8 + 8 + emails / 12 * 8 / threads + max(busy, paced)


def campaign_worker_lines(batch_size: int, rate: float) -> list[tuple[str, float]]:
    """Per 1,000,000 campaign emails: the parent's transitions, the Express children and the
    worker function, at ``rate`` emails/s with ``batch_size`` recipients per child."""
    _, worker_rate = cp.concurrency_for(rate)
    batches = 1e6 / batch_size
    ms = send_batch_ms(batch_size, SEND_BATCH_MB, worker_rate)
    return [
        ("Step Functions: 1 parent transition per child execution", batches * SFN_STANDARD_TRANSITION),
        ("Step Functions: Express child executions (requests)", batches * SFN_EXPRESS_REQUEST),
        ("Step Functions: Express child duration (64 MB)", batches * ms / 1000 * 0.0625 * SFN_EXPRESS_GB_SECOND),
        ("Lambda requests (batch worker)", batches * LAMBDA_REQUEST),
        (
            f"Lambda GB-seconds (batch worker, {SEND_BATCH_MB} MB, AWS latency model)",
            batches * ms / 1000 * SEND_BATCH_MB / 1024 * LAMBDA_GB_SECOND_ARM,
        ),
    ]


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
    report["executionArn"] = arn
    report["parentTransitions"] = executions.report(sfn, arn).transitions
    ddb = target.clients.client("dynamodb")
    item = ddb.get_item(TableName=target.outputs["CampaignsTableName"], Key={"campaignId": {"S": cid}})["Item"]
    report["batchSize"] = int(item["plan"]["M"]["batchSize"]["N"])
    report["workerRate"] = float(item["plan"]["M"]["workerRate"]["N"])
    return report


def _fn(stats_lambda: dict[str, list[float]], logical: str) -> tuple[float, float, float]:
    for name, (count, ms, mem) in stats_lambda.items():
        if f"-{logical}-" in name:
            return count, ms, mem
    return 0.0, 0.0, 0.0


def default_webhooks() -> bool:
    """Whether the template deploys webhooks by default (the local stack turns them on)."""
    from sesflow import cfn_yaml

    template = cfn_yaml.load_template(ROOT / "template.yaml")
    return str(template["Parameters"]["Webhooks"]["Default"]) == "true"


def default_deployment(st: dict[str, Any]) -> dict[str, Any]:
    """The stats of a run as a stack with the template's defaults would have them: the local
    stack deploys webhooks (``Webhooks=true``) for its tests; by default there is no webhook
    queue and no dispatcher to invoke."""
    if default_webhooks():
        return st
    out = json.loads(json.dumps(st))
    for key in ("lambda", "logs"):
        out[key] = {name: v for name, v in (out.get(key) or {}).items() if "WebhookFunction" not in name}
    return out


def xray_line(traces_per_email: float) -> tuple[str, float]:
    """X-Ray: every state machine and function traces (README, Tracing); the default sampling
    rule records the first request each second and 5 % of the rest, about 5 % at volume."""
    return (
        "X-Ray traces recorded (5 % sampled at volume)",
        traces_per_email * XRAY_SAMPLED * XRAY_TRACE_RECORDED * 1e6,
    )


def cost_lines(
    st: dict[str, Any], emails: int, sfn_lines: list[tuple[str, float]], executions_per_email: float = 0.0
) -> list[tuple[str, float]]:
    """$ per 1,000,000 emails for everything but SES, from one run's per-email counts, for a
    stack deployed with the template's defaults (:func:`default_deployment`). A trace starts
    at each execution (``executions_per_email``: its functions join it) and at each feedback
    invocation (SES events carry no trace header)."""
    st = default_deployment(st)
    scale = 1e6 / emails
    req = st["requests"]
    lines = list(sfn_lines)
    invocations, gbs = 0.0, 0.0
    for name, (count, ms, mem) in st["lambda"].items():
        if any(f in name for f in ("CampaignPlanFunction", "CampaignControlFunction", "CampaignSendBatchFunction")):
            continue  # per campaign (nil at a million), or priced by campaign_worker_lines
        logical = name.split("-")[2]
        invocations += count
        per_invocation = emails / max(count, 1)  # the emails of one invocation (a batch)
        modelled = AWS_MS[logical](per_invocation, mem) if logical in AWS_MS else ms / max(count, 1)
        gbs += count * modelled / 1000 * mem / 1024
    lines.append(("Lambda requests", invocations * LAMBDA_REQUEST * scale))
    lines.append(("Lambda GB-seconds (arm64, AWS latency model)", gbs * LAMBDA_GB_SECOND_ARM * scale))
    lines += dynamodb_lines(st.get("dynamodb", {}), scale)
    if st.get("logs"):
        level, system = log_bytes.template_log_levels()
        _, log_bytes_run = log_bytes.function_bytes({"functions": log_bytes.function_logs(st)}, level, system)
        lines.append(
            (
                f"CloudWatch Logs ingestion (functions at {level}, machines at ERROR)",
                log_bytes.dollars_per_million(log_bytes_run / emails),
            )
        )
    lines.append(("EventBridge custom-bus events", req.get("events:PutEvents", 0) * EVENTBRIDGE_CUSTOM_EVENT * scale))
    feedback = _fn(st["lambda"], "FeedbackFunction")[0]
    lines.append(xray_line(executions_per_email + feedback / emails))
    return lines


def dynamodb_lines(tables: dict[str, dict[str, Any]], scale: float) -> list[tuple[str, float]]:
    """DynamoDB on-demand from the request units the local stack metered (``"dynamodb"`` of
    ``/_sesflow/stats``: per table WRU, RRU and WRU per global secondary index)."""
    table_wru = sum(t["wru"] for t in tables.values())
    rru = sum(t["rru"] for t in tables.values())
    index_wru: dict[str, float] = {}
    for t in tables.values():
        for name, units in t["indexWru"].items():
            index_wru[name] = index_wru.get(name, 0.0) + units
    names = ", ".join(sorted(index_wru)) or "none"  # every index of the tables written, written or not
    return [
        ("DynamoDB writes (table)", table_wru * DDB_WRITE * scale),
        (f"DynamoDB writes (indexes: {names})", sum(index_wru.values()) * DDB_WRITE * scale),
        ("DynamoDB reads", rru * DDB_READ * scale),
    ]


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


def rate_control(rate: float, n: int) -> dict[str, Any]:
    """A one-stage campaign of ``n`` against the local SES limited to ``rate`` emails/s."""
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-rate-"))
    control.up(ROOT, port=0, ses_max_send_rate=rate, sdir=sdir)
    try:
        rep = run_campaign(local_target(ROOT, sdir), n, [100], f"bench-rate-{int(rate)}-{n}")
    finally:
        control.down(ROOT, sdir=sdir)
    achieved = rep["achievedSendRate"]
    print(f"\nrate control: local SES limited to {rate:.0f}/s, {n} recipients (maxSendRate from GetAccount)")
    print(
        f"  achieved send rate      {achieved:7.2f} /s = {achieved / rate:.1%} of the limit (target >= 96 %; "
        "before: 93 % at 20/s, workers paced at 95 % of their share)"
    )
    print(
        f"  throttled SES calls     {rep['throttledCalls']} = {rep['throttledPercent']:.2f} % of sends "
        "(target <= 0.5 %; before: 0)"
    )
    print(
        f"  workers x pace          {rep['maxConcurrency']} x {rep['workerRate']:.2f}/s "
        f"({cp.sender_threads(rep['workerRate'])} senders each), batches of {rep['batchSize']}"
    )
    return rep


def planner_memory(n: int) -> dict[str, float]:
    """Time and peak memory of planning n rows in a fresh process (``bench.planner``'s list)."""
    from bench import planner

    return planner.run(n, fast=True, trace=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--skip-rate", action="store_true")
    parser.add_argument("--rates", default="20", help="local SES limits for rate control (emails/s), e.g. 20,200")
    parser.add_argument("--rate-sizes", default="1000", help="recipients of each rate-control run, e.g. 1000,10000")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args(argv)
    n = args.recipients

    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-campaign-"))
    state, _ = control.up(ROOT, port=0, sdir=sdir)
    try:
        target = local_target(ROOT, sdir)
        ref = single_sends(target)
        stats(target, reset=True)
        rep = run_campaign(target, n, [1, 10, 100], "bench-throughput")
        drain(target)
        st = stats(target)
        server_mb = peak_rss_mb(int(state["pid"]))
        workers, workers_mb = workers_memory(state["endpoint"])
    finally:
        control.down(ROOT, sdir=sdir)
    accepted = rep["totals"]["accepted"]
    print(f"campaign throughput, {n} recipients, stages 1/10/100 %, no rate limit (local stack)")
    print(
        f"  sending throughput      {accepted / rep['sendingSeconds']:7.1f} emails/s  (target >= 100 at 10,000; "
        "on 912939a: 55.8 at 1,000, 57.9 at 10,000; "
        f"{accepted} sent in {rep['sendingSeconds']:.1f} s of sending)"
    )
    print(
        f"  whole campaign          {accepted / rep['wallSeconds']:7.1f} emails/s  ({rep['wallSeconds']:.1f} s with "
        "planning and two 1 s observation waits)"
    )
    print(
        f"  local stack memory      {server_mb + workers_mb:7.0f} MB  (peak RSS: server {server_mb:.0f} MB, "
        f"{workers} Lambda worker processes {workers_mb:.0f} MB)"
    )

    # at a million: the plan's batch size (from the pace, ADR 0014), one child per batch
    batch_size = rep["batchSize"]
    print(f"  batch size              {batch_size:7d} recipients per child execution (the plan's)")
    child_lines = campaign_worker_lines(batch_size, COST_RATE)
    # the stats cover the campaign's emails only (per-campaign plan/control/parent work is excluded)
    ours = cost_lines(st, accepted, child_lines, 1 / batch_size)
    # the same run with per-email delivery tracking (CampaignDeliveryTracking=true): one
    # feedback invocation, two tracking writes (the event key pending, then done: about 1 WRU
    # each; measured 1.98 WRU per email more. No index write: a campaign email that goes well
    # has no createdAt, so it stays out of byRecipient and byCampaign) and one status event more
    # per email
    full_st = json.loads(json.dumps(st))
    tracking = next((t for name, t in full_st["dynamodb"].items() if "TrackingTable" in name), None)
    if tracking is None:
        full_st["dynamodb"]["TrackingTable"] = tracking = {"wru": 0.0, "rru": 0.0, "indexWru": {}}
    tracking["wru"] += 2 * accepted
    full_st["requests"]["events:PutEvents"] = full_st["requests"].get("events:PutEvents", 0) + accepted
    feedback = next((e for n, e in full_st["lambda"].items() if "FeedbackFunction" in n), None)
    if feedback is None:
        full_st["lambda"]["sesflow-local-FeedbackFunction-X"] = feedback = [0, 0.0, 256]
    feedback[0] += accepted
    full = cost_lines(full_st, accepted, child_lines, 1 / batch_size)
    ref_st, ref_n = ref["stats"], ref["n"]
    std = cost_lines(
        ref_st,
        ref_n,
        [("Step Functions: Standard transitions", ref["transitions"] * SFN_STANDARD_TRANSITION * 1e6 / ref_n)],
        1.0,
    )
    express_s = sum(AWS_MS[f](1, 256) for f in ("ValidateFunction", "SendFunction")) / 1000 + 0.1
    exp = cost_lines(
        ref_st,
        ref_n,
        [
            (
                "Step Functions: Express requests + duration",
                (SFN_EXPRESS_REQUEST + express_s * 0.0625 * SFN_EXPRESS_GB_SECOND) * 1e6,
            )
        ],
        1.0,
    )
    columns = {"campaign": ours, "campaign+": full, "Std/email": std, "Exp/email": exp}
    print(
        f"\ncost per 1,000,000 emails, everything but SES (SES itself: $100), us-east-1 prices; campaigns at "
        f"{COST_RATE:.0f} emails/s"
    )
    labels: list[str] = []
    for col in columns.values():
        labels += [lab for lab, _ in col if lab not in labels]
    width = max(58, *(len(label) for label in labels))  # the index line names the indexes
    print(f"  {'':<{width}}" + "".join(f"{c:>11}" for c in columns))
    for label in labels:
        print(f"  {label:<{width}}" + "".join(f"{dict(col).get(label, 0):>11.3f}" for col in columns.values()))
    totals = {c: sum(v for _, v in col) for c, col in columns.items()}
    print(f"  {'total':<{width}}" + "".join(f"{t:>11.2f}" for t in totals.values()))
    print(
        f"  target <= $1.00: campaign {'met' if totals['campaign'] <= 1 else 'NOT met'} (before ADR 0014: $5.08 "
        "metered the same way, $2.57 counting requests; campaign+: CampaignDeliveryTracking=true, every "
        "delivery recorded and announced)"
    )
    for rate in (14.0, 50.0, 1000.0):
        size = cp.batch_size_for(cp.concurrency_for(rate)[1])
        slow = cost_lines(st, accepted, campaign_worker_lines(size, rate), 1 / size)
        print(
            f"  campaign at {rate:6.0f} emails/s: ${sum(v for _, v in slow):.2f} (the workers' time follows the pace)"
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
        for rate in (float(r) for r in args.rates.split(",")):
            for size in (int(x) for x in args.rate_sizes.split(",")):
                rate_control(rate, size)

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
