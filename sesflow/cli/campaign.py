"""``sesflow campaign start|status|approve|reject|pause|resume|cancel|report``, and the progress bar.

The progress of ``campaign start --wait`` comes from the per-stage counters, which the batch
sender adds to once per batch (up to 50 emails at a time). Between two counter updates the
bar moves on at the stage's measured send rate (``accepted / (lastSendAt - firstSendAt)``,
never above ``maxSendRate``), never past the next value the counters can show (the current
one plus one batch, and the stage's planned count), and never backwards; the ETA comes from
the same rate. On a terminal the bar is redrawn in place (carriage returns); otherwise (CI,
a pipe) it prints plain lines: one per status or stage change, and one every 5 s.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from sesflow_aws.dynamo import batch_get, to_plain
from sesflow_core import ids

from sesflow.cli import inputs
from sesflow.cli.output import EXIT_FAILED, EXIT_OK, UsageError, emit, json_wanted
from sesflow.target import Target

TERMINAL: Final = frozenset({"completed", "halted", "cancelled", "rejected", "expired", "failed"})
#: how often ``--wait`` reads the execution and the counters; how often a terminal's bar is redrawn
POLL_SECONDS: Final = 0.5
FRAME_SECONDS: Final = 0.1
#: without a terminal, a progress line at least this often
LINE_EVERY_SECONDS: Final = 5.0


# ---------------------------------------------------------------- reading the tables
def campaign(target: Target, campaign_id: str) -> dict[str, Any]:
    """The campaign item, plain (native numbers); no such campaign is bad input (exit 2)."""
    item = (
        target.clients.client("dynamodb")
        .get_item(
            TableName=target.outputs["CampaignsTableName"], Key={"campaignId": {"S": campaign_id}}, ConsistentRead=True
        )
        .get("Item")
    )
    if not item:
        raise UsageError(f"no campaign {campaign_id!r}")
    return to_plain(item)


def counters(target: Target, campaign_id: str, stage: int | str) -> dict[str, int | float]:
    """A stage's counters (accepted, suppressed, failed, ..., firstSendAt, lastSendAt); {} before its first batch."""
    item = (
        target.clients.client("dynamodb")
        .get_item(
            TableName=target.outputs["TrackingTableName"],
            Key={"emailId": {"S": ids.stage_counter_key(campaign_id, stage)}},
            ConsistentRead=True,
        )
        .get("Item", {})
    )
    return {k: v for k, v in to_plain(item).items() if isinstance(v, int | float) and not isinstance(v, bool)}


def measured_rate(c: dict[str, int | float]) -> float:
    """Emails SES accepted per second over the stage's sending window (0 before a batch ended)."""
    window = c.get("lastSendAt", 0) - c.get("firstSendAt", 0)
    return c.get("accepted", 0) / window if window > 0 else 0.0


def progress(target: Target, campaign_id: str) -> dict[str, Any]:
    """Per stage: planned, done, sent (accepted by SES), suppressed, failed, unknown (an unknown
    outcome: failed, never sent again), bounced, complained, rate, ETA."""
    item = campaign(target, campaign_id)
    plan = item.get("plan", {})
    rows, total_planned, total_done = [], 0, 0
    for st in plan.get("stages", []):
        c = counters(target, campaign_id, int(st["index"]))
        planned = int(st["planned"])
        outcomes = ("accepted", "suppressed", "failed", "unknown", "duplicates")
        done = min(planned, int(sum(c.get(k, 0) for k in outcomes)))
        rate = measured_rate(c)
        remaining = planned - done
        rows.append(
            {
                "stage": int(st["index"]),
                "percent": st.get("percent"),
                "planned": planned,
                "batches": int(st.get("batches", 0)),
                "done": done,
                "sent": int(c.get("accepted", 0)),
                "suppressed": int(c.get("suppressed", 0)),
                "failed": int(c.get("failed", 0)),
                "unknown": int(c.get("unknown", 0)),
                "bounced": int(c.get("bounced", 0)),
                "complained": int(c.get("complained", 0)),
                "throttled": int(c.get("throttled", 0)),
                "rate": round(rate, 2),
                "etaSeconds": (round(remaining / rate, 1) if rate else None) if remaining else 0,
            }
        )
        total_planned += planned
        total_done += done
    return {
        "campaignId": campaign_id,
        "status": item.get("status"),
        "control": item.get("control"),
        "reason": item.get("haltReason"),
        # waiting: until when, and for what (startAt, window, dailyCap)
        "resumeAt": item.get("resumeAt") if item.get("status") == "waiting" else None,
        "waitReason": item.get("waitReason") if item.get("status") == "waiting" else None,
        "schedule": plan.get("schedule") or {},
        "variants": [v["id"] for v in plan.get("variants") or []],
        "abDecision": item.get("abDecision"),
        # recipients whose batches failed in every pass (the summary counts them at the end)
        "unaccounted": int((item.get("summary") or {}).get("unaccounted") or 0),
        "planned": total_planned,
        "done": total_done,
        "counts": plan.get("counts", {}),
        "maxSendRate": plan.get("maxSendRate"),
        "observeSeconds": (plan.get("gate") or {}).get("observeSeconds"),
        "stages": rows,
        "gates": item.get("gates", []),
        "mergedEmptyStages": plan.get("mergedEmptyStages", []),
    }


def status_text(p: dict[str, Any]) -> str:
    lines = [f"campaign {p['campaignId']}: {p['status']}" + (f" ({p['reason']})" if p.get("reason") else "")]
    if p.get("resumeAt"):
        why = {"startAt": "its start time", "window": "its send window", "dailyCap": "the next day of its daily cap"}
        lines.append(f"  waiting for {why.get(p.get('waitReason') or '', 'its schedule')}: resumes at {p['resumeAt']}")
    sched = p.get("schedule") or {}
    if sched.get("window") or sched.get("dailyCap"):
        w = sched.get("window") or {}
        lines.append(
            f"  schedule ({sched.get('timezone', 'UTC')}): "
            + (f"{','.join(w['days'])} {w['from']}-{w['to']}" if w else "any time")
            + (f", at most {sched['dailyCap']} a day" if sched.get("dailyCap") else "")
        )
    c = p.get("counts") or {}
    if c:
        lines.append(
            f"  rows {c.get('rows')}, valid {c.get('valid')}, invalid {c.get('invalid')}, "
            f"duplicates {c.get('duplicates')}, suppressed at planning {c.get('suppressed')}"
        )
    lines.append("  stage  pct    planned  sent   suppr  failed bounced compl  rate/s  ETA")
    for s in p["stages"]:
        eta = "-" if s["etaSeconds"] in (None, 0) else f"{s['etaSeconds']:.0f}s"
        lines.append(
            f"  {s['stage']:<6} {s['percent'] or 0:>5.1f}  {s['planned']:>7}  {s['sent']:>5}  "
            f"{s['suppressed']:>5}  {s['failed']:>6} {s['bounced']:>7} {s['complained']:>5}  "
            f"{s['rate']:>6.1f}  {eta}"
        )
    for s in p["stages"]:
        if s.get("unknown"):
            lines.append(
                f"  stage {s['stage']}: {s['unknown']} with an unknown outcome (the worker died around the SES "
                "call, or SES did not answer): failed, never sent again"
            )
    if p.get("unaccounted"):
        lines.append(
            f"  {p['unaccounted']} recipient(s) have no outcome: their batches failed in every pass "
            "(never attempted, not sent)"
        )
    ab = p.get("abDecision")
    if ab:
        lines.append(f"  A/B winner {ab['winner']} ({ab.get('by')}): {ab.get('reason')}")
    elif p.get("variants"):
        lines.append(f"  A/B test of {', '.join(p['variants'])}: the winner is not chosen yet")
    for g in p.get("gates", []):
        lines.append(
            f"  gate after stage {g['stage']}: {g['action']} - {g['reason']}"
            + (" (WARNING: decided on too small a sample)" if g.get("insufficient_sample") else "")
        )
    if p.get("mergedEmptyStages"):
        lines.append(f"  stages merged into the next (no recipient fell in them): {p['mergedEmptyStages']}")
    return "\n".join(lines)


# ---------------------------------------------------------------- the progress bar (pure)
@dataclass(frozen=True)
class ProgressView:
    """What the bar shows at one instant."""

    campaign_id: str
    status: str
    done: int
    planned: int
    rate: float | None = None  # emails/s measured on the stage being sent
    eta_seconds: float | None = None
    stage: int | None = None  # 1-based: the stage being sent
    stages: int = 0


def effective_rate(measured: float, max_send_rate: float | None) -> float | None:
    """The measured rate, never above ``maxSendRate``; None before anything was measured."""
    if measured <= 0:
        return None
    return min(measured, max_send_rate) if max_send_rate else measured


class ProgressEstimator:
    """Polls of :func:`progress` in, :class:`ProgressView` out, moving per email between polls.

    Times are ``time.monotonic()`` values given by the caller (tests give their own).
    """

    def __init__(self, campaign_id: str) -> None:
        self.campaign_id = campaign_id
        self._snapshot: dict[str, Any] = {"status": "planning", "planned": 0, "done": 0, "stages": []}
        self._changed_at: dict[int, tuple[int, float]] = {}  # stage -> (its done count, when first seen)
        self._largest_step: dict[int, int] = {}  # stage -> the largest counter update seen (a batch)
        self._shown = 0

    def observe(self, now: float, snapshot: dict[str, Any]) -> None:
        self._snapshot = snapshot
        for row in snapshot.get("stages", []):
            seen = self._changed_at.get(row["stage"])
            if seen is None or seen[0] != row["done"]:
                self._changed_at[row["stage"]] = (row["done"], now)
            if seen is not None and row["done"] > seen[0]:
                step = row["done"] - seen[0]
                self._largest_step[row["stage"]] = max(step, self._largest_step.get(row["stage"], 0))

    def view(self, now: float) -> ProgressView:
        p = self._snapshot
        stages: list[dict[str, Any]] = p.get("stages", [])
        planned, real = int(p.get("planned", 0)), int(p.get("done", 0))
        active = next((i for i, s in enumerate(stages) if s["done"] < s["planned"]), None)
        rate = None
        estimate = float(real)
        sending = p.get("status") == "running" and p.get("control") in (None, "run")
        if active is not None:
            row = stages[active]
            rate = effective_rate(float(row.get("rate") or 0), p.get("maxSendRate"))
            if sending and rate:
                # the next counter update adds one batch: never show more than that (a batch: the
                # largest update seen on this stage, at least the stage's average batch)
                average = math.ceil(row["planned"] / row["batches"]) if row.get("batches") else row["planned"]
                batch = max(average, self._largest_step.get(row["stage"], 0))
                headroom = min(row["planned"], row["done"] + batch) - row["done"]
                elapsed = now - self._changed_at.get(row["stage"], (row["done"], now))[1]
                estimate += min(float(headroom), rate * max(0.0, elapsed))
        self._shown = min(planned, max(self._shown, int(estimate)))
        remaining = planned - self._shown
        eta: float | None
        if planned and remaining <= 0:
            eta = 0.0
        elif rate and sending:  # paused, awaiting approval, planning: no honest ETA
            gates_ahead = max(0, len(stages) - 1 - (active or 0))
            eta = remaining / rate + gates_ahead * float(p.get("observeSeconds") or 0)
        else:
            eta = None
        return ProgressView(
            campaign_id=self.campaign_id,
            status=str(p.get("status") or "planning"),
            done=self._shown,
            planned=planned,
            rate=rate,
            eta_seconds=eta,
            stage=None if active is None else active + 1,
            stages=len(stages),
        )


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def render_bar(view: ProgressView, width: int = 30) -> str:
    """One frame for a terminal: starts with a carriage return, redrawn in place."""
    frac = view.done / view.planned if view.planned else 0.0
    filled = int(frac * width)
    stage = f"stage {view.stage}/{view.stages}" if view.stage else ""
    rate = f"{view.rate:.1f}/s" if view.rate else "-/s"
    return (
        f"\r[{'#' * filled}{'.' * (width - filled)}] {view.done}/{view.planned} {frac:4.0%} "
        f"{view.status:<18} {stage:<10} {rate:>8}  ETA {format_eta(view.eta_seconds):<7}"
    )


def render_line(view: ProgressView) -> str:
    """One plain line (no carriage return, no newline) for logs and pipes."""
    frac = view.done / view.planned if view.planned else 0.0
    parts = [f"campaign {view.campaign_id}: {view.status}", f"{view.done}/{view.planned} ({frac:.0%})"]
    if view.stage:
        parts.append(f"stage {view.stage}/{view.stages}")
    if view.rate:
        parts.append(f"{view.rate:.1f}/s")
    if view.eta_seconds is not None and view.done < view.planned:
        parts.append(f"ETA {format_eta(view.eta_seconds)}")
    return ", ".join(parts)


class ProgressPrinter:
    """Writes the bar (``tty``) or plain lines (one per status/stage change, one every ``every`` s)."""

    def __init__(
        self, estimator: ProgressEstimator, stream: TextIO, tty: bool, every: float = LINE_EVERY_SECONDS
    ) -> None:
        self.estimator, self.stream, self.tty, self.every = estimator, stream, tty, every
        self._key: tuple[str, int | None] | None = None
        self._line_at = -math.inf
        self._last_line = ""

    def observe(self, now: float, snapshot: dict[str, Any]) -> None:
        self.estimator.observe(now, snapshot)
        self.draw(now)

    def draw(self, now: float) -> None:
        view = self.estimator.view(now)
        if self.tty:
            self.stream.write(render_bar(view))
            self.stream.flush()
            return
        key = (view.status, view.stage)
        if key != self._key or now - self._line_at >= self.every:
            self._write_line(render_line(view), now)
            self._key = key

    def finish(self, now: float) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
            return
        line = render_line(self.estimator.view(now))
        if line != self._last_line:
            self._write_line(line, now)

    def _write_line(self, line: str, now: float) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
        self._line_at, self._last_line = now, line


def interactive(stream: TextIO) -> bool:
    """A bar redrawn in place only when both stdout and the progress stream are terminals."""
    return sys.stdout.isatty() and stream.isatty()


def snapshot(target: Target, campaign_id: str) -> dict[str, Any]:
    try:
        return progress(target, campaign_id)
    except UsageError:  # not planned yet
        return {"campaignId": campaign_id, "planned": 0, "done": 0, "status": "planning", "stages": []}


def wait_for(
    target: Target,
    campaign_id: str,
    execution_arn: str,
    show: bool,
    timeout: float = 3600,
    stream: TextIO | None = None,
    tty: bool | None = None,
) -> dict[str, Any]:
    """Poll until the execution ends or waits for approval; with ``show``, progress on ``stream`` (stderr)."""
    sfn = target.clients.client("stepfunctions")
    out = stream or sys.stderr
    printer = ProgressPrinter(ProgressEstimator(campaign_id), out, interactive(out) if tty is None else tty)
    deadline = time.monotonic() + timeout
    try:
        while True:
            status = sfn.describe_execution(executionArn=execution_arn)["status"]
            p = snapshot(target, campaign_id)
            now = time.monotonic()
            if show:
                printer.observe(now, p)
            if status != "RUNNING" or p.get("status") == "awaiting-approval":
                return {"executionStatus": status, **p}
            if now > deadline:
                raise TimeoutError(f"campaign {campaign_id} still running after {timeout:.0f}s")
            next_poll = now + POLL_SECONDS
            while show and printer.tty and time.monotonic() + FRAME_SECONDS < next_poll:
                time.sleep(FRAME_SECONDS)
                printer.draw(time.monotonic())
            time.sleep(max(0.0, next_poll - time.monotonic()))
    finally:
        if show:
            printer.finish(time.monotonic())


# ---------------------------------------------------------------- commands
def cmd_start(args: argparse.Namespace) -> int:
    """Without --wait: JSON ``{campaignId, executionArn}``, exit 0. With --wait: the progress
    JSON plus ``executionStatus``; exit 0 completed or awaiting approval, 1 otherwise."""
    path = Path(args.recipients)
    if not path.is_file():
        raise UsageError(f"--recipients: no such file {path}")
    default_id = f"{args.template}-{time.strftime('%Y%m%d-%H%M%S')}"
    campaign_id = args.campaign_id or re.sub(r"[^A-Za-z0-9_-]", "-", default_id)
    if not ids.is_campaign_id(campaign_id):
        raise UsageError(f"--campaign-id must match {ids.CAMPAIGN_ID_PATTERN}")
    data = inputs.load_json_object(args.data, "--data")
    try:
        stages = [float(s) for s in args.stages.split(",")]
    except ValueError as exc:
        raise UsageError(f"--stages: comma-separated percentages, not {args.stages!r}") from exc
    target = inputs.resolve_target(args)
    key = f"uploads/{campaign_id}/{path.name}"
    target.clients.client("s3").upload_file(str(path), target.outputs["CampaignsBucketName"], key)
    payload: dict[str, Any] = {
        "campaignId": campaign_id,
        "template": args.template,
        "topic": args.topic,
        "recipients": {"key": key},
        "data": data,
        "stages": stages,
        "gate": {
            "maxBounceRate": args.max_bounce_rate,
            "maxComplaintRate": args.max_complaint_rate,
            "minSample": args.min_sample,
            "observeSeconds": args.observe_seconds,
        },
        "approval": args.approval,
    }
    if args.batch_size:
        payload["batchSize"] = args.batch_size
    if args.max_send_rate:
        payload["maxSendRate"] = args.max_send_rate
    payload.update(schedule_options(args))
    if args.variants:
        payload["variants"] = inputs.load_json_arg(args.variants, "--variants")
        payload["abTest"] = inputs.load_json_object(args.ab_test, "--ab-test") if args.ab_test else {}
    sfn = target.clients.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=target.outputs["CampaignStateMachineArn"], name=campaign_id, input=json.dumps(payload)
    )["executionArn"]
    if not args.wait:
        emit(args, {"campaignId": campaign_id, "executionArn": arn}, f"campaign {campaign_id} started ({arn})")
        return EXIT_OK
    result = wait_for(target, campaign_id, arn, show=not json_wanted(args))
    emit(args, result, status_text(result))
    return EXIT_OK if result.get("status") in ("completed", "awaiting-approval") else EXIT_FAILED


def schedule_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--start-at``, ``--window DAYS,FROM-TO``, ``--timezone``, ``--daily-cap``, ``--time-scale``
    as campaign input fields (the plan validates them: a bad one fails the plan, nothing sent)."""
    out: dict[str, Any] = {}
    if args.start_at:
        out["startAt"] = args.start_at
    if args.timezone:
        out["timezone"] = args.timezone
    if args.window:
        match = re.fullmatch(r"(?:(?P<days>[a-z,]+)[ ,@])?(?P<from>\d\d:\d\d)-(?P<to>\d\d:\d\d)", args.window.lower())
        if not match:
            raise UsageError("--window: [DAYS ]HH:MM-HH:MM, e.g. 'mon,tue,wed,thu,fri 09:00-17:00' or 09:00-17:00")
        window: dict[str, Any] = {"from": match["from"], "to": match["to"]}
        if match["days"]:
            window["days"] = [d for d in match["days"].split(",") if d]
        out["window"] = window
    if args.daily_cap is not None:
        out["dailyCap"] = args.daily_cap
    if args.time_scale:
        out["clock"] = {"scale": args.time_scale, **({"start": args.clock_start} if args.clock_start else {})}
    return out


def cmd_status(args: argparse.Namespace) -> int:
    """JSON: the progress (per stage: planned, done, sent, ..., rate, etaSeconds; gates)."""
    p = progress(inputs.resolve_target(args), args.campaign_id)
    emit(args, p, status_text(p))
    return EXIT_OK


def set_control(target: Target, campaign_id: str, control: str, status: str | None = None) -> dict[str, Any]:
    """Set the control word (and status) of a campaign that has not ended; return the item before."""
    item = campaign(target, campaign_id)
    if item.get("status") in TERMINAL:
        raise UsageError(f"campaign {campaign_id} is {item['status']}")
    names, values = {"#c": "control"}, {":c": {"S": control}}
    update = "SET #c = :c"
    if status:
        names["#s"], values[":s"] = "status", {"S": status}
        update += ", #s = :s"
    target.clients.client("dynamodb").update_item(
        TableName=target.outputs["CampaignsTableName"],
        Key={"campaignId": {"S": campaign_id}},
        UpdateExpression=update,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
    return item


def wake(target: Target, campaign_id: str) -> None:
    """End a campaign's wait (``WaitForWindow``: start time, window, daily cap, pause) so that
    it decides again at once: after the control word is written, send the wait's task token.
    A token already used or timed out is not an error (the wait ended anyway)."""
    token = campaign(target, campaign_id).get("waitToken")
    if not token:
        return  # not waiting; or about to wait, and then it sees the new control word itself
    sfn = target.clients.client("stepfunctions")
    try:
        sfn.send_task_success(taskToken=token, output=json.dumps({"woken": True}))
    except (sfn.exceptions.TaskTimedOut, sfn.exceptions.TaskDoesNotExist, sfn.exceptions.InvalidToken):
        pass


def pause(target: Target, campaign_id: str) -> dict[str, Any]:
    """Pause at the next batch boundary (a wait ends at once to see it)."""
    set_control(target, campaign_id, "paused")
    wake(target, campaign_id)
    return {"campaignId": campaign_id, "control": "paused"}


def cancel(target: Target, campaign_id: str) -> dict[str, Any]:
    """Cancel: it stops at the next batch boundary and ends with a summary (an approval wait is answered)."""
    item = set_control(target, campaign_id, "cancelled")
    wake(target, campaign_id)
    if item.get("status") == "awaiting-approval" and item.get("taskToken"):
        target.clients.client("stepfunctions").send_task_failure(
            taskToken=item["taskToken"], error="CampaignRejected", cause="cancelled by an operator"
        )
    return {"campaignId": campaign_id, "control": "cancelled"}


def resume(target: Target, campaign_id: str) -> dict[str, Any]:
    """Resume a paused campaign; one whose execution died resumes in a new execution (same plan and ledger)."""
    item = campaign(target, campaign_id)
    sfn = target.clients.client("stepfunctions")
    execution = sfn.describe_execution(executionArn=item["executionArn"])
    if execution["status"] == "RUNNING":
        set_control(target, campaign_id, "run", "running")
        wake(target, campaign_id)
        return {"campaignId": campaign_id, "control": "run"}
    if item.get("status") in TERMINAL - {"failed"}:  # a failed one (a stage failed, a set-up error) may resume
        raise UsageError(f"campaign {campaign_id} is {item['status']}; nothing to resume")
    # the execution died (failed, timed out, aborted): a new one re-uses the plan and the ledger
    name = f"{campaign_id}-resume-{int(time.time())}"
    arn = sfn.start_execution(
        stateMachineArn=target.outputs["CampaignStateMachineArn"], name=name, input=execution["input"]
    )["executionArn"]
    return {"campaignId": campaign_id, "executionArn": arn}


def answer(target: Target, campaign_id: str, approve: bool, reason: str | None = None) -> dict[str, Any]:
    """Approve or reject a campaign waiting for approval (anything else is bad input)."""
    item = campaign(target, campaign_id)
    if item.get("status") != "awaiting-approval" or not item.get("taskToken"):
        raise UsageError(f"campaign {campaign_id} is not waiting for approval ({item.get('status')})")
    sfn = target.clients.client("stepfunctions")
    table = target.outputs["CampaignsTableName"]
    ddb = target.clients.client("dynamodb")
    key = {"campaignId": {"S": campaign_id}}
    if approve:
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #s = :s REMOVE taskToken",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "running"}},
        )
        sfn.send_task_success(taskToken=item["taskToken"], output=json.dumps({"approved": True}))
    else:
        reason = reason or "rejected by an operator"
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET #s = :s, haltReason = :r REMOVE taskToken",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "rejected"}, ":r": {"S": reason}},
        )
        sfn.send_task_failure(taskToken=item["taskToken"], error="CampaignRejected", cause=reason)
    return {"campaignId": campaign_id, "approved" if approve else "rejected": True}


def cmd_pause(args: argparse.Namespace) -> int:
    result = pause(inputs.resolve_target(args), args.campaign_id)
    emit(args, result, f"campaign {args.campaign_id}: pausing at the next batch boundary")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    result = cancel(inputs.resolve_target(args), args.campaign_id)
    emit(args, result, f"campaign {args.campaign_id}: cancelling (it ends with a summary)")
    return EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    result = resume(inputs.resolve_target(args), args.campaign_id)
    if "executionArn" in result:
        name = result["executionArn"].rsplit(":", 1)[-1]
        emit(args, result, f"campaign {args.campaign_id}: resumed in a new execution {name}")
    else:
        emit(args, result, f"campaign {args.campaign_id}: resumed")
    return EXIT_OK


def answer_approval(args: argparse.Namespace, approve: bool) -> int:
    result = answer(inputs.resolve_target(args), args.campaign_id, approve, getattr(args, "reason", None))
    verb = "approved" if approve else "rejected"
    emit(args, result, f"campaign {args.campaign_id}: {verb}")
    return EXIT_OK


def cmd_pick_winner(args: argparse.Namespace) -> int:
    """Pick the A/B winner by hand (``abTest.pick: manual``, or before the automatic decision):
    the rest of the list gets it; the campaign's wait ends at once."""
    from sesflow_aws import campaign_flow
    from sesflow_core.campaign import abtest

    target = inputs.resolve_target(args)
    item = campaign(target, args.campaign_id)
    plan = item.get("plan") or {}
    ids_ = [str(v["id"]) for v in plan.get("variants") or []]
    if not ids_:
        raise UsageError(f"campaign {args.campaign_id} has no A/B variants")
    if args.variant not in ids_:
        raise UsageError(f"variant {args.variant!r} is not one of {', '.join(ids_)}")
    if item.get("abDecision"):
        raise UsageError(f"campaign {args.campaign_id}: {item['abDecision']['winner']} was chosen already")
    counters_ = {vid: dict(counters(target, args.campaign_id, f"0#variant#{vid}")) for vid in ids_}
    decision = {
        "winner": args.variant,
        "by": "manual",
        "reason": args.reason or "picked by an operator",
        "metric": (plan.get("abTest") or {}).get("metric"),
        "variants": abtest.rates(counters_, ids_),
    }
    chosen = campaign_flow.record_ab_decision(
        target.clients.client("dynamodb"),
        target.clients.client("events"),
        target.outputs["CampaignsTableName"],
        target.outputs["EventBusName"],
        args.campaign_id,
        decision,
    )
    if not chosen:
        raise UsageError(f"campaign {args.campaign_id}: a winner was chosen meanwhile")
    wake(target, args.campaign_id)
    emit(
        args,
        {"campaignId": args.campaign_id, "winner": args.variant},
        f"campaign {args.campaign_id}: {args.variant} wins",
    )
    return EXIT_OK


def cmd_approve(args: argparse.Namespace) -> int:
    return answer_approval(args, approve=True)


def cmd_reject(args: argparse.Namespace) -> int:
    return answer_approval(args, approve=False)


def failures(target: Target, campaign_id: str) -> list[dict[str, Any]]:
    """Tracking items of the campaign that did not go well (failed, bounced, complained, or still
    ``sending``: a claim whose outcome was never recorded), plain."""
    ddb = target.clients.client("dynamodb")
    table = target.outputs["TrackingTableName"]
    keys: list[dict[str, Any]] = []
    for page in ddb.get_paginator("query").paginate(
        TableName=table,
        IndexName="byCampaign",
        KeyConditionExpression="campaignId = :c",
        ExpressionAttributeValues={":c": {"S": campaign_id}},
    ):
        keys.extend({"emailId": it["emailId"]} for it in page["Items"])
    rows = [to_plain(it) for it in batch_get(ddb, table, keys, ["emailId", "recipient", "status", "reason"])]
    return sorted(
        (r for r in rows if r.get("status") in ("failed", "bounced", "complained", "sending")),
        key=lambda r: r["emailId"],
    )


def cmd_report(args: argparse.Namespace) -> int:
    """Writes ``<id>-report.json`` and ``<id>-failures.csv`` into --out. JSON: the report."""
    target = inputs.resolve_target(args)
    item = campaign(target, args.campaign_id)
    report = item.get("summary") or progress(target, args.campaign_id)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.campaign_id}-report.json").write_text(json.dumps(report, indent=2))
    failed = failures(target, args.campaign_id)
    failures_csv = out / f"{args.campaign_id}-failures.csv"
    with open(failures_csv, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emailId", "recipient", "status", "reason"])
        for f in failed:
            writer.writerow([f.get("emailId"), f.get("recipient"), f.get("status"), f.get("reason", "")])
    emit(args, report, json.dumps(report, indent=2) + f"\n{len(failed)} failures -> {failures_csv}")
    return EXIT_OK


def register(add_parser: Callable[..., argparse.ArgumentParser], common: Callable[[], argparse.ArgumentParser]) -> None:
    p = add_parser("campaign", help="staged campaigns", parents=[common()])
    sub = p.add_subparsers(dest="campaign_command", required=True)
    q = sub.add_parser(
        "start", help="upload recipients and start a campaign (--wait: exit 1 unless it completes)", parents=[common()]
    )
    q.add_argument("--template", required=True)
    q.add_argument("--recipients", required=True, help="CSV with an 'email' column, or JSONL")
    q.add_argument("--campaign-id")
    q.add_argument("--topic", default="newsletter")
    q.add_argument("--data", help="campaign-level template variables: JSON or @file")
    q.add_argument("--stages", default="1,10,100", help="cumulative percentages, last 100")
    q.add_argument("--max-bounce-rate", type=float, default=0.05)
    q.add_argument("--max-complaint-rate", type=float, default=0.001)
    q.add_argument("--min-sample", type=int, default=20)
    q.add_argument("--observe-seconds", type=int, default=300)
    q.add_argument("--approval", choices=("auto", "manual"), default="auto")
    q.add_argument("--max-send-rate", type=float, help="default: the SES account's MaxSendRate")
    q.add_argument(
        "--batch-size", type=int, help="recipients per child execution (default: what a worker sends in 40 s, <= 250)"
    )
    q.add_argument("--wait", action="store_true", help="show progress until it ends or waits for approval")
    q.add_argument("--start-at", help="ISO 8601 with an offset, e.g. 2026-12-01T09:00:00+01:00 (at most a year ahead)")
    q.add_argument(
        "--window", help="send window in --timezone: '[DAYS ]HH:MM-HH:MM', e.g. 'mon,tue,wed,thu,fri 09:00-17:00'"
    )
    q.add_argument("--timezone", help="IANA zone of the window and the daily cap (default UTC)")
    q.add_argument("--daily-cap", type=int, help="at most this many emails per calendar day in --timezone")
    q.add_argument(
        "--variants",
        help='A/B variants (JSON or @file): [{"id": "A", "subject": "..."}, '
        '{"id": "B", "template": "...", "data": {...}}]',
    )
    q.add_argument(
        "--ab-test",
        help='with --variants: {"sample": 10, "metric": "open|click|lowest_complaint", "observeSeconds": 3600, '
        '"minSample": 100, "pick": "auto|manual"}',
    )
    q.add_argument("--time-scale", type=float, help="local stack only: seconds of campaign time per real second")
    q.add_argument("--clock-start", help="local stack only, with --time-scale: the campaign clock's start instant")
    q.set_defaults(func=cmd_start)
    commands: tuple[tuple[str, Callable[[argparse.Namespace], int], str], ...] = (
        ("status", cmd_status, "per-stage progress"),
        ("pause", cmd_pause, "stop at the next batch boundary"),
        ("resume", cmd_resume, "continue a paused or failed campaign"),
        ("cancel", cmd_cancel, "end it with a summary"),
    )
    for name, func, helptext in commands:
        q = sub.add_parser(name, help=helptext, parents=[common()])
        q.add_argument("campaign_id")
        q.set_defaults(func=func)
    for name, func in (("approve", cmd_approve), ("reject", cmd_reject)):
        q = sub.add_parser(name, help=f"{name} the next stage at a manual gate", parents=[common()])
        q.add_argument("campaign_id")
        q.add_argument("--reason")
        q.set_defaults(func=func)
    q = sub.add_parser("pick-winner", help="pick the A/B winner for the rest of the list", parents=[common()])
    q.add_argument("campaign_id")
    q.add_argument("variant")
    q.add_argument("--reason")
    q.set_defaults(func=cmd_pick_winner)
    q = sub.add_parser("report", help="report JSON and a CSV of failures", parents=[common()])
    q.add_argument("campaign_id")
    q.add_argument("--out", default=".")
    q.set_defaults(func=cmd_report)
