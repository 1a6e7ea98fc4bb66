"""What the console shows, read with the same AWS calls and helpers as the CLI (no second data layer).

Every function takes the :class:`~sesflow.target.Target` the CLI resolves (the local stack or
``--stack NAME``) and returns plain data for a page.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from sesflow_aws.dynamo import to_plain

from sesflow import executions
from sesflow.cli import campaign as campaign_cli
from sesflow.cli import send as send_cli
from sesflow.cli import suppression as suppression_cli
from sesflow.cli.output import UsageError
from sesflow.console import graph
from sesflow.target import Target

PAGE_SIZE = 50
#: at most this many of a machine's newest executions are searched by a part of their name
SEARCH_DEPTH = 1000


def machines(target: Target) -> dict[str, str]:
    """Logical id -> ARN of the stack's state machines, the send machine first."""
    found = target.logical_state_machines()
    return dict(sorted(found.items(), key=lambda kv: (not kv[0].startswith("Send"), kv[0])))


def machine_label(logical_id: str) -> str:
    return logical_id.removesuffix("StateMachine") or logical_id


# ---------------------------------------------------------------- executions
@dataclass
class ExecutionPage:
    machine: str
    rows: list[dict[str, Any]]
    next_token: str | None
    status: str | None
    query: str
    matches: list[dict[str, str]] = field(default_factory=list)  # emails/campaigns named like the query


def list_executions(
    target: Target, machine: str, status: str | None = None, token: str | None = None, query: str = ""
) -> ExecutionPage:
    """One page of a machine's executions, newest first (``status``: RUNNING, SUCCEEDED, FAILED...).

    With ``query``: the execution of that exact name on any machine, the email and the campaign
    with that id, and the executions among the machine's newest :data:`SEARCH_DEPTH` whose name
    contains it."""
    sfn = target.clients.client("stepfunctions")
    arn = machines(target)[machine]
    kwargs: dict[str, Any] = {"stateMachineArn": arn, "maxResults": PAGE_SIZE}
    if status:
        kwargs["statusFilter"] = status
    query = query.strip()
    if not query:
        if token:
            kwargs["nextToken"] = token
        resp = sfn.list_executions(**kwargs)
        return ExecutionPage(machine, [_row(e) for e in resp["executions"]], resp.get("nextToken"), status, query)
    rows: list[dict[str, Any]] = []
    kwargs["maxResults"] = 1000
    seen = 0
    for page in sfn.get_paginator("list_executions").paginate(**kwargs):
        for e in page["executions"]:
            seen += 1
            if query.lower() in e["name"].lower():
                rows.append(_row(e))
        if seen >= SEARCH_DEPTH or len(rows) >= PAGE_SIZE:
            break
    return ExecutionPage(machine, rows[:PAGE_SIZE], None, status, query, find(target, query))


def find(target: Target, name: str) -> list[dict[str, str]]:
    """Pages named exactly ``name``: executions (any machine), the email, the campaign."""
    found: list[dict[str, str]] = []
    sfn = target.clients.client("stepfunctions")
    for logical, arn in machines(target).items():
        candidate = arn.replace(":stateMachine:", ":execution:") + ":" + name
        try:
            sfn.describe_execution(executionArn=candidate)
        except (sfn.exceptions.ExecutionDoesNotExist, sfn.exceptions.InvalidArn):
            continue  # none; or a name no execution can have
        found.append({"kind": f"{machine_label(logical)} execution", "name": name, "arn": candidate})
    if send_cli.tracking_item(target, name) is not None:
        found.append({"kind": "email", "name": name})
    try:
        campaign_cli.campaign(target, name)
        found.append({"kind": "campaign", "name": name})
    except UsageError:  # no such campaign
        pass
    return found


def _row(e: dict[str, Any]) -> dict[str, Any]:
    start, stop = e.get("startDate"), e.get("stopDate")
    return {
        "name": e["name"],
        "arn": e["executionArn"],
        "status": e["status"],
        "start": start.isoformat(timespec="seconds") if start else "",
        "durationMs": (stop - start).total_seconds() * 1000 if start and stop else None,
    }


class Definitions:
    """State machine definitions by ARN (they change only with a deployment: read once)."""

    def __init__(self) -> None:
        self._cache: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, target: Target, machine_arn: str) -> dict[str, Any]:
        with self._lock:
            if machine_arn not in self._cache:
                desc = target.clients.client("stepfunctions").describe_state_machine(stateMachineArn=machine_arn)
                self._cache[machine_arn] = json.loads(desc["definition"])
            return self._cache[machine_arn]


DEFINITIONS = Definitions()


def execution(target: Target, arn: str) -> dict[str, Any]:
    """One execution: its graph(s) with the path, the state visits, the history, links to emails."""
    sfn = target.clients.client("stepfunctions")
    desc = sfn.describe_execution(executionArn=arn)
    events = executions.history(sfn, arn)
    rows = executions.state_rows(events)
    definition = DEFINITIONS.get(target, desc["stateMachineArn"])
    logical = next((k for k, v in machines(target).items() if v == desc["stateMachineArn"]), "")
    gs = graph.graphs(definition, machine_label(logical) or "state machine")
    visits, taken = graph.visits_from_rows(rows, desc["status"], graph.all_edges(gs))
    svgs = [(g.title, graph.svg(g, visits, taken)) for g in gs]
    return {
        "arn": arn,
        "name": desc["name"],
        "machine": logical,
        "status": desc["status"],
        "start": desc["startDate"],
        "stop": desc.get("stopDate"),
        "input": _pretty(desc.get("input")),
        "output": _pretty(desc.get("output")),
        "error": desc.get("error"),
        "cause": desc.get("cause"),
        "graphs": svgs,
        "states": [_state_row(r, events) for r in rows],
        "events": [_event_row(e, events[0]["timestamp"]) for e in events],
        "links": _links(logical, desc),
    }


def _pretty(text: str | None) -> str:
    if text is None:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        return text


def _state_row(row: executions.StateRow, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The row with its input (at entry) and output (at exit) from the history."""
    data = row.as_dict()
    for ev in events:
        det = ev.get("stateEnteredEventDetails") or {}
        if det.get("name") == row.name and ev["timestamp"] == row.entered:
            data["input"] = _pretty(det.get("input"))
        det = ev.get("stateExitedEventDetails") or {}
        if det.get("name") == row.name and ev["timestamp"] == row.exited:
            data["output"] = _pretty(det.get("output"))
    return data


def _event_row(ev: dict[str, Any], first: Any) -> dict[str, Any]:
    det = executions._details(ev)
    summary = {k: v for k, v in det.items() if k in ("name", "error", "cause", "resource", "resourceType")}
    return {
        "id": ev["id"],
        "type": ev["type"],
        "offsetMs": (ev["timestamp"] - first).total_seconds() * 1000,
        "at": ev["timestamp"].isoformat(timespec="milliseconds"),
        "summary": summary,
    }


def _links(logical: str, desc: dict[str, Any]) -> list[dict[str, str]]:
    """The email(s) or campaign an execution concerns (send: its emailId; campaign: its id)."""
    try:
        payload = json.loads(desc.get("input") or "{}")
    except ValueError:
        payload = {}
    links: list[dict[str, str]] = []
    if isinstance(payload, dict):
        if payload.get("emailId"):
            links.append({"kind": "email", "name": str(payload["emailId"])})
        if payload.get("campaignId"):
            links.append({"kind": "campaign", "name": str(payload["campaignId"])})
        if logical.startswith("Sequence") and payload.get("enrollmentId"):
            links.append({"kind": "enrollment", "name": str(payload["enrollmentId"])})
    return links


# ---------------------------------------------------------------- emails
class Outbox:
    """The local SES's outbox, indexed by emailId (re-read when files are added)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._index: dict[str, list[str]] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _refresh(self) -> list[str]:
        if self.folder is None or not self.folder.is_dir():
            return []
        stems = sorted(p.stem for p in self.folder.glob("*.json"))
        for stem in stems:
            if stem not in self._meta:
                meta = json.loads((self.folder / f"{stem}.json").read_text())
                self._meta[stem] = meta
                email_id = (meta.get("tags") or {}).get("emailId")
                if email_id:
                    self._index.setdefault(email_id, []).append(stem)
        return stems

    def page(self, offset: int, size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], int]:
        """Newest first: ``size`` entries from ``offset``, and how many there are."""
        with self._lock:
            stems = self._refresh()[::-1]
            rows = []
            for stem in stems[offset : offset + size]:
                meta = self._meta[stem]
                head = self.message(stem, headers_only=True)
                rows.append(
                    {
                        "stem": stem,
                        "messageId": meta.get("messageId") or stem.split("-", 1)[-1],
                        "emailId": (meta.get("tags") or {}).get("emailId", ""),
                        "to": ", ".join(meta.get("destinations") or []) or str(head["To"] or ""),
                        "subject": str(head["Subject"] or ""),
                        "date": str(head["Date"] or ""),
                        "configurationSet": meta.get("configurationSet", ""),
                    }
                )
            return rows, len(stems)

    def stems_for(self, email_id: str) -> list[str]:
        with self._lock:
            self._refresh()
            assert self.folder is not None or not self._index
            return [s for s in self._index.get(email_id, []) if self.folder and (self.folder / f"{s}.eml").is_file()]

    def message(self, stem: str, headers_only: bool = False) -> EmailMessage:
        if self.folder is None or "/" in stem or not (self.folder / f"{stem}.eml").is_file():
            raise KeyError(stem)
        raw = (self.folder / f"{stem}.eml").read_bytes()
        msg: EmailMessage = BytesParser(policy=policy.default).parsebytes(raw, headersonly=headers_only)
        return msg

    def raw(self, stem: str) -> bytes:
        self.message(stem, headers_only=True)  # KeyError when there is no such message
        assert self.folder is not None
        return (self.folder / f"{stem}.eml").read_bytes()


def message_view(msg: EmailMessage) -> dict[str, Any]:
    """Headers, text part, HTML part and attachments' names of a message (never evaluated)."""
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    return {
        "headers": [(k, str(v)) for k, v in msg.items()],
        "listUnsubscribe": str(msg["List-Unsubscribe"] or ""),
        "listUnsubscribePost": str(msg["List-Unsubscribe-Post"] or ""),
        "html": html.get_content() if html is not None else None,
        "text": text.get_content() if text is not None else None,
        "attachments": [part.get_filename() or part.get_content_type() for part in msg.iter_attachments()],
    }


def email(target: Target, email_id: str, outbox: Outbox) -> dict[str, Any] | None:
    """One email's story: the tracking item, the executions that handled it, the suppression
    entries of its recipient, the message as sent (local only), on one time line."""
    item = send_cli.tracking_item(target, email_id)
    if item is None:
        return None
    view = send_cli.status_view(item)
    sfn = target.clients.client("stepfunctions")
    machine_arn = target.outputs.get("SendStateMachineArn", "")
    runs = []
    if machine_arn:
        arn = machine_arn.replace(":stateMachine:", ":execution:") + ":" + email_id
        try:
            desc = sfn.describe_execution(executionArn=arn)
            rows = executions.state_rows(executions.history(sfn, arn))
            runs.append({"arn": arn, "name": desc["name"], "status": desc["status"], "rows": rows})
        except sfn.exceptions.ExecutionDoesNotExist:
            pass
    recipient = str(item.get("recipient") or "")
    suppression: list[dict[str, Any]] = []
    if recipient:
        try:
            address = suppression_cli.normalized_address(recipient)
        except UsageError:  # a recipient that is not an address (a rejected request)
            address = ""
        suppression = suppression_cli.entries(target, address) if address else []
    timeline = _timeline(view, runs, suppression)
    stems = outbox.stems_for(email_id)
    return {
        "emailId": email_id,
        "item": {k: v for k, v in view.items() if k not in ("timeline",)},
        "timeline": timeline,
        "executions": [{k: v for k, v in r.items() if k != "rows"} for r in runs],
        "suppression": suppression,
        "messages": stems,
        "message": message_view(outbox.message(stems[-1])) if stems else None,
    }


def _timeline(
    view: dict[str, Any], runs: list[dict[str, Any]], suppression: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every dated thing about the email, oldest first, with its source."""
    from datetime import datetime

    rows: list[dict[str, Any]] = []

    def add(at: Any, source: str, what: str, detail: str = "") -> None:
        if not at:
            return
        when = at if isinstance(at, datetime) else _parse_time(str(at))
        if when is not None:
            rows.append({"at": when, "source": source, "what": what, "detail": detail})

    add(
        view.get("createdAt") or view.get("sendStartedAt"),
        "request",
        "request recorded",
        f"template {view.get('template', '')}",
    )
    for e in view.get("timeline", []):
        extra = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "at"))
        source = "SES" if str(e.get("event", "")).lower() in _SES_EVENTS else "status"
        add(e.get("at"), source, str(e.get("event", "")), extra)
    for run in runs:
        for r in run["rows"]:
            detail = f"{r.retries} retries" if r.retries else ""
            if r.error:
                detail = (detail + "; " if detail else "") + r.error
            add(r.entered, "state", f"{r.name} ({r.status})", detail)
    for s in suppression:
        add(
            s.get("firstSeen") or s.get("lastSeen"),
            "suppression",
            f"suppressed for {s.get('topic')}",
            f"{s.get('reason', '')} (source: {s.get('source', '?')})",
        )
    rows.sort(key=lambda r: r["at"])
    first = rows[0]["at"] if rows else None
    for r in rows:
        r["offset"] = (r["at"] - first).total_seconds() if first else 0.0
        r["at"] = r["at"].isoformat(timespec="milliseconds")
    return rows


_SES_EVENTS = {
    "send",
    "delivery",
    "bounce",
    "complaint",
    "reject",
    "open",
    "click",
    "renderingfailure",
    "deliverydelay",
    "subscription",
}


def _parse_time(text: str) -> Any:
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except ValueError:
            return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---------------------------------------------------------------- campaigns
def campaigns(target: Target) -> list[dict[str, Any]]:
    """Every campaign (newest first): id, status, template, created, planned."""
    ddb = target.clients.client("dynamodb")
    rows = []
    for page in ddb.get_paginator("scan").paginate(
        TableName=target.outputs["CampaignsTableName"],
        ProjectionExpression="campaignId, #s, createdAt, haltReason, #p.counts",
        ExpressionAttributeNames={"#s": "status", "#p": "plan"},
    ):
        for raw in page["Items"]:
            it = to_plain(raw)
            if str(it.get("campaignId", "")).startswith("fault#"):
                continue
            rows.append(
                {
                    "campaignId": it["campaignId"],
                    "status": it.get("status", ""),
                    "createdAt": it.get("createdAt", ""),
                    "reason": it.get("haltReason", ""),
                    "valid": ((it.get("plan") or {}).get("counts") or {}).get("valid"),
                }
            )
    return sorted(rows, key=lambda r: str(r["createdAt"]), reverse=True)


def campaign(target: Target, campaign_id: str) -> dict[str, Any]:
    """``sesflow campaign status --json`` plus the gate's thresholds and the actions allowed now."""
    item = campaign_cli.campaign(target, campaign_id)
    progress = campaign_cli.progress(target, campaign_id)
    plan = item.get("plan") or {}
    gate = plan.get("gate") or {}
    status = progress.get("status")
    control = progress.get("control")
    running = status not in campaign_cli.TERMINAL
    actions = []
    if status == "awaiting-approval":
        actions += ["approve", "reject"]
    if running and control != "paused" and status != "awaiting-approval":
        actions.append("pause")
    if (running and control == "paused") or status == "failed":
        actions.append("resume")
    if running:
        actions.append("cancel")
    windows = []
    for row in progress["stages"]:
        c = campaign_cli.counters(target, campaign_id, row["stage"])
        if c.get("firstSendAt") and c.get("lastSendAt"):
            windows.append((row["stage"], float(c["firstSendAt"]), float(c["lastSendAt"]), row["rate"]))
    return {
        "progress": progress,
        "gate": gate,
        "actions": actions,
        "executionArn": item.get("executionArn", ""),
        "template": (plan.get("template") or item.get("template") or ""),
        "windows": windows,
    }


def campaign_action(target: Target, campaign_id: str, action: str, reason: str | None = None) -> dict[str, Any]:
    if action == "pause":
        return campaign_cli.pause(target, campaign_id)
    if action == "resume":
        return campaign_cli.resume(target, campaign_id)
    if action == "cancel":
        return campaign_cli.cancel(target, campaign_id)
    if action in ("approve", "reject"):
        return campaign_cli.answer(target, campaign_id, action == "approve", reason)
    raise KeyError(action)
