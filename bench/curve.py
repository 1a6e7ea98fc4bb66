"""Cost and time by campaign size: 10k, 100k and 1M recipients.

    python -m bench.curve [--sizes 10000,100000,1000000] [--measure-up-to 10000] [--png docs/img/cost-curve.png]

1. Each size up to ``--measure-up-to`` is a real campaign on the embedded local AWS (stages
   1/10/100 %, 1 s gate observations, as ``bench.campaign`` runs it): its per-email counts
   (requests, invocations, request units) and its local wall time are measured.
2. A bigger size takes the per-email counts of the largest measured run (a batch does the same
   work whatever the campaign's size: one child, one worker invocation, the same requests per
   email) and the planner's time measured at that size, in process (``bench.planner``).
3. Each row: cost per 1,000,000 emails (everything but SES, ``bench.campaign``'s prices and
   latency model, at COST_RATE emails/s), the campaign's total with its fixed costs (one plan
   invocation, the parent's own transitions, the control invocations), and the wall time on AWS
   at COST_RATE: planning + n / (COST_RATE x PACE_SHARE) + one observation per gated stage at the
   default ``observeSeconds``.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sesflow_core import campaign as cp
from sesflow_core.campaign import pacing

from bench import campaign as bc
from bench import planner
from sesflow.local import control
from sesflow.target import local_target

STAGES = [1.0, 10.0, 100.0]
#: a control invocation (ready, after-stage, gate, summarize) on AWS: the handler plus about
#: three DynamoDB calls and an S3 read (ms), priced at its measured memory
CONTROL_MS = 50.0
#: the memory of the plan and control functions when a run did not invoke them (template.yaml)
PLAN_MB = 1024.0
CONTROL_MB = 256.0
#: the default observation of a gated stage (every stage but the last)
OBSERVE_SECONDS = cp.GateSettings().observe_seconds


@dataclass(frozen=True)
class Run:
    """What one local campaign measured (``stats``: ``/_sesflow/stats`` of the campaign alone)."""

    recipients: int
    accepted: int
    stats: dict[str, Any]
    batch_size: int
    wall_seconds: float
    sending_seconds: float
    plan_seconds: float  # the local plan function's, from the campaign item
    parent_transitions: int  # the parent's own (its history: the children are not in it)


def function(stats: dict[str, Any], logical: str, default_mb: float) -> tuple[float, float]:
    """(invocations, memory MB) of one function in a run's stats."""
    count, _, mem = bc._fn(stats.get("lambda", {}), logical)
    return count, (mem or default_mb)


def per_million(run: Run, rate: float = bc.COST_RATE) -> list[tuple[str, float]]:
    """$ per 1,000,000 emails, everything but SES, from the run's per-email counts."""
    return bc.cost_lines(run.stats, run.accepted, bc.campaign_worker_lines(run.batch_size, rate), 1 / run.batch_size)


def plan_aws_seconds(planner_seconds: float, memory_mb: float = PLAN_MB) -> float:
    """The planner's one-core time on the plan function's share of a vCPU (1,769 MB = 1 vCPU)."""
    return planner_seconds / bc.vcpu(memory_mb)


def fixed_lines(run: Run, plan_seconds: float) -> list[tuple[str, float]]:
    """$ of the per-campaign work: one plan invocation of ``plan_seconds`` (on AWS), the parent's
    own transitions and the control invocations, as many as the run had."""
    _, plan_mb = function(run.stats, "CampaignPlanFunction", PLAN_MB)
    controls, control_mb = function(run.stats, "CampaignControlFunction", CONTROL_MB)
    return [
        (
            f"plan: 1 invocation, {plan_seconds:.1f} s at {plan_mb:.0f} MB",
            bc.LAMBDA_REQUEST + plan_seconds * plan_mb / 1024 * bc.LAMBDA_GB_SECOND_ARM,
        ),
        (
            f"parent: {run.parent_transitions} transitions of its own",
            run.parent_transitions * bc.SFN_STANDARD_TRANSITION,
        ),
        (
            f"control: {controls:.0f} invocations, {CONTROL_MS:.0f} ms at {control_mb:.0f} MB",
            controls * (bc.LAMBDA_REQUEST + CONTROL_MS / 1000 * control_mb / 1024 * bc.LAMBDA_GB_SECOND_ARM),
        ),
    ]


def aws_wall_seconds(
    n: int,
    plan_seconds: float,
    stages: int = len(STAGES),
    observe_seconds: float = OBSERVE_SECONDS,
    rate: float = bc.COST_RATE,
) -> float:
    """Wall time on AWS: planning, the sends at the workers' pace, one observation per gated stage."""
    return plan_seconds + n / (rate * pacing.PACE_SHARE) + max(stages - 1, 0) * observe_seconds


def row(n: int, run: Run, planner_seconds: float, measured: bool) -> dict[str, Any]:
    """One size's figures from a run's per-email counts and the planner's time at that size."""
    lines = per_million(run)
    plan_s = plan_aws_seconds(planner_seconds, function(run.stats, "CampaignPlanFunction", PLAN_MB)[1])
    fixed = fixed_lines(run, plan_s)
    per_m = sum(v for _, v in lines)
    variable = per_m * n / 1e6
    fixed_total = sum(v for _, v in fixed)
    total = variable + fixed_total
    out: dict[str, Any] = {
        "recipients": n,
        "measured": measured,
        "countsFrom": run.recipients,
        "perMillion": per_m,  # per-email work only
        "perMillionAllIn": total / n * 1e6,  # the fixed costs amortised over the n emails
        "variable": variable,
        "fixed": fixed_total,
        "fixedLines": fixed,
        "total": total,
        "planSeconds": plan_s,
        "awsWallSeconds": aws_wall_seconds(n, plan_s),
        "localWallSeconds": None,
        "localEmailsPerSecond": None,
        "localPlanSeconds": None,
    }
    if measured:
        out["localWallSeconds"] = run.wall_seconds
        out["localEmailsPerSecond"] = run.accepted / run.wall_seconds
        out["localPlanSeconds"] = run.plan_seconds
    return out


def build_rows(sizes: list[int], runs: dict[int, Run], planner_seconds: dict[int, float]) -> list[dict[str, Any]]:
    """Rows for ``sizes``: a measured size from its own run, any other from the largest run."""
    largest = runs[max(runs)]
    return [row(n, runs.get(n, largest), planner_seconds[n], n in runs) for n in sorted(sizes)]


def measure(target: Any, n: int) -> Run:
    """A real local campaign of n recipients: its counts alone, its wall time.

    Paced at COST_RATE, it is planned as on AWS at that rate (5 workers of 39.6/s, batches of
    250). Unpaced, the plan takes 40 workers, more than the local stack serves on a small machine:
    their batches run out of time, the stages are sent again and every resend claims its
    recipients again, so the counts per email grow with the size (a 10,000-recipient run: 6,192
    sent in 9 minutes, 4 GetItem and 3 UpdateItem per email, and slowing)."""
    bc.stats(target, reset=True)
    cid = f"curve-{n}"
    rep = bc.run_campaign(target, n, STAGES, cid, maxSendRate=bc.COST_RATE)
    bc.drain(target)
    st = bc.stats(target)
    ddb = target.clients.client("dynamodb")
    item = ddb.get_item(TableName=target.outputs["CampaignsTableName"], Key={"campaignId": {"S": cid}})["Item"]
    return Run(
        recipients=n,
        accepted=int(rep["totals"]["accepted"]),
        stats=st,
        batch_size=int(rep["batchSize"]),
        wall_seconds=float(rep["wallSeconds"]),
        sending_seconds=float(rep["sendingSeconds"]),
        plan_seconds=float(item.get("planSeconds", {}).get("N", 0)),
        parent_transitions=int(rep["parentTransitions"]),
    )


def curve(sizes: list[int], measure_up_to: int) -> list[dict[str, Any]]:
    """Measure the sizes up to ``measure_up_to`` on a local stack (``measure_up_to`` itself when
    none is that small), plan every size in process, and return one row per size."""
    local = [n for n in sizes if n <= measure_up_to] or [measure_up_to]
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-curve-"))
    control.up(bc.ROOT, port=0, sdir=sdir)
    try:
        target = local_target(bc.ROOT, sdir)
        runs = {n: measure(target, n) for n in sorted(local)}
    finally:
        control.down(bc.ROOT, sdir=sdir)
    planned = {n: planner.run(n, fast=True)["seconds"] for n in sizes}
    return build_rows(sizes, runs, planned)


def duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def report(rows: list[dict[str, Any]]) -> None:
    print(
        f"cost and time by campaign size: stages {'/'.join(f'{s:g}' for s in STAGES)} %, everything but SES "
        f"(SES: $100 per 1M), us-east-1 prices, AWS at {bc.COST_RATE:.0f} emails/s"
    )
    print(
        f"  {'recipients':>10}  {'figures':<10} {'$/1M emails':>11} {'$/1M all-in':>11} {'fixed $':>8} "
        f"{'campaign $':>10} {'plan s':>7} {'AWS wall':>11} {'local wall':>10} {'local /s':>8}"
    )
    for r in rows:
        local = (
            f"{r['localWallSeconds']:>9.0f}s {r['localEmailsPerSecond']:>8.1f}"
            if r["measured"]
            else f"{'-':>10} {'-':>8}"
        )
        print(
            f"  {r['recipients']:>10,}  {'measured' if r['measured'] else 'arithmetic':<10} {r['perMillion']:>11.3f} "
            f"{r['perMillionAllIn']:>11.3f} {r['fixed']:>8.4f} {r['total']:>10.4f} {r['planSeconds']:>7.1f} "
            f"{duration(r['awsWallSeconds']):>11} {local}"
        )
    measured = [r for r in rows if r["measured"]]
    biggest = max(r["countsFrom"] for r in rows)
    print(
        f"  measured: a local campaign per size, paced at {bc.COST_RATE:.0f}/s (maxSendRate: planned as on AWS at "
        "that rate), its per-email counts and local wall (with planning and two 1 s observations); "
        f"arithmetic: the per-email counts of the {biggest:,}-recipient run, which do not depend "
        "on the size (one child and one worker invocation per batch, the same requests per email; they hold the "
        "run's few per-campaign writes and events too: a slight overstatement at bigger sizes)"
    )
    print(
        "  $/1M emails: per-email work (bench.campaign's lines); all-in: with the fixed costs amortised; "
        "plan s: bench.planner in process at that size (one core), over the plan function's vCPU share"
    )
    for label, dollars in rows[-1]["fixedLines"]:
        print(f"  fixed at {rows[-1]['recipients']:,}: {label}: ${dollars:.6f}")
    print(
        "  (control: ready and after-stage per stage, a gate per gated stage, a summary; S3 requests for "
        "the upload, manifests and Map results: a few, under $0.0001, left out)"
    )
    print(
        f"  AWS wall = plan s + n / ({bc.COST_RATE:.0f} x {pacing.PACE_SHARE}) + {len(STAGES) - 1} gated stages x "
        f"{OBSERVE_SECONDS} s observation (GateSettings.observe_seconds default); all arithmetic"
    )
    for r in measured:
        print(
            f"  local {r['recipients']:,}: plan function {r['localPlanSeconds']:.1f} s on the local stack; "
            f"{r['localEmailsPerSecond']:.1f} emails/s over the whole campaign"
        )


def draw(rows: list[dict[str, Any]], path: str | Path) -> None:
    """A 640x360 PNG: the campaign's total cost and its AWS wall time against recipients (log-log:
    a straight line of slope 1 is linear growth); filled markers from a local run's counts,
    hollow ones arithmetic, grey squares the local stack's wall time."""
    # matplotlib: the dev extra's; a missing one only stops the chart (typed where installed)
    import matplotlib  # type: ignore[import-not-found, unused-ignore]

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    from matplotlib.ticker import FuncFormatter, NullFormatter  # type: ignore[import-not-found, unused-ignore]

    def plain(value: float, _: object) -> str:
        return f"{value / 1e6:g}M" if value >= 1e6 else f"{value / 1e3:g}k" if value >= 1e3 else f"{value:g}"

    xs = [r["recipients"] for r in rows]
    fig, (cost_ax, time_ax) = plt.subplots(1, 2, figsize=(6.4, 3.6), dpi=100)
    panels = (
        (cost_ax, [r["total"] for r in rows], "campaign cost, $ (no SES)", "tab:blue", "${:.3g}", True),
        (time_ax, [r["awsWallSeconds"] / 60 for r in rows], "wall time on AWS, minutes", "tab:orange", "{:.3g}", False),
    )
    for ax, ys, title, colour, label, from_runs in panels:
        ax.plot(xs, ys, color=colour, linewidth=1.5)
        for r, y in zip(rows, ys, strict=True):
            filled = from_runs and r["measured"]  # the wall time on AWS is arithmetic at every size
            ax.plot(r["recipients"], y, "o", color=colour, markerfacecolor=colour if filled else "white")
            ax.annotate(label.format(y), (r["recipients"], y), textcoords="offset points", xytext=(7, -3), fontsize=7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(min(xs) / 2, max(xs) * 3)
        ax.margins(y=0.15)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("recipients", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_major_formatter(FuncFormatter(plain))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    local = [(r["recipients"], r["localWallSeconds"] / 60) for r in rows if r["measured"]]
    if local:
        time_ax.plot(*zip(*local, strict=True), "s", color="grey", label="wall on the local stack (measured)")
        time_ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"sesflow campaign at {bc.COST_RATE:.0f} emails/s, stages 1/10/100 % "
        "(filled: measured counts, hollow: arithmetic)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def png_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of a PNG, from its IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--measure-up-to", type=int, default=10_000)
    parser.add_argument("--png", help="write the chart there")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    rows = curve(sizes, args.measure_up_to)
    report(rows)
    if args.png:
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        draw(rows, args.png)
        print(f"  chart: {args.png}")


if __name__ == "__main__":
    main()
