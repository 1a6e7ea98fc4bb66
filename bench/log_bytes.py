"""CloudWatch Logs ingestion per email, measured on the embedded local AWS.

    python -m bench.log_bytes

Runs 20 single sends through the send machine and a 500-recipient campaign (stages 1/10/100 %)
and prints, per email, the log events and bytes CloudWatch Logs would ingest, by source:

* each Lambda function: the platform events Lambda writes per invocation (``platform.start``
  and ``platform.report`` in the JSON log format the template sets, with the active-tracing
  ids; none at the default ``LogLevel=WARNING``, which maps to ``SystemLogLevel=WARN``), by
  formula, plus every line the handler wrote
  to stdout, counted by the local runtime (``lambda_runtime.log_stats``, ``"logs"`` of
  ``GET /_sesflow/stats``): Powertools Logger JSON lines by level and EMF metric lines;
* each state machine: one log event per history event (``GetExecutionHistory`` of the local
  stack, serialised as Step Functions writes it to CloudWatch Logs with
  ``IncludeExecutionData: false``) at level ALL, and the failure events only at level ERROR.

A log event is billed as its UTF-8 message plus 26 bytes; ingestion costs $0.50 per GB in
us-east-1 (Standard class; the first tier of vended logs, where Lambda and Step Functions logs
are billed, is the same $0.50). Cold starts (INIT_START, Init Duration) are left out: once per
execution environment, nil per email at volume.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sesflow import executions
from sesflow.local import control
from sesflow.target import Target, local_target

ROOT = Path(__file__).resolve().parent.parent

#: CloudWatch Logs: bytes billed per log event on top of its UTF-8 message
EVENT_OVERHEAD = 26
#: $ per GB ingested, us-east-1 (Standard; vended logs' first 10 TB)
INGEST_PER_GB = 0.50
GB = 2**30
NEWS = {"title": "T", "intro": "I", "articles": []}

#: history event types logged at level ERROR / FATAL (Step Functions developer guide, "Log
#: levels"; MapRunAborted/MapRunFailed as in moto's implementation of that table)
ERROR_EVENTS = frozenset(
    {
        "ExecutionAborted",
        "ExecutionFailed",
        "ExecutionTimedOut",
        "FailStateEntered",
        "LambdaFunctionFailed",
        "LambdaFunctionScheduleFailed",
        "LambdaFunctionStartFailed",
        "LambdaFunctionTimedOut",
        "MapIterationAborted",
        "MapIterationFailed",
        "MapRunAborted",
        "MapRunFailed",
        "MapStateAborted",
        "MapStateFailed",
        "ParallelStateAborted",
        "ParallelStateFailed",
        "TaskFailed",
        "TaskStartFailed",
        "TaskStateAborted",
        "TaskSubmitFailed",
        "TaskTimedOut",
        "WaitStateAborted",
    }
)
FATAL_EVENTS = frozenset({"ExecutionAborted", "ExecutionFailed", "ExecutionTimedOut"})
LEVELS = {"ALL": None, "ERROR": ERROR_EVENTS, "FATAL": FATAL_EVENTS}
#: execution data, left out of the log with IncludeExecutionData false
EXECUTION_DATA = ("input", "inputDetails", "output", "outputDetails")
#: Powertools levels dropped when the function log level is WARNING
BELOW_WARNING = ("DEBUG", "INFO")
#: the template's LogLevel -> Lambda system log level (Mappings.FunctionLogLevels)
SYSTEM_LEVEL = {"DEBUG": "DEBUG", "INFO": "INFO", "WARNING": "WARN", "ERROR": "WARN"}


def event_bytes(message: str) -> int:
    """What CloudWatch Logs bills for one log event."""
    return len(message.encode("utf-8")) + EVENT_OVERHEAD


def dollars_per_million(bytes_per_email: float) -> float:
    return bytes_per_email * 1e6 / GB * INGEST_PER_GB


# ---------------------------------------------------------------- Lambda platform lines
def platform_lines(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None = None,
    trace_id: str | None = None,
) -> list[str]:
    """The system log events of one invocation at SystemLogLevel INFO in the JSON log format
    (the template's ``LoggingConfig``): ``platform.start`` and ``platform.report`` (at WARN,
    the template's default, neither is written)."""
    at = "2026-12-07T07:00:00.000Z"
    tracing = (
        {
            "tracing": {
                "spanId": "0" * 16,
                "type": "X-Amzn-Trace-Id",
                "value": f"Root={trace_id};Parent={'0' * 16};Sampled=1",
            }
        }
        if trace_id is not None
        else {}
    )
    metrics: dict[str, Any] = {
        "durationMs": round(duration_ms, 3),
        "billedDurationMs": math.ceil(duration_ms),
        "memorySizeMB": memory_mb,
        "maxMemoryUsedMB": max_memory_used_mb,
    }
    if init_duration_ms is not None:
        metrics["initDurationMs"] = round(init_duration_ms, 3)
    start = {"time": at, "type": "platform.start", "record": {"requestId": request_id, "version": "$LATEST", **tracing}}
    report = {
        "time": at,
        "type": "platform.report",
        "record": {"requestId": request_id, "metrics": metrics, **tracing, "status": "success"},
    }
    return [json.dumps(start, separators=(",", ":")) + "\n", json.dumps(report, separators=(",", ":")) + "\n"]


#: platform events per invocation at SystemLogLevel INFO (``platform_lines``)
PLATFORM_EVENTS = 2


def platform_bytes(duration_ms: float, memory_mb: int, max_memory_used_mb: int = 90, tracing: bool = True) -> int:
    """Billed bytes of one warm invocation's platform events (request ids are 36 characters)."""
    trace_id = f"1-{'0' * 8}-{'0' * 24}" if tracing else None
    lines = platform_lines(str(uuid.UUID(int=0)), duration_ms, memory_mb, max_memory_used_mb, trace_id=trace_id)
    return sum(event_bytes(line) for line in lines)


# ---------------------------------------------------------------- Step Functions records
def _millis(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(float(value) * 1000) if isinstance(value, float) else int(value)


def sfn_record(event: dict[str, Any], execution_arn: str, redrive_count: int = 0) -> str:
    """One history event as Step Functions logs it to CloudWatch Logs (IncludeExecutionData
    false): compact JSON, every scalar field a string."""
    details: dict[str, Any] = {}
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            details = {k: v for k, v in value.items() if k not in EXECUTION_DATA}
    record = {
        "id": str(event["id"]),
        "type": event["type"],
        "details": details,
        "previous_event_id": str(event.get("previousEventId", 0)),
        "event_timestamp": str(_millis(event["timestamp"])),
        "execution_arn": execution_arn,
        "redrive_count": str(redrive_count),
    }
    return json.dumps(record, separators=(",", ":"), default=str)


def express_arn(execution_arn: str) -> str:
    """The ARN an Express execution has in AWS (the local stack runs every machine as Standard):
    ``...:express:<machine>:<name>:<execution id>``."""
    return execution_arn.replace(":execution:", ":express:", 1) + f":{uuid.uuid4()}"


def machine_log(events: Iterable[dict[str, Any]], execution_arn: str) -> dict[str, dict[str, int]]:
    """Events and billed bytes of one execution's log, per level."""
    out = {level: {"events": 0, "bytes": 0} for level in LEVELS}
    for event in events:
        size = event_bytes(sfn_record(event, execution_arn))
        for level, types in LEVELS.items():
            if types is None or event["type"] in types:
                out[level]["events"] += 1
                out[level]["bytes"] += size
    return out


def _add(total: dict[str, dict[str, int]], part: dict[str, dict[str, int]]) -> None:
    for level, counts in part.items():
        entry = total.setdefault(level, {"events": 0, "bytes": 0})
        entry["events"] += counts["events"]
        entry["bytes"] += counts["bytes"]


# ---------------------------------------------------------------- the local stack
def stats(target: Target, reset: bool = False) -> dict[str, Any]:
    """``GET /_sesflow/stats`` of a local stack (``reset``: and start counting again)."""
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


def logical_name(function_name: str) -> str:
    match = re.search(r"([A-Za-z0-9]+Function)", function_name)
    return match.group(1) if match else function_name


def function_logs(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per function (logical name): invocations, platform events/bytes and handler lines by kind."""
    logs: dict[str, dict[str, int]] = st.get("logs") or {}
    if not logs and st.get("lambda"):
        raise RuntimeError("GET /_sesflow/stats has no 'logs' (sesflow.local.lambda_runtime.log_stats)")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(logs.items()):
        count, total_ms, memory = st["lambda"].get(name, [entry["invocations"], 0.0, 256])
        invocations = int(entry["invocations"])
        per_invocation = platform_bytes(total_ms / max(count, 1), int(memory))
        kinds: dict[str, dict[str, int]] = {}
        for key, value in entry.items():
            if "." in key:
                kind, measure_ = key.split(".", 1)
                kinds.setdefault(kind, {"events": 0, "bytes": 0})[measure_] = value
        out[logical_name(name)] = {
            "invocations": invocations,
            "platform": {"events": PLATFORM_EVENTS * invocations, "bytes": per_invocation * invocations},
            "handler": kinds,
        }
    return out


def child_events(parameters: dict[str, Any], role_arn: str, region: str, started_ms: int) -> list[dict[str, Any]]:
    """The history of one Distributed Map child execution that sent its batch (``SendBatch``
    succeeded at once): the local interpreter runs the children inline, without a history."""
    lambda_details = {"resourceType": "lambda", "resource": "invoke"}
    kinds: list[tuple[str, str, dict[str, Any]]] = [
        ("ExecutionStarted", "executionStartedEventDetails", {"roleArn": role_arn}),
        ("TaskStateEntered", "stateEnteredEventDetails", {"name": "SendBatch"}),
        (
            "TaskScheduled",
            "taskScheduledEventDetails",
            {**lambda_details, "region": region, "parameters": json.dumps(parameters), "timeoutInSeconds": 60},
        ),
        ("TaskStarted", "taskStartedEventDetails", lambda_details),
        ("TaskSucceeded", "taskSucceededEventDetails", lambda_details),
        ("TaskStateExited", "stateExitedEventDetails", {"name": "SendBatch"}),
        ("ExecutionSucceeded", "executionSucceededEventDetails", {}),
    ]
    return [
        {"id": i, "type": etype, key: details, "previousEventId": i - 1, "timestamp": started_ms + i}
        for i, (etype, key, details) in enumerate(kinds, start=1)
    ]


def _campaign_children(target: Target, cid: str, parent_events: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The log of the campaign's child executions (one per batch of the stage manifests in S3),
    Express in AWS, logged with the parent's logging configuration."""
    s3 = target.clients.client("s3")
    bucket = target.outputs["CampaignsBucketName"]
    started = next(e for e in parent_events if e["type"] == "ExecutionStarted")
    role_arn = started.get("executionStartedEventDetails", {}).get("roleArn", "")
    parent_arn = str(target.outputs["CampaignStateMachineArn"])
    region, account = parent_arn.split(":")[3:5]
    function_arn = f"arn:aws:lambda:{region}:{account}:function:{target.function_name('CampaignSendBatchFunction')}"
    total: dict[str, dict[str, int]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"campaigns/{cid}/stage-"):
        for obj in page.get("Contents", []):
            items = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            for item in items if isinstance(items, list) else []:
                payload = {
                    "batch": item,
                    "template": "newsletter",
                    "topic": "newsletter",
                    "data": NEWS,
                    "workerRate": 14.0,
                }
                events = child_events({"FunctionName": function_arn, "Payload": payload}, role_arn, region, 0)
                child_arn = parent_arn.replace(":stateMachine:", ":express:") + f"/CampaignBatches:{uuid.uuid4()}"
                _add(total, machine_log(events, f"{child_arn}:{uuid.uuid4()}"))
    return total


def _history(sfn: Any, arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn, includeExecutionData=False):
        events.extend(page["events"])
    return events


def _histories(sfn: Any, arns: list[str], express: bool) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for arn in arns:
        _add(total, machine_log(_history(sfn, arn), express_arn(arn) if express else arn))
    return total


def _declared_express(target: Target, machine_arn: str) -> bool:
    return bool(target.state.get("declaredWorkflowTypes", {}).get(machine_arn) == "EXPRESS")


def single_sends(target: Target, n: int = 20) -> dict[str, Any]:
    stats(target, reset=True)
    sfn = target.clients.client("stepfunctions")
    machine = target.outputs["SendStateMachineArn"]
    req = json.loads((ROOT / "events" / "send-welcome.json").read_text())
    arns = []
    for i in range(n):
        arn = executions.start(sfn, machine, req | {"emailId": f"logs-{i}"})
        executions.wait(sfn, arn)
        arns.append(arn)
    drain(target)
    express = _declared_express(target, machine)
    return {
        "emails": n,
        "machine": "send",
        "machineType": "EXPRESS" if express else "STANDARD",
        "functions": function_logs(stats(target)),
        "machineLog": _histories(sfn, arns, express),
    }


def campaign(target: Target, n: int = 500, stages: list[float] | None = None) -> dict[str, Any]:
    from bench.campaign import run_campaign  # (bench.campaign imports this module)

    stats(target, reset=True)
    cid = f"logs-{uuid.uuid4().hex[:8]}"
    report = run_campaign(target, n, stages or [1, 10, 100], cid)
    sfn = target.clients.client("stepfunctions")
    arn = report["executionArn"]
    drain(target)
    parent = _history(sfn, arn)
    return {
        "emails": int(report["totals"]["accepted"]),
        "machine": "campaign",
        "machineType": "STANDARD",
        "functions": function_logs(stats(target)),
        "machineLog": machine_log(parent, arn),
        "childLog": _campaign_children(target, cid, parent),
    }


def measure(target: Target, sends: int = 20, recipients: int = 500) -> dict[str, Any]:
    """Log events and bytes of ``sends`` single sends and of a ``recipients`` campaign (see
    :func:`summary` for the per-email figures and dollars)."""
    runs = {"single": single_sends(target, sends), "campaign": campaign(target, recipients)}
    for run in runs.values():
        run["summary"] = summary(run)
    return runs


# ---------------------------------------------------------------- figures
def template_log_levels() -> tuple[str, str]:
    """The template's default ``LogLevel`` and the Lambda system log level it maps to
    (``Mappings.FunctionLogLevels``): what a deployed stack logs unless told otherwise."""
    from sesflow import cfn_yaml

    template = cfn_yaml.load_template(ROOT / "template.yaml")
    level = str(template["Parameters"]["LogLevel"]["Default"])
    return level, str(template["Mappings"]["FunctionLogLevels"][level]["System"])


def function_bytes(run: dict[str, Any], level: str = "INFO", system: str = "INFO") -> tuple[int, int]:
    """Events and bytes of every function of a run at a function log level (INFO or WARNING)
    and a Lambda system log level (``WARN`` leaves out the START/END/REPORT lines)."""
    dropped = BELOW_WARNING if level == "WARNING" else ("DEBUG",)
    events = bytes_ = 0
    for fn in run["functions"].values():
        if system != "WARN":
            events += fn["platform"]["events"]
            bytes_ += fn["platform"]["bytes"]
        for kind, counts in fn["handler"].items():
            if kind not in dropped:
                events += counts["events"]
                bytes_ += counts["bytes"]
    return events, bytes_


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """Per email: events and bytes by source, and $ per 1,000,000 emails by log level."""
    emails = max(run["emails"], 1)
    machine: dict[str, dict[str, int]] = {}
    _add(machine, run["machineLog"])
    _add(machine, run.get("childLog", {}))
    # LogLevel INFO keeps Lambda's platform lines, WARNING leaves them out (FunctionLogLevels)
    functions = {level: function_bytes(run, level, SYSTEM_LEVEL[level]) for level in ("INFO", "WARNING")}
    return {
        "emails": run["emails"],
        "machineEventsPerEmail": {lv: c["events"] / emails for lv, c in machine.items()},
        "machineBytesPerEmail": {lv: c["bytes"] / emails for lv, c in machine.items()},
        "functionEventsPerEmail": {lv: e / emails for lv, (e, _) in functions.items()},
        "functionBytesPerEmail": {lv: b / emails for lv, (_, b) in functions.items()},
        "dollarsPerMillion": {
            **{f"machine {lv}": dollars_per_million(c["bytes"] / emails) for lv, c in machine.items()},
            **{f"functions {lv}": dollars_per_million(b / emails) for lv, (_, b) in functions.items()},
        },
    }


#: the levels printed (FATAL is in :func:`measure`'s result)
PRINTED_LEVELS = ("ALL", "ERROR")


def _rows(run: dict[str, Any]) -> list[tuple[str, float, float]]:
    emails = max(run["emails"], 1)
    rows = []
    for name, fn in run["functions"].items():
        per_inv = fn["invocations"] / emails
        rows.append((f"{name}: platform start/report at INFO ({per_inv:.3f} inv.)", *_per(fn["platform"], emails)))
        for kind, counts in sorted(fn["handler"].items()):
            label = {"EMF": "EMF metric lines", "other": "other stdout lines"}.get(kind, f"Powertools {kind} lines")
            rows.append((f"{name}: {label}", *_per(counts, emails)))
    for level in PRINTED_LEVELS:
        rows.append((f"{run['machine']} machine at {level}", *_per(run["machineLog"][level], emails)))
        if "childLog" in run:
            rows.append(
                (f"{run['machine']} machine at {level}: child executions", *_per(run["childLog"][level], emails))
            )
    return rows


def _per(counts: dict[str, int], emails: int) -> tuple[float, float]:
    return counts["events"] / emails, counts["bytes"] / emails


def print_run(title: str, run: dict[str, Any]) -> None:
    s = run["summary"]
    print(f"\n{title}")
    rows = _rows(run)
    width = max(len(label) for label, _, _ in rows) + 2
    print(f"  {'source':<{width}}{'events/email':>13}{'bytes/email':>13}")
    for label, events, bytes_ in rows:
        print(f"  {label:<{width}}{events:>13.3f}{bytes_:>13.1f}")
    d = s["dollarsPerMillion"]
    print("  $ per 1,000,000 emails (log ingestion):")
    for level in ("INFO", "WARNING"):
        per_email = s["functionBytesPerEmail"][level]
        print(f"    {'functions at ' + level:<26}{per_email:9.1f} B/email  ${d['functions ' + level]:7.3f}")
    for level in PRINTED_LEVELS:
        print(
            f"    {run['machine'] + ' machine at ' + level:<26}{s['machineBytesPerEmail'][level]:9.1f} B/email  "
            f"${d['machine ' + level]:7.3f}"
        )


def print_report(runs: dict[str, Any]) -> None:
    print(
        f"CloudWatch Logs ingestion per email: UTF-8 message + {EVENT_OVERHEAD} B per event, "
        f"${INGEST_PER_GB:.2f}/GB (2^30 B) ingested, us-east-1"
    )
    single = runs["single"]
    print_run(f"single sends: {single['emails']} through the send machine ({single['machineType']} in AWS)", single)
    camp = runs["campaign"]
    print_run(
        f"campaign: {camp['emails']} recipients, stages 1/10/100 % (Plan/Control functions and the parent "
        "machine are per campaign)",
        camp,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=20)
    parser.add_argument("--recipients", type=int, default=500)
    args = parser.parse_args(argv)
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-logs-"))
    control.up(ROOT, port=0, sdir=sdir)
    try:
        runs = measure(local_target(ROOT, sdir), args.sends, args.recipients)
    finally:
        control.down(ROOT, sdir=sdir)
    print_report(runs)


if __name__ == "__main__":
    main()
