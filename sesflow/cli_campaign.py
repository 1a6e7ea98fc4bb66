"""``sesflow campaign start|status|approve|reject|pause|resume|cancel|report``."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sesflow_core import ids

from sesflow import cli

TERMINAL = {"completed", "halted", "cancelled", "rejected", "failed"}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: int(v) if isinstance(v, Decimal) and v == int(v)
                                 else float(v) if isinstance(v, Decimal) else sorted(v) if isinstance(v, set)
                                 else str(v)))


def campaign(target: Any, campaign_id: str) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    item = target.clients.client("dynamodb").get_item(
        TableName=target.outputs["CampaignsTableName"], Key={"campaignId": {"S": campaign_id}},
        ConsistentRead=True).get("Item")
    if not item:
        raise cli.UsageError(f"no campaign {campaign_id!r}")
    des = TypeDeserializer()
    result: dict[str, Any] = _plain({k: des.deserialize(v) for k, v in item.items()})
    return result


def counters(target: Any, campaign_id: str, stage: int) -> dict[str, float]:
    item = target.clients.client("dynamodb").get_item(
        TableName=target.outputs["TrackingTableName"],
        Key={"emailId": {"S": ids.stage_counter_key(campaign_id, stage)}}, ConsistentRead=True).get("Item", {})
    return {k: float(v["N"]) for k, v in item.items() if "N" in v}


def progress(target: Any, campaign_id: str) -> dict[str, Any]:
    """Per stage: planned, sent (accepted by SES), suppressed, failed, bounced, complained, rate, ETA."""
    item = campaign(target, campaign_id)
    plan = item.get("plan", {})
    rows, total_planned, total_done = [], 0, 0
    for st in plan.get("stages", []):
        c = counters(target, campaign_id, int(st["index"]))
        done = int(c.get("accepted", 0) + c.get("suppressed", 0) + c.get("failed", 0) + c.get("duplicates", 0))
        window = c.get("lastSendAt", 0) - c.get("firstSendAt", 0)
        rate = c.get("accepted", 0) / window if window > 0 else 0.0
        remaining = max(0, int(st["planned"]) - done)
        rows.append({"stage": int(st["index"]), "percent": st.get("percent"), "planned": int(st["planned"]),
                     "sent": int(c.get("accepted", 0)), "suppressed": int(c.get("suppressed", 0)),
                     "failed": int(c.get("failed", 0)), "bounced": int(c.get("bounced", 0)),
                     "complained": int(c.get("complained", 0)),
                     "throttled": int(c.get("throttled", 0)), "rate": round(rate, 2),
                     "etaSeconds": (round(remaining / rate, 1) if rate else None) if remaining else 0})
        total_planned += int(st["planned"])
        total_done += min(done, int(st["planned"]))
    return {"campaignId": campaign_id, "status": item.get("status"), "control": item.get("control"),
            "reason": item.get("haltReason"), "planned": total_planned, "done": total_done,
            "counts": plan.get("counts", {}), "maxSendRate": plan.get("maxSendRate"), "stages": rows,
            "gates": item.get("gates", []), "mergedEmptyStages": plan.get("mergedEmptyStages", [])}


def _status_text(p: dict[str, Any]) -> str:
    lines = [f"campaign {p['campaignId']}: {p['status']}" + (f" ({p['reason']})" if p.get("reason") else "")]
    c = p.get("counts") or {}
    if c:
        lines.append(f"  rows {c.get('rows')}, valid {c.get('valid')}, invalid {c.get('invalid')}, "
                     f"duplicates {c.get('duplicates')}, suppressed at planning {c.get('suppressed')}")
    lines.append("  stage  pct    planned  sent   suppr  failed bounced compl  rate/s  ETA")
    for s in p["stages"]:
        eta = "-" if s["etaSeconds"] in (None, 0) else f"{s['etaSeconds']:.0f}s"
        lines.append(f"  {s['stage']:<6} {s['percent'] or 0:>5.1f}  {s['planned']:>7}  {s['sent']:>5}  "
                     f"{s['suppressed']:>5}  {s['failed']:>6} {s['bounced']:>7} {s['complained']:>5}  "
                     f"{s['rate']:>6.1f}  {eta}")
    for g in p.get("gates", []):
        lines.append(f"  gate after stage {g['stage']}: {g['action']} - {g['reason']}"
                     + (" (WARNING: decided on too small a sample)" if g.get("insufficient_sample") else ""))
    if p.get("mergedEmptyStages"):
        lines.append(f"  stages merged into the next (no recipient fell in them): {p['mergedEmptyStages']}")
    return "\n".join(lines)


def _bar(p: dict[str, Any], started: float) -> str:
    total = max(1, p["planned"])
    frac = p["done"] / total
    elapsed = time.monotonic() - started
    eta = (elapsed / frac - elapsed) if frac > 0 else None
    filled = int(frac * 30)
    return (f"\r[{'#' * filled}{'.' * (30 - filled)}] {p['done']}/{p['planned']} {frac:4.0%} "
            f"{p['status'] or '':<18} ETA {'-' if eta is None else f'{eta:4.0f}s'}  ")


def wait_for(target: Any, campaign_id: str, execution_arn: str, show: bool, timeout: float = 3600) -> dict[str, Any]:
    sfn = target.clients.client("stepfunctions")
    started, deadline = time.monotonic(), time.monotonic() + timeout
    while True:
        status = sfn.describe_execution(executionArn=execution_arn)["status"]
        try:
            p = progress(target, campaign_id)
        except cli.UsageError:
            p = {"planned": 0, "done": 0, "status": "planning"}
        if show:
            sys.stderr.write(_bar(p, started))
            sys.stderr.flush()
        if status != "RUNNING" or p.get("status") == "awaiting-approval":
            if show:
                sys.stderr.write("\n")
            return {"executionStatus": status, **p}
        if time.monotonic() > deadline:
            raise TimeoutError(f"campaign {campaign_id} still running after {timeout:.0f}s")
        time.sleep(0.5)


def cmd_start(args: argparse.Namespace) -> int:
    target = cli._target(args)
    path = Path(args.recipients)
    if not path.is_file():
        raise cli.UsageError(f"--recipients: no such file {path}")
    default_id = f"{args.template}-{time.strftime('%Y%m%d-%H%M%S')}"
    campaign_id = args.campaign_id or re.sub(r"[^A-Za-z0-9_-]", "-", default_id)
    if not ids.is_campaign_id(campaign_id):
        raise cli.UsageError(f"--campaign-id must match {ids.CAMPAIGN_ID_PATTERN}")
    data = cli.load_json_arg(args.data, "--data") if args.data else {}
    key = f"uploads/{campaign_id}/{path.name}"
    target.clients.client("s3").upload_file(str(path), target.outputs["CampaignsBucketName"], key)
    payload: dict[str, Any] = {
        "campaignId": campaign_id, "template": args.template, "topic": args.topic,
        "recipients": {"key": key}, "data": data,
        "stages": [float(s) for s in args.stages.split(",")],
        "gate": {"maxBounceRate": args.max_bounce_rate, "maxComplaintRate": args.max_complaint_rate,
                 "minSample": args.min_sample, "observeSeconds": args.observe_seconds},
        "approval": args.approval, "batchSize": args.batch_size,
    }
    if args.max_send_rate:
        payload["maxSendRate"] = args.max_send_rate
    sfn = target.clients.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=target.outputs["CampaignStateMachineArn"], name=campaign_id,
                              input=json.dumps(payload))["executionArn"]
    if not args.wait:
        cli._print(args, {"campaignId": campaign_id, "executionArn": arn},
                   f"campaign {campaign_id} started ({arn})")
        return cli.EXIT_OK
    result = wait_for(target, campaign_id, arn, show=not args.json)
    cli._print(args, result, _status_text(result))
    return cli.EXIT_OK if result.get("status") in ("completed", "awaiting-approval") else cli.EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    p = progress(cli._target(args), args.campaign_id)
    cli._print(args, p, _status_text(p))
    return cli.EXIT_OK


def _control(args: argparse.Namespace, control: str, status: str | None = None) -> dict[str, Any]:
    target = cli._target(args)
    item = campaign(target, args.campaign_id)
    if item.get("status") in TERMINAL:
        raise cli.UsageError(f"campaign {args.campaign_id} is {item['status']}")
    names, values = {"#c": "control"}, {":c": {"S": control}}
    update = "SET #c = :c"
    if status:
        names["#s"], values[":s"] = "status", {"S": status}
        update += ", #s = :s"
    target.clients.client("dynamodb").update_item(
        TableName=target.outputs["CampaignsTableName"], Key={"campaignId": {"S": args.campaign_id}},
        UpdateExpression=update, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    return item


def cmd_pause(args: argparse.Namespace) -> int:
    _control(args, "paused")
    cli._print(args, {"campaignId": args.campaign_id, "control": "paused"},
               f"campaign {args.campaign_id}: pausing at the next batch boundary")
    return cli.EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    item = _control(args, "cancelled")
    if item.get("status") == "awaiting-approval" and item.get("taskToken"):
        cli._target(args).clients.client("stepfunctions").send_task_failure(
            taskToken=item["taskToken"], error="CampaignRejected", cause="cancelled by an operator")
    cli._print(args, {"campaignId": args.campaign_id, "control": "cancelled"},
               f"campaign {args.campaign_id}: cancelling (it ends with a summary)")
    return cli.EXIT_OK


def cmd_resume(args: argparse.Namespace) -> int:
    target = cli._target(args)
    item = campaign(target, args.campaign_id)
    sfn = target.clients.client("stepfunctions")
    execution = sfn.describe_execution(executionArn=item["executionArn"])
    if execution["status"] == "RUNNING":
        _control(args, "run", "running")
        cli._print(args, {"campaignId": args.campaign_id, "control": "run"}, f"campaign {args.campaign_id}: resumed")
        return cli.EXIT_OK
    if item.get("status") in ("completed", "halted", "rejected", "cancelled"):
        raise cli.UsageError(f"campaign {args.campaign_id} is {item['status']}; nothing to resume")
    # the execution died (failed, timed out, aborted): a new one re-uses the plan and the ledger
    name = f"{args.campaign_id}-resume-{int(time.time())}"
    arn = sfn.start_execution(stateMachineArn=target.outputs["CampaignStateMachineArn"], name=name,
                              input=execution["input"])["executionArn"]
    cli._print(args, {"campaignId": args.campaign_id, "executionArn": arn},
               f"campaign {args.campaign_id}: resumed in a new execution {name}")
    return cli.EXIT_OK


def _answer_approval(args: argparse.Namespace, approve: bool) -> int:
    target = cli._target(args)
    item = campaign(target, args.campaign_id)
    if item.get("status") != "awaiting-approval" or not item.get("taskToken"):
        raise cli.UsageError(f"campaign {args.campaign_id} is not waiting for approval ({item.get('status')})")
    sfn = target.clients.client("stepfunctions")
    table = target.outputs["CampaignsTableName"]
    ddb = target.clients.client("dynamodb")
    if approve:
        ddb.update_item(TableName=table, Key={"campaignId": {"S": args.campaign_id}},
                        UpdateExpression="SET #s = :s REMOVE taskToken", ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={":s": {"S": "running"}})
        sfn.send_task_success(taskToken=item["taskToken"], output=json.dumps({"approved": True}))
    else:
        ddb.update_item(TableName=table, Key={"campaignId": {"S": args.campaign_id}},
                        UpdateExpression="SET #s = :s, haltReason = :r REMOVE taskToken",
                        ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={":s": {"S": "rejected"},
                                                   ":r": {"S": args.reason or "rejected by an operator"}})
        sfn.send_task_failure(taskToken=item["taskToken"], error="CampaignRejected",
                              cause=args.reason or "rejected by an operator")
    verb = "approved" if approve else "rejected"
    cli._print(args, {"campaignId": args.campaign_id, verb: True}, f"campaign {args.campaign_id}: {verb}")
    return cli.EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    target = cli._target(args)
    item = campaign(target, args.campaign_id)
    report = item.get("summary") or progress(target, args.campaign_id)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.campaign_id}-report.json").write_text(json.dumps(report, indent=2))
    failures = _failures(target, args.campaign_id)
    with open(out / f"{args.campaign_id}-failures.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["emailId", "recipient", "status", "reason"])
        for f in failures:
            writer.writerow([f.get("emailId"), f.get("recipient"), f.get("status"), f.get("reason", "")])
    cli._print(args, report, json.dumps(report, indent=2) +
               f"\n{len(failures)} failures -> {out / (args.campaign_id + '-failures.csv')}")
    return cli.EXIT_OK


def _failures(target: Any, campaign_id: str) -> list[dict[str, Any]]:
    """Tracking items of the campaign that did not go well (failed, bounced, complained)."""
    from boto3.dynamodb.types import TypeDeserializer

    ddb = target.clients.client("dynamodb")
    table = target.outputs["TrackingTableName"]
    keys = []
    for page in ddb.get_paginator("query").paginate(
            TableName=table, IndexName="byCampaign", KeyConditionExpression="campaignId = :c",
            ExpressionAttributeValues={":c": {"S": campaign_id}}):
        keys.extend({"emailId": it["emailId"]} for it in page["Items"])
    des, out = TypeDeserializer(), []
    for i in range(0, len(keys), 100):
        request: dict[str, Any] = {table: {"Keys": keys[i:i + 100]}}
        while request:
            resp = ddb.batch_get_item(RequestItems=request)
            for it in resp["Responses"].get(table, []):
                row = {k: des.deserialize(v) for k, v in it.items()}
                if row.get("status") in ("failed", "bounced", "complained"):
                    out.append(row)
            request = resp.get("UnprocessedKeys") or {}
    return out


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("campaign", help="staged campaigns", parents=[common])
    csub = p.add_subparsers(dest="campaign_command", required=True)
    q = csub.add_parser("start", help="upload recipients and start a campaign", parents=[common])
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
    q.add_argument("--batch-size", type=int, default=50)
    q.add_argument("--wait", action="store_true", help="show a progress bar until it ends")
    q.set_defaults(func=cmd_start)
    for name, func, helptext in (("status", cmd_status, "per-stage progress"),
                                 ("pause", cmd_pause, "stop at the next batch boundary"),
                                 ("resume", cmd_resume, "continue a paused or failed campaign"),
                                 ("cancel", cmd_cancel, "end it with a summary")):
        q = csub.add_parser(name, help=helptext, parents=[common])
        q.add_argument("campaign_id")
        q.set_defaults(func=func)
    for name, approve in (("approve", True), ("reject", False)):
        q = csub.add_parser(name, help=f"{name} the next stage at a manual gate", parents=[common])
        q.add_argument("campaign_id")
        q.add_argument("--reason")
        q.set_defaults(func=lambda a, approve=approve: _answer_approval(a, approve))
    q = csub.add_parser("report", help="report JSON and a CSV of failures", parents=[common])
    q.add_argument("campaign_id")
    q.add_argument("--out", default=".")
    q.set_defaults(func=cmd_report)


cli.EXTRA_COMMANDS.append(register)
