"""Nobody twice, nobody lost: single sends and campaigns under seeded, random faults.

    python -m bench.chaos [--seed N] [--sends 1000] [--recipients 1000] [--cancelled 300]
                          [--fault-scale 1.0] [--rate 12] [--json PATH]

Starts its own local stack, sets a seeded fault plan (:mod:`sesflow.local.faults`: SES
throttling, 5xx and accept-then-fail, functions that die or time out around an AWS call,
DynamoDB throttling bursts, every EventBridge delivery duplicated and shuffled, schedules
fired twice), sends ``--sends`` single emails (mailbox-simulator and ordinary addresses,
templates of both topics, invalid requests, about one emailId in ten requested twice, a
third of them as ``Email Requested`` events), runs a campaign of ``--recipients`` that is
paused and resumed at random points and a second one that is cancelled, waits until the
stack is quiet (no running execution, no pending delivery or SES event, no schedule) and
checks:

* messages in the outbox per emailId (campaigns: per campaign and recipient): at most 1,
  and exactly 1 for every email whose tracking item ended sent/delivered/bounced/complained;
* requests without a terminal status that are not in a dead-letter or failures queue: 0;
  every recipient of the completed campaign has a terminal status;
* each SES event applied once per email (timeline entries = event keys); duplicates the
  feedback function counted (its ``FeedbackDuplicates`` metric);
* suppression entries exact: every bounce / complaint simulator address SES accepted a
  message for is suppressed with the right topic and as many hits as events, nothing else;
  the campaigns' bounced/complained stage counters likewise.

It prints the figures, executions by status, faults injected by kind and each violation
with its evidence (fault log, executions), and exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import random
import shutil
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sesflow import executions
from sesflow.local import control
from sesflow.target import Target, local_target

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR = "simulator.amazonses.com"
#: statuses an email may end with (deferred and queued are not: something is still to happen)
TERMINAL = frozenset(
    {
        "sent",
        "delivered",
        "bounced",
        "complained",
        "suppressed",
        "rejected",
        "failed",
        "paused",
        "delayed",
        "unsubscribed",
    }
)
SENT_LIKE = frozenset({"sent", "delivered", "bounced", "complained", "delayed"})
COMPLAINT_SCOPE = "~subscription"  # the template's ComplaintSuppressionScope default

#: the default plan: a rate per decision point, for a run of about 1,000 sends
DEFAULT_RULES: list[dict[str, Any]] = [
    {"kind": "sesThrottle", "p": 0.06},
    {"kind": "ses5xx", "p": 0.03},
    {"kind": "sesAcceptThenFail", "p": 0.01},
    # a function that dies after SES accepted its message; one that hangs past its Timeout
    {"kind": "lambdaCrash", "function": "SendFunction", "call": "sesv2:SendEmail", "when": "after", "p": 0.02},
    {"kind": "lambdaTimeout", "function": "SendFunction", "p": 0.004},
    {"kind": "lambdaTimeout", "function": "ValidateFunction", "p": 0.003},
    {"kind": "lambdaCrash", "function": "DeferFunction", "p": 0.02},
    {"kind": "lambdaCrash", "function": "FeedbackFunction", "p": 0.004},
    {"kind": "lambdaTimeout", "function": "FeedbackFunction", "p": 0.002},
    # the campaign worker killed mid-batch, around one of its SES calls
    {"kind": "lambdaCrash", "function": "CampaignSendBatchFunction", "call": "sesv2:SendEmail", "p": 0.003},
    {"kind": "dynamodbThrottle", "p": 0.002, "burst": 3},
    # every asynchronous event twice, shuffled within half a second; schedules fired twice
    {"kind": "eventDuplicate", "p": 1.0},
    {"kind": "eventDelay", "p": 1.0, "window": 0.5},
    {"kind": "scheduleDuplicate", "p": 0.5},
]

WELCOME_DATA = {"name": "Ada", "product": "Acme"}
NEWS_DATA = {"title": "T", "intro": "I", "articles": []}


# ---------------------------------------------------------------- workload
@dataclass
class Request:
    email_id: str
    request: dict[str, Any]
    via: str  # "api" (StartExecution) or "event" (Email Requested on the bus)
    at: float  # seconds after the start of the run


@dataclass
class Workload:
    requests: list[Request]
    email_ids: list[str]  # distinct
    campaign_rows: list[str]
    cancelled_rows: list[str]


#: every 250th request (from the 18th) goes to deferred<i>@example.org, once, by StartExecution;
#: the plan throttles it four times in a row: the send is deferred to a one-time schedule
DEFERRED_EVERY = 17


def deferred_rule(sends: int) -> dict[str, Any]:
    """SES throttles the deferred<i>@ addresses past the send step's retries (4 attempts each)."""
    return {
        "kind": "sesThrottle",
        "recipient": "deferred",
        "p": 1.0,
        "times": 4 * len(range(DEFERRED_EVERY, sends, 250)),
    }


def _address(rng: random.Random, i: int, pool: int) -> str:
    kind = rng.choices(
        ["success", "ordinary", "bounce", "complaint", "suppressionlist", "ooto", "invalid"],
        weights=[18, 44, 10, 10, 4, 6, 8],
    )[0]
    if kind == "ordinary":
        return f"user{i}@example.org"
    if kind == "invalid":
        return f"not-an-address-{i}"
    if kind in ("success", "ooto"):
        return f"{kind}@{SIMULATOR}"
    return f"{kind}+s{rng.randrange(pool)}@{SIMULATOR}"  # some addresses get several emails


def make_workload(seed: int, sends: int, recipients: int, cancelled: int, rate: float) -> Workload:
    rng = random.Random(f"chaos-workload:{seed}")
    pool = max(3, sends // 20)
    requests: list[Request] = []
    email_ids = []
    for i in range(sends):
        email_id = f"x{seed}-{i:05d}"
        email_ids.append(email_id)
        to = _address(rng, i, pool) if i % 250 != DEFERRED_EVERY else f"deferred{i}@example.org"
        news = rng.random() < 0.4
        request = {
            "emailId": email_id,
            "to": to,
            "template": "newsletter" if news else "welcome",
            "data": NEWS_DATA if news else WELCOME_DATA,
        }
        if news:
            request["topic"] = "newsletter"
        at = i / rate
        via = "event" if rng.random() < 0.3 else "api"
        again = rng.random() < 0.1
        if to.startswith("deferred"):  # one execution takes the four throttles: it defers
            via, again = "api", False
        requests.append(Request(email_id, request, via, at))
        if again:  # the same emailId requested again, by either path, a little later
            requests.append(Request(email_id, dict(request), rng.choice(["api", "event"]), at + rng.uniform(0, 15)))
    requests.sort(key=lambda r: r.at)

    def rows(prefix: str, n: int) -> list[str]:
        out = []
        for i in range(n):
            kind = rng.choices(
                ["ordinary", "bounce", "complaint", "suppressionlist", "success"], weights=[89, 4, 4, 1, 2]
            )[0]
            out.append(f"{prefix}{i}@example.org" if kind == "ordinary" else f"{kind}+{prefix}{i}@{SIMULATOR}")
        return out

    return Workload(requests, email_ids, rows("a", recipients), rows("b", cancelled))


# ---------------------------------------------------------------- the local stack
_CLI_LOCK = threading.Lock()


class Stack:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.endpoint = str(target.state["endpoint"])
        self.outputs = target.outputs
        self.sfn = target.clients.client("stepfunctions")
        self.ddb = target.clients.client("dynamodb")

    def http(self, path: str, method: str = "GET", doc: Any = None) -> Any:
        data = json.dumps(doc).encode() if doc is not None else None
        req = urllib.request.Request(f"{self.endpoint}{path}", method=method, data=data)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http("/_sesflow/stats")
        return stats

    def cli(self, *argv: str) -> int:
        """An operator's ``sesflow`` command against this stack."""
        import os

        from sesflow import cli

        with _CLI_LOCK:  # the CLI reads the environment and prints: one command at a time
            os.environ["SESFLOW_STATE_DIR"] = str(Path(self.target.state["outbox"]).parent)
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    return cli.main(list(argv))
            except SystemExit as exc:
                return int(exc.code or 0)
            finally:
                os.environ.pop("SESFLOW_STATE_DIR", None)

    def executions(self, machine: str, status: str | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"stateMachineArn": self.outputs[machine]}
        if status:
            kwargs["statusFilter"] = status
        found: list[dict[str, Any]] = []
        for page in self.sfn.get_paginator("list_executions").paginate(**kwargs):
            found.extend(page["executions"])
        return found

    def scan(self, table: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in self.ddb.get_paginator("scan").paginate(TableName=self.outputs[table], ConsistentRead=True):
            items.extend(page["Items"])
        return items

    def schedules(self) -> int:
        scheduler = self.target.clients.client("scheduler")
        return sum(len(page["Schedules"]) for page in scheduler.get_paginator("list_schedules").paginate())

    def queue_messages(self, output: str) -> list[dict[str, Any]]:
        """Every message of a queue (received with a long visibility timeout, not deleted)."""
        sqs = self.target.clients.client("sqs")
        url = self.outputs[output]
        seen: dict[str, dict[str, Any]] = {}
        for _ in range(1000):
            msgs = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                seen[m["MessageId"]] = m
        return list(seen.values())

    def batches(self, campaign_id: str) -> dict[str, str]:
        """recipient -> ``batch=<campaign>:<stage>:<batch>`` (what the fault log names), from
        the campaign's stage manifests."""
        s3 = self.target.clients.client("s3")
        bucket = self.outputs["CampaignsBucketName"]
        found: dict[str, str] = {}
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"campaigns/{campaign_id}/stage-")
        for obj in listing.get("Contents", []):
            for batch in json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()):
                for r in batch["recipients"]:
                    address = str(r.get("to") or r.get("email") or "").lower()
                    found[address] = f"batch={campaign_id}:{batch['stage']}:{batch['batch']}"
        return found

    def outbox(self) -> list[dict[str, Any]]:
        metas = []
        for meta in sorted(Path(self.target.state["outbox"]).glob("*.json")):
            metas.append(json.loads(meta.read_text()))
        return metas


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def _n(item: dict[str, Any], name: str) -> int:
    value = item.get(name)
    return int(float(value["N"])) if isinstance(value, dict) and "N" in value else 0


# ---------------------------------------------------------------- driving the run
@dataclass
class CampaignRun:
    campaign_id: str
    rows: list[str]
    rate: float  # maxSendRate: slow enough for the pauses and the cancel to land mid-campaign
    batch_size: int = 50
    actions: list[str] = field(default_factory=list)
    execution_status: str = ""
    status: str = ""
    resumed_after_failure: int = 0
    error: str = ""


def submit(stack: Stack, requests: list[Request], started: float, errors: list[str]) -> Counter[str]:
    """Start every request at its time: StartExecution or an Email Requested event."""
    events = stack.target.clients.client("events")
    bus = stack.outputs["EventBusName"]
    machine = stack.outputs["SendStateMachineArn"]
    sent: Counter[str] = Counter()
    pending: list[Request] = []
    for req in requests:
        delay = started + req.at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            if req.via == "api":
                executions.start(stack.sfn, machine, req.request)
            else:
                pending.append(req)
                if len(pending) >= 5:
                    _put_requested(events, bus, pending)
                    pending = []
        except Exception as exc:  # a refused start is a finding, not a crash of the run
            errors.append(f"start {req.email_id} via {req.via}: {type(exc).__name__}: {exc}")
        sent[req.via] += 1
    if pending:
        _put_requested(events, bus, pending)
    return sent


def _put_requested(events: Any, bus: str, batch: list[Request]) -> None:
    resp = events.put_events(
        Entries=[
            {
                "EventBusName": bus,
                "Source": "com.example.chaos",
                "DetailType": "Email Requested",
                "Detail": json.dumps(r.request),
            }
            for r in batch
        ]
    )
    if resp.get("FailedEntryCount"):
        raise RuntimeError(f"put_events failed for {resp['FailedEntryCount']} entries")


def _accepted(stack: Stack, campaign_id: str, stages: int) -> int:
    from sesflow_core import ids

    total = 0
    for stage in range(stages):
        item = stack.ddb.get_item(
            TableName=stack.outputs["TrackingTableName"],
            Key={"emailId": {"S": ids.stage_counter_key(campaign_id, stage)}},
            ConsistentRead=True,
        ).get("Item", {})
        total += _n(item, "accepted")
    return total


def _resolved(items: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Campaign claims whose batch result chunk (also in ``items``) holds a messageId say
    ``sent``, as ``campaign_flow.resolve`` shows them (ADR 0014)."""
    for item in items.values():
        slot = _s(item, "result")
        if slot and _s(item, "status") == "sending" and _s(item, "sendState") == "sending":
            chunk_key, _, position = slot.rpartition("#")
            if items.get(chunk_key, {}).get("sent", {}).get("M", {}).get(position):
                item["status"] = {"S": "sent"}
    return items


def _campaign_status(stack: Stack, campaign_id: str) -> str:
    item = stack.ddb.get_item(
        TableName=stack.outputs["CampaignsTableName"], Key={"campaignId": {"S": campaign_id}}, ConsistentRead=True
    ).get("Item", {})
    return _s(item, "status") or ""


STAGES = [10, 100]


def start_campaign(stack: Stack, run: CampaignRun) -> str:
    key = f"uploads/{run.campaign_id}/recipients.csv"
    stack.target.clients.client("s3").put_object(
        Bucket=stack.outputs["CampaignsBucketName"],
        Key=key,
        Body="\n".join(["email,name", *(f"{a},R" for a in run.rows)]).encode(),
    )
    payload = {
        "campaignId": run.campaign_id,
        "template": "newsletter",
        "topic": "newsletter",
        "recipients": {"key": key},
        "data": NEWS_DATA,
        "stages": STAGES,
        "maxSendRate": run.rate,
        "batchSize": run.batch_size,
        # the gates must not halt a campaign whose bounces are on purpose
        "gate": {"observeSeconds": 1, "minSample": 1, "maxBounceRate": 1, "maxComplaintRate": 1, "maxFailureRate": 1},
    }
    arn: str = stack.sfn.start_execution(
        stateMachineArn=stack.outputs["CampaignStateMachineArn"], name=run.campaign_id, input=json.dumps(payload)
    )["executionArn"]
    return arn


def drive_campaign(stack: Stack, run: CampaignRun, rng: random.Random, cancel: bool, deadline: float) -> None:
    """Start the campaign; pause and resume it (or cancel it) at random points of its
    progress; if its execution dies, resume it as an operator would (a new execution)."""
    arn = start_campaign(stack, run)
    size = len(run.rows)
    if cancel:
        points = [("cancel", rng.uniform(0.1, 0.7) * size)]
    else:
        first = rng.uniform(0.05, 0.5) * size
        points = [("pause", first), ("pause", rng.uniform(first + 0.1 * size, 0.9 * size))]
    for action, at in points:
        while time.monotonic() < deadline and _accepted(stack, run.campaign_id, len(STAGES)) < at:
            if stack.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
                break
            time.sleep(0.3)
        progress = _accepted(stack, run.campaign_id, len(STAGES))
        if action == "cancel":
            code = stack.cli("campaign", "cancel", run.campaign_id)
            run.actions.append(f"cancel at {progress}/{size} accepted (exit {code})")
            continue
        code = stack.cli("campaign", "pause", run.campaign_id)
        run.actions.append(f"pause at {progress}/{size} accepted (exit {code})")
        time.sleep(rng.uniform(1.0, 5.0))
        code = stack.cli("campaign", "resume", run.campaign_id)
        run.actions.append(f"resume at {_accepted(stack, run.campaign_id, len(STAGES))}/{size} (exit {code})")
    while time.monotonic() < deadline:
        status = executions.wait(stack.sfn, arn, timeout=max(1.0, deadline - time.monotonic()))
        run.execution_status = status
        run.status = _campaign_status(stack, run.campaign_id)
        if status == "SUCCEEDED" or run.resumed_after_failure >= 3:
            break
        # the execution died (a fault it does not survive): an operator resumes it
        desc = stack.sfn.describe_execution(executionArn=arn)
        run.error = f"{desc.get('error')}: {str(desc.get('cause'))[:300]}"
        run.actions.append(f"execution {status} ({desc.get('error')}): resumed by the operator")
        run.resumed_after_failure += 1
        stack.cli("campaign", "resume", run.campaign_id)
        mine = [e for e in stack.executions("CampaignStateMachineArn") if e["name"].startswith(run.campaign_id)]
        arn = max(mine, key=lambda e: e["startDate"])["executionArn"]
    run.status = _campaign_status(stack, run.campaign_id)


def quiesce(stack: Stack, timeout: float, quiet: float = 3.0) -> str:
    """Wait until nothing is left to happen; return "" or why not."""
    deadline = time.monotonic() + timeout
    last, since = -1.0, time.monotonic()
    reason = ""
    while time.monotonic() < deadline:
        stats = stack.stats()
        running = {m: len(stack.executions(m, "RUNNING")) for m in ("SendStateMachineArn", "CampaignStateMachineArn")}
        schedules = stack.schedules()
        invocations = sum(v[0] for v in stats["lambda"].values())
        busy = {
            "running executions": sum(running.values()),
            "deliveries pending": stats["deliveriesPending"],
            "SES events pending": stats["sesEventsPending"],
            "schedules": schedules,
        }
        reason = ", ".join(f"{k} {v}" for k, v in busy.items() if v)
        if reason or invocations != last:
            last, since = invocations, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return ""
        time.sleep(0.5)
    return reason or "invocations still going on"


# ---------------------------------------------------------------- checks
@dataclass
class Result:
    seed: int
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    violations: list[dict[str, Any]] = field(default_factory=list)
    fault_log: list[dict[str, Any]] = field(default_factory=list)

    def violation(self, kind: str, what: str, **evidence: Any) -> None:
        self.violations.append({"kind": kind, "what": what, **evidence})

    def unexplained(self) -> list[dict[str, Any]]:
        """Violations no known issue explains."""
        return [v for v in self.violations if not v.get("known")]

    @property
    def kinds(self) -> Counter[str]:
        return Counter(v["kind"] for v in self.violations)


def _behaviour(address: str) -> str:
    local, _, domain = address.lower().rpartition("@")
    return local.split("+", 1)[0] if domain == SIMULATOR else "ordinary"


def check(
    stack: Stack, work: Workload, campaigns: list[CampaignRun], result: Result, fault_log: list[dict[str, Any]]
) -> None:
    """Check every invariant on what the stack holds now; add figures and violations."""
    checker = _Checker(stack, work, campaigns, result, fault_log)
    checker.queues()
    checker.single_sends()
    checker.campaigns()
    result.figures["sent, but the tracking item says"] = dict(sorted(checker.unknown_outcome.items()))
    checker.suppression()
    checker.counters()
    checker.event_keys()


class _Checker:
    def __init__(
        self,
        stack: Stack,
        work: Workload,
        campaigns: list[CampaignRun],
        result: Result,
        fault_log: list[dict[str, Any]],
    ) -> None:
        self.stack, self.work, self.runs, self.result = stack, work, campaigns, result
        # what can be evidence (not the thousands of event duplicates and delays), serialised once
        self.fault_log = [(json.dumps(e), e) for e in fault_log if not e["kind"].startswith(("event", "schedule"))]
        self.f = result.figures
        self.outbox = stack.outbox()
        self.per_email: Counter[str] = Counter(str(m["tags"].get("emailId")) for m in self.outbox)
        self.items = _resolved({str(_s(i, "emailId")): i for i in stack.scan("TrackingTableName")})
        self.batches = {r.campaign_id: stack.batches(r.campaign_id) for r in campaigns}
        self.dlq_ids: set[str] = set()
        #: emails SES accepted whose tracking item says otherwise (a reply lost, a function dead after the send)
        self.unknown_outcome: Counter[str] = Counter()
        self.f["outbox messages"] = len(self.outbox)
        self.f["outbox max per emailId"] = max(self.per_email.values(), default=0)

    def evidence(self, email_id: str, campaign_id: str | None = None, address: str = "") -> list[dict[str, Any]]:
        """Faults that hit this email, or (campaigns) the batch it was in."""
        marks = [email_id]
        if campaign_id:
            marks.append(self.batches[campaign_id].get(address.lower(), f"batch={campaign_id}:"))
        return _matching(self.fault_log, marks)

    def queues(self) -> None:
        counts = {}
        for output in (
            "EmailRequestsDeadLetterQueueUrl",
            "SendDeadLetterQueueUrl",
            "FeedbackDeadLetterQueueUrl",
            "FeedbackFailuresQueueUrl",
        ):
            messages = self.stack.queue_messages(output)
            counts[output.removesuffix("Url")] = len(messages)
            for m in messages:
                body = m.get("Body", "")
                self.dlq_ids.update(eid for eid in self.work.email_ids if eid in body)
        self.f["queues"] = counts

    def messages(
        self, email_id: str, label: str, status: str | None, faults: Callable[[], list[dict[str, Any]]]
    ) -> None:
        """At most one message; exactly one for a sent/delivered/bounced/complained email."""
        n = self.per_email.get(email_id, 0)
        if n > 1:
            self.result.violation(
                "sent twice", f"{label}: {n} messages (status {status})", emailId=email_id, messages=n, faults=faults()
            )
        if status not in SENT_LIKE and n:
            self.unknown_outcome[status or "(no item)"] += 1
        if status in SENT_LIKE and n == 0:
            self.result.violation(
                "lost", f"{label}: status {status} but no message in the outbox", emailId=email_id, faults=faults()
            )

    def single_sends(self) -> None:
        statuses: Counter[str] = Counter()
        in_dlq = 0
        for email_id in self.work.email_ids:
            item = self.items.get(email_id)
            status = _s(item, "status") if item else None
            statuses[status or "(no item)"] += 1
            self.messages(email_id, email_id, status, functools.partial(self.evidence, email_id))
            if status in TERMINAL:
                continue
            if email_id in self.dlq_ids:
                in_dlq += 1
                continue
            self.result.violation(
                "no terminal status",
                f"{email_id}: status {status or '(no tracking item)'}, in no dead-letter queue",
                emailId=email_id,
                faults=self.evidence(email_id),
                sendState=_s(item, "sendState") if item else None,
            )
        self.f["single sends: final status"] = dict(sorted(statuses.items()))
        self.f["single sends: not terminal but in a DLQ"] = in_dlq

    def campaigns(self) -> None:
        from sesflow_core import campaign as cp

        for run in self.runs:
            outcome: Counter[str] = Counter()
            completed = run.status == "completed"
            messages = 0
            for address in run.rows:
                email_id = cp.email_id_for(run.campaign_id, address.lower())
                item = self.items.get(email_id)
                status = _s(item, "status") if item else None
                outcome[status or "(not attempted)"] += 1
                messages += self.per_email.get(email_id, 0)

                def faults(e: str = email_id, c: str = run.campaign_id, a: str = address) -> list[dict[str, Any]]:
                    return self.evidence(e, c, a)

                self.messages(email_id, f"campaign {run.campaign_id} {address}", status, faults)
                if completed and status not in TERMINAL:
                    self.result.violation(
                        "no terminal status",
                        f"campaign {run.campaign_id} (completed) {address}: {status or 'never attempted'}",
                        emailId=email_id,
                        faults=faults(),
                    )
            self.f[f"campaign {run.campaign_id}"] = {
                "recipients": len(run.rows),
                "status": run.status,
                "execution": run.execution_status,
                "actions": run.actions,
                "recipient status": dict(sorted(outcome.items())),
                "messages": messages,
            }
        first = self.runs[0]
        if first.status != "completed":
            self.result.violation(
                "campaign not completed",
                f"campaign {first.campaign_id} ended {first.status!r} "
                f"({first.execution_status}) after {first.resumed_after_failure} operator resumes",
                error=first.error,
            )

    def expected(self) -> tuple[Counter[tuple[str, str]], dict[tuple[str, int], Counter[str]]]:
        """Suppression entries (with their hits) and campaign stage counters that what SES
        accepted implies (the mailbox simulator's addresses bounce or complain)."""
        entries: Counter[tuple[str, str]] = Counter()
        counters: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
        for m in self.outbox:
            address = str(m["destinations"][0]).lower()
            kind = _behaviour(address)
            cid, stage = m["tags"].get("campaignId"), int(m["tags"].get("stage") or 0)
            if kind in ("bounce", "suppressionlist"):
                entries[(address, "*")] += 1
                if cid:
                    counters[(cid, stage)]["bounced"] += 1
            elif kind == "complaint":
                entries[(address, COMPLAINT_SCOPE)] += 1
                if cid:
                    counters[(cid, stage)]["complained"] += 1
        return entries, counters

    def suppression(self) -> None:
        expected, _ = self.expected()
        found = {
            (str(_s(i, "address")), str(_s(i, "topic"))): _n(i, "hits") for i in self.stack.scan("SuppressionTableName")
        }
        missing = sorted(set(expected) - set(found))
        unexpected = sorted(set(found) - set(expected))
        wrong_hits = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        self.f["suppression entries"] = {
            "expected": len(expected),
            "found": len(found),
            "missing": len(missing),
            "unexpected": len(unexpected),
            "hits wrong": len(wrong_hits),
        }
        for address, topic in missing:
            self.result.violation(
                "suppression lost",
                f"{address} ({topic}): SES accepted {expected[(address, topic)]} message(s), no suppression entry",
                address=address,
                faults=_matching(self.fault_log, [address]) or self.feedback_faults(address),
            )
        for address, topic in unexpected:
            self.result.violation(
                "suppression unexpected", f"{address} ({topic}) is suppressed; nothing bounced or complained"
            )
        for key in wrong_hits:
            self.result.violation(
                "suppression count",
                f"{key[0]} ({key[1]}): {found[key]} hits, {expected[key]} events",
                address=key[0],
                faults=self.feedback_faults(key[0]),
            )

    def feedback_faults(self, address: str) -> list[dict[str, Any]]:
        """Faults that hit the feedback function while it handled this address's messages:
        by SES message id, or a throttled write of the campaign stage counter it bumps."""
        marks = []
        for m in self.outbox:
            if str(m["destinations"][0]).lower() == address:
                marks.append(m["messageId"])
                if m["tags"].get("campaignId"):
                    marks.append(f"campaign#{m['tags']['campaignId']}#stage#{m['tags'].get('stage') or 0}")
        return _matching(self.fault_log, marks, "Feedback")

    def counters(self) -> None:
        from sesflow_core import ids

        _, expected = self.expected()
        for (cid, stage), wanted in sorted(expected.items()):
            counter = self.items.get(ids.stage_counter_key(cid, stage), {})
            for name, n in wanted.items():
                if _n(counter, name) == n:
                    continue
                self.result.violation(
                    "campaign counter",
                    f"campaign {cid} stage {stage}: {name} = {_n(counter, name)}, {n} expected from the outbox",
                    campaignId=cid,
                    stage=stage,
                    faults=_matching(
                        self.fault_log, [f"emailId=c-{cid}-", f"campaign#{cid}#stage#{stage}"], "Feedback"
                    ),
                )

    def event_keys(self) -> None:
        """Every SES event applied once per email: as many timeline entries as event keys."""
        for email_id, item in self.items.items():
            if "timeline" in item and len(item["timeline"].get("L", [])) != len(
                item.get("eventKeys", {}).get("SS", [])
            ):
                self.result.violation(
                    "event applied twice", f"{email_id}: timeline and event keys differ", emailId=email_id
                )


#: Violations the chaos runs found in the current code (functions/, statemachines/, not this
#: suite's to fix): :func:`known_issue` labels each violation they explain; the pytest run
#: xfails on them and fails on any other.
KNOWN_ISSUES: dict[str, str] = {}  # none open: the six the first runs found are fixed (see git log)


def known_issue(v: dict[str, Any]) -> str | None:
    """The known issue that explains a violation (by its kind and the faults and executions
    of its evidence), or None. Add a key to KNOWN_ISSUES and a rule here when a run finds a
    defect that cannot be fixed at once; the pytest run then xfails on it instead of failing."""
    return None


def _matching(log: list[tuple[str, dict[str, Any]]], marks: list[str], also: str = "") -> list[dict[str, Any]]:
    """Fault log entries that mention any of ``marks`` (and ``also``), at most 12."""
    return [e for text, e in log if any(m in text for m in marks) and also in text][:12]


def _emf_metrics(log: Path) -> Counter[str]:
    """The functions' CloudWatch metrics (EMF lines the local stack's log holds)."""
    totals: Counter[str] = Counter()
    if not log.is_file():
        return totals
    with log.open(errors="replace") as lines:
        for line in lines:
            if not line.startswith('{"_aws"'):
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            for directive in doc["_aws"].get("CloudWatchMetrics", []):
                for metric in directive.get("Metrics", []):
                    values = doc.get(metric["Name"], [])
                    totals[metric["Name"]] += int(sum(values) if isinstance(values, list) else values)
    return totals


def _executions_evidence(stack: Stack, email_ids: set[str]) -> dict[str, list[str]]:
    """For each emailId: its send executions, their status and the path through the states
    (with the errors). Every execution is described (its input names the emailId), 8 at a time."""
    from concurrent.futures import ThreadPoolExecutor

    def email_of(arn: str) -> tuple[str, str | None]:
        try:
            doc = json.loads(stack.sfn.describe_execution(executionArn=arn).get("input") or "{}")
        except ValueError:
            return arn, None
        return arn, doc.get("emailId") if isinstance(doc, dict) else None

    with ThreadPoolExecutor(8) as pool:
        owners = list(pool.map(email_of, [e["executionArn"] for e in stack.executions("SendStateMachineArn")]))
    found: dict[str, list[str]] = defaultdict(list)
    for arn, email_id in owners:
        if email_id not in email_ids:
            continue
        rep = executions.report(stack.sfn, arn)
        path = " > ".join(
            f"{s.name}[{s.error}]" if s.error else s.name
            for s in rep.states
            if s.name not in ("IsRequestValid", "IsSuppressed")
        )
        outcome = rep.output.get("status") if isinstance(rep.output, dict) else ""
        found[str(email_id)].append(f"{rep.status} {outcome}: {path}")
    return found


def figures(
    stack: Stack, sdir: Path, work: Workload, submitted: Counter[str], faults: dict[str, Any], f: dict[str, Any]
) -> None:
    """Requests, faults injected, function errors, executions by status, feedback metrics."""
    stats = stack.stats()
    f["requests"] = {
        "emailIds": len(work.email_ids),
        "submitted": sum(submitted.values()),
        "as events": submitted["event"],
        "campaign recipients": len(work.campaign_rows),
        "cancelled campaign recipients": len(work.cancelled_rows),
    }
    f["faults injected"] = dict(sorted(faults["injected"].items()))
    f["function errors"] = {
        k.split("-")[2] if k.count("-") >= 2 else k: v for k, v in sorted(stats.get("lambdaErrors", {}).items())
    }
    f["executions"] = {
        m.removesuffix("StateMachineArn"): dict(Counter(e["status"] for e in stack.executions(m)))
        for m in ("SendStateMachineArn", "CampaignStateMachineArn")
    }
    failed: Counter[str] = Counter()
    for m in ("SendStateMachineArn", "CampaignStateMachineArn"):
        for e in stack.executions(m, "FAILED"):
            error = stack.sfn.describe_execution(executionArn=e["executionArn"]).get("error")
            failed[f"{m.removesuffix('StateMachineArn')}: {error}"] += 1
    f["failed executions, by error"] = dict(failed)
    metrics = _emf_metrics(sdir / "server.log")
    f["feedback"] = {
        "duplicates counted (FeedbackDuplicates)": metrics["FeedbackDuplicates"],
        "SES event deliveries duplicated": sum(
            1 for e in faults["log"] if e["kind"] == "eventDuplicate" and "feedback" in e.get("target", "").lower()
        ),
        "applied": {k: v for k, v in metrics.items() if k.startswith("Feedback") and k != "FeedbackDuplicates"},
    }


def explain(stack: Stack, result: Result) -> None:
    """Each violation's executions (for its emailId) and the known issue that explains it."""
    wanted = {v["emailId"] for v in result.violations if v.get("emailId") and v["kind"] != "campaign counter"}
    if wanted:
        histories = _executions_evidence(stack, set(list(wanted)[:50]))
        for v in result.violations:
            if v.get("emailId") in histories:
                v["executions"] = histories[v["emailId"]]
    for v in result.violations:
        v["known"] = known_issue(v)


# ---------------------------------------------------------------- the run
def run(
    seed: int = 1,
    sends: int = 1000,
    recipients: int = 1000,
    cancelled: int = 300,
    rules: list[dict[str, Any]] | None = None,
    fault_scale: float = 1.0,
    rate: float = 12.0,
    campaign_rate: float = 25.0,
    sdir: Path | None = None,
    timeout: float = 1200.0,
    log: Callable[[str], None] = print,
    keep: bool = False,
) -> Result:
    started_wall = time.monotonic()
    result = Result(seed)
    if rules is None:
        rules = [deferred_rule(sends), *DEFAULT_RULES]
    rules = [
        dict(r, p=min(1.0, float(r.get("p", 0.0)) * (fault_scale if float(r.get("p", 0)) < 1 else 1))) for r in rules
    ]
    work = make_workload(seed, sends, recipients, cancelled, rate)
    own_dir = sdir is None  # a state dir of our own (outbox, log) is removed afterwards
    sdir = sdir or Path(tempfile.mkdtemp(prefix="sesflow-chaos-"))
    state, _ = control.up(ROOT, port=0, sdir=sdir)
    try:
        stack = Stack(local_target(ROOT, sdir))
        log(f"local stack up ({state['startupSeconds']:.1f} s); fault plan: seed {seed}, {len(rules)} rules")
        # warm the handlers (cold imports) before the faults start
        warm = executions.start(
            stack.sfn,
            stack.outputs["SendStateMachineArn"],
            {"emailId": f"warm-{seed}", "to": "warm@example.org", "template": "welcome", "data": WELCOME_DATA},
        )
        executions.wait(stack.sfn, warm, timeout=60)
        stack.http("/_sesflow/faults", "POST", {"seed": seed, "rules": rules})
        deadline = time.monotonic() + timeout
        rng = random.Random(f"chaos-campaigns:{seed}")
        runs = [
            CampaignRun(f"chaos{seed}a", work.campaign_rows, campaign_rate),
            # small batches: a cancel takes effect at the next batch boundary
            CampaignRun(f"chaos{seed}b", work.cancelled_rows, max(1.0, campaign_rate / 4), batch_size=10),
        ]
        errors: list[str] = []
        threads = [
            threading.Thread(
                target=_guard(drive_campaign, errors), args=(stack, runs[0], rng, False, deadline), name="campaign-a"
            ),
            threading.Thread(
                target=_guard(drive_campaign, errors), args=(stack, runs[1], rng, True, deadline), name="campaign-b"
            ),
        ]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        submitted = submit(stack, work.requests, t0, errors)
        log(
            f"submitted {sum(submitted.values())} requests for {len(work.email_ids)} emailIds "
            f"({submitted['event']} as Email Requested events) in {time.monotonic() - t0:.0f} s"
        )
        for t in threads:
            t.join(max(1.0, deadline - time.monotonic()))
        for r in runs:
            log(f"campaign {r.campaign_id}: {r.status} ({r.execution_status}); " + "; ".join(r.actions))
        not_quiet = quiesce(stack, max(30.0, deadline - time.monotonic()))
        result.figures["quiescent after"] = round(time.monotonic() - started_wall, 1)
        if not_quiet:
            result.violation("not quiescent", f"still busy at the deadline: {not_quiet}")
        faults = stack.http("/_sesflow/faults?log=1")
        result.fault_log = faults["log"]
        stack.http("/_sesflow/faults", "DELETE")
        figures(stack, sdir, work, submitted, faults, result.figures)
        for err in errors:
            result.violation("driver", err)
        check(stack, work, runs, result, faults["log"])
        explain(stack, result)
        result.figures["checks took"] = round(time.monotonic() - started_wall - result.figures["quiescent after"], 1)
    finally:
        if keep:
            log(f"the stack keeps running: SESFLOW_STATE_DIR={sdir} sesflow ...; sesflow local down to stop it")
        else:
            control.down(ROOT, sdir=sdir)
            if own_dir:
                shutil.rmtree(sdir, ignore_errors=True)
    result.seconds = round(time.monotonic() - started_wall, 1)
    return result


def _guard(fn: Callable[..., None], errors: list[str]) -> Callable[..., None]:
    def guarded(*args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")

    return guarded


def _lines(value: Any, indent: str = "  ") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict) and v and any(isinstance(x, (dict, list)) for x in v.values()):
                yield f"{indent}{k}:"
                yield from _lines(v, indent + "  ")
            elif isinstance(v, list):
                yield f"{indent}{k}: " + ("; ".join(map(str, v)) or "-")
            elif isinstance(v, dict):
                yield f"{indent}{k}: " + (", ".join(f"{a} {b}" for a, b in v.items()) or "-")
            else:
                yield f"{indent}{k}: {v}"


def report(result: Result, limit: int = 40) -> str:
    out = [f"chaos run, seed {result.seed}: {result.seconds:.0f} s"]
    out.extend(_lines(result.figures))
    if not result.violations:
        out.append("invariants: all hold (nobody twice, nobody lost, suppression exact)")
        return "\n".join(out)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.kinds.items()))
    out.append(f"VIOLATIONS: {len(result.violations)} ({kinds})")
    known = Counter(str(v.get("known")) for v in result.violations if v.get("known"))
    for key, n in sorted(known.items()):
        out.append(f"  {n:4d} x known issue {key}: {KNOWN_ISSUES[key]}")
    if result.unexplained():
        out.append(f"  {len(result.unexplained()):4d} x not explained by a known issue")
    for v in sorted(result.violations, key=lambda v: (v.get("known") or "", v["kind"]))[:limit]:
        out.append(f"  [{v['kind']}{' / ' + v['known'] if v.get('known') else ''}] {v['what']}")
        for e in (v.get("faults") or [])[:4]:
            out.append(f"      fault: {json.dumps(e)}")
        for e in (v.get("executions") or [])[:4]:
            out.append(f"      execution: {e}")
    if len(result.violations) > limit:
        out.append(f"  ... and {len(result.violations) - limit} more (--json for all, with the fault log)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sends", type=int, default=1000, help="distinct single-send emailIds (default 1000)")
    parser.add_argument("--recipients", type=int, default=1000, help="recipients of the paused/resumed campaign")
    parser.add_argument("--cancelled", type=int, default=300, help="recipients of the cancelled campaign")
    parser.add_argument("--fault-scale", type=float, default=1.0, help="multiply every fault probability below 1")
    parser.add_argument("--rate", type=float, default=12.0, help="single sends started per second")
    parser.add_argument(
        "--campaign-rate",
        type=float,
        default=25.0,
        help="maxSendRate of the paused campaign (the cancelled one: a quarter)",
    )
    parser.add_argument(
        "--timeout", type=float, default=1200.0, help="seconds before the run counts as stuck (default 1200)"
    )
    parser.add_argument("--faults", type=Path, help="a JSON list of fault rules instead of the default plan")
    parser.add_argument("--json", type=Path, help="write the figures and every violation here")
    parser.add_argument("--keep", action="store_true", help="leave the local stack running to inspect it")
    args = parser.parse_args(argv)
    rules = json.loads(args.faults.read_text()) if args.faults else None
    result = run(
        args.seed,
        args.sends,
        args.recipients,
        args.cancelled,
        rules,
        args.fault_scale,
        args.rate,
        args.campaign_rate,
        timeout=args.timeout,
        keep=args.keep,
    )
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=2, default=str))
    return 1 if result.violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
