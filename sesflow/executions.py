"""Start, wait for and explain Step Functions executions (same API locally and in AWS)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass
class StateRow:
    name: str
    type: str
    status: str = "running"
    entered: datetime | None = None
    exited: datetime | None = None
    attempts: int = 0
    error: str = ""
    cause: str = ""

    @property
    def retries(self) -> int:
        return max(0, self.attempts - 1)

    @property
    def duration_ms(self) -> float | None:
        if self.entered and self.exited:
            return (self.exited - self.entered).total_seconds() * 1000
        return None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["entered"] = self.entered.isoformat() if self.entered else None
        d["exited"] = self.exited.isoformat() if self.exited else None
        d["retries"] = self.retries
        d["durationMs"] = self.duration_ms
        return d


@dataclass
class ExecutionReport:
    arn: str
    name: str
    status: str
    output: Any = None
    error: str = ""
    cause: str = ""
    states: list[StateRow] = field(default_factory=list)
    events: int = 0
    transitions: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "executionArn": self.arn,
            "name": self.name,
            "status": self.status,
            "output": self.output,
            "error": self.error or None,
            "cause": self.cause or None,
            "historyEvents": self.events,
            "stateTransitions": self.transitions,
            "states": [s.as_dict() for s in self.states],
        }


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """The whole history, every page."""
    events: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(
        executionArn=execution_arn, includeExecutionData=True
    ):
        events.extend(page["events"])
    return events


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if key.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def state_rows(events: list[dict[str, Any]]) -> list[StateRow]:
    """Fold history events into one row per state visit."""
    rows: list[StateRow] = []
    open_rows: dict[str, StateRow] = {}
    current: StateRow | None = None
    for ev in events:
        etype: str = ev["type"]
        det = _details(ev)
        if etype.endswith("StateEntered"):
            current = StateRow(det.get("name", "?"), etype[: -len("StateEntered")], entered=ev["timestamp"])
            rows.append(current)
            open_rows[current.name] = current
        elif etype.endswith("StateExited"):
            row = open_rows.pop(det.get("name", ""), None)
            if row is not None:
                row.exited = ev["timestamp"]
                if row.status == "running":
                    row.status = "succeeded"
        elif current is not None and etype.endswith("Scheduled"):
            current.attempts += 1
        elif (
            current is not None
            and (etype.endswith("Failed") or etype.endswith("TimedOut"))
            and not etype.startswith("Execution")
        ):
            current.error = det.get("error", etype)
            current.cause = det.get("cause", "")
            current.status = "failed"
        elif current is not None and etype.endswith("Succeeded") and not etype.startswith("Execution"):
            if current.status == "failed":
                current.status = "running"  # a retry succeeded
                current.error = current.error and f"{current.error} (retried)"
    for row in rows:
        if row.status == "failed" and row.exited is not None:
            row.status = "caught"
    return rows


def report(sfn: Any, execution_arn: str) -> ExecutionReport:
    desc = sfn.describe_execution(executionArn=execution_arn)
    events = history(sfn, execution_arn)
    output = desc.get("output")
    try:
        output = json.loads(output) if output is not None else None
    except json.JSONDecodeError:
        pass
    rows = state_rows(events)
    return ExecutionReport(
        arn=execution_arn,
        name=desc["name"],
        status=desc["status"],
        output=output,
        error=desc.get("error", ""),
        cause=desc.get("cause", ""),
        states=rows,
        events=len(events),
        transitions=sum(1 + r.retries for r in rows),
    )


def wait(sfn: Any, execution_arn: str, timeout: float = 300.0) -> str:
    """Poll until the execution reaches any terminal status; return it."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        status: str = sfn.describe_execution(executionArn=execution_arn)["status"]
        if status in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still {status} after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def start(sfn: Any, machine_arn: str, payload: Any, name: str | None = None) -> str:
    resp = sfn.start_execution(
        stateMachineArn=machine_arn,
        name=name or str(uuid.uuid4()),
        input=json.dumps(payload),
    )
    arn: str = resp["executionArn"]
    return arn


def execution_arn(sfn: Any, machines: dict[str, str], name_or_arn: str) -> str:
    """Accept an execution ARN, or a name to look up in the stack's machines."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    for machine_arn in machines.values():
        candidate = machine_arn.replace(":stateMachine:", ":execution:") + ":" + name_or_arn
        try:
            sfn.describe_execution(executionArn=candidate)
            return candidate
        except sfn.exceptions.ExecutionDoesNotExist:
            continue
    raise LookupError(f"no execution named {name_or_arn!r} in this stack's state machines")


def format_table(rep: ExecutionReport) -> str:
    header = ("state", "type", "status", "ms", "retries", "error / cause")
    lines = [header]
    for r in rep.states:
        dur = f"{r.duration_ms:.0f}" if r.duration_ms is not None else "-"
        err = r.error + (f": {r.cause}" if r.cause else "")
        lines.append((r.name, r.type, r.status, dur, str(r.retries), err[:100]))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    out = []
    for line in lines:
        cells = [line[i].ljust(widths[i]) for i in range(len(widths))]
        out.append("  ".join([*cells, line[-1]]).rstrip())
    out.insert(1, "-" * min(120, max(len(x) for x in out)))
    out.append("")
    out.append(f"{rep.status}  {rep.name}  ({rep.transitions} state transitions, {rep.events} history events)")
    if rep.error:
        out.append(f"error: {rep.error}: {rep.cause}")
    return "\n".join(out)
