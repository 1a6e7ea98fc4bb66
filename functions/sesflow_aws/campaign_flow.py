"""Campaign flows: plan, send a batch, control/gate between stages, summarize.

The campaign item (Campaigns table) holds the plan, its counts, the control word
(``run``/``paused``/``cancelled``, set by ``sesflow campaign pause|resume|cancel``), the
approval task token and every gate's decision. Per-stage counters live on
``campaign#<id>#stage#<n>`` items of the tracking table (``ids.stage_counter_key``): the batch
sender adds ``accepted``/``duplicates``/``suppressed``/``failed``/``throttled``/``skipped``;
the feedback function adds ``bounced``/``complained``/``rejected``. Batches send with the
send machine's own code (request validation, template cache, rendering, MIME, SES call,
ledger). Every function takes ``client``: a function service -> boto3 client.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from functools import partial
from typing import IO, Any, TypeVar

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from sesflow_core import campaign as cp
from sesflow_core import ids, ses_errors
from sesflow_core.campaign import abtest, chunks
from sesflow_core.campaign.planner import part_key
from sesflow_core.campaign.schedule import SendSchedule
from sesflow_core.campaign.schedule import iso as schedule_iso
from sesflow_core.clock import Clock, now_iso
from sesflow_core.errors import (
    CampaignWoken,
    CampaignWorkerCrashed,
    InvalidEmailRequest,
    SesConfigurationError,
    SesflowError,
    SesOutcomeUnknown,
    SesThrottled,
    TemplateRenderError,
)
from sesflow_core.render import CompiledTemplate
from sesflow_core.request import validate
from sesflow_core.status import FAILED, SENDING, SENT

from . import dynamo, events, ledger, sending, ses, suppression, templates
from .settings import Settings

Client = Callable[[str], Any]
logger = Logger(child=True)


RUN, PAUSED, CANCELLED = "run", "paused", "cancelled"


def _campaigns_table(client: Client) -> str:
    return Settings.from_env().campaigns_table  # the handlers and the CLI run with it set


def _counter_key(campaign_id: str, stage: int | str) -> dict[str, Any]:
    return {"emailId": {"S": ids.stage_counter_key(campaign_id, stage)}}


def emit(client: Client, settings: Settings, detail_type: str, detail: dict[str, Any]) -> None:
    events.put(client("events"), settings.event_bus, detail_type, {**detail, "timestamp": now_iso()})


def campaign_item(client: Client, campaign_id: str) -> dict[str, Any]:
    item = (
        client("dynamodb")
        .get_item(TableName=_campaigns_table(client), Key={"campaignId": {"S": campaign_id}}, ConsistentRead=True)
        .get("Item")
    )
    return dynamo.to_plain(item) if item else {}


def update_campaign(client: Client, campaign_id: str, **fields: Any) -> None:
    values = dynamo.to_item({f":f{i}": v for i, v in enumerate(fields.values())})
    client("dynamodb").update_item(
        TableName=_campaigns_table(client),
        Key={"campaignId": {"S": campaign_id}},
        UpdateExpression="SET " + ", ".join(f"#f{i} = :f{i}" for i in range(len(fields))),
        ExpressionAttributeNames={f"#f{i}": k for i, k in enumerate(fields)},
        ExpressionAttributeValues=values,
    )


def stage_item(client: Client, settings: Settings, campaign_id: str, stage: int | str) -> dict[str, Any]:
    """The stage's counter item, plain: its counters and ``failedBatches`` (see :func:`batch_failed`)."""
    item = (
        client("dynamodb")
        .get_item(TableName=settings.tracking_table, Key=_counter_key(campaign_id, stage), ConsistentRead=True)
        .get("Item", {})
    )
    return dynamo.to_plain(item)


def stage_counters(client: Client, settings: Settings, campaign_id: str, stage: int) -> dict[str, Any]:
    return _numbers(stage_item(client, settings, campaign_id, stage))


def _numbers(item: dict[str, Any]) -> dict[str, Any]:
    """The counters of a stage item (``unaccountedCarried`` is part of :func:`_unaccounted`)."""
    return {
        k: v
        for k, v in item.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "unaccountedCarried"
    }


def _unaccounted(item: dict[str, Any]) -> int:
    """Recipients of the stage's failed batches that have no outcome (``failedBatches``, and
    ``unaccountedCarried`` from the stage's earlier parts)."""
    return sum(int(n) for n in (item.get("failedBatches") or {}).values()) + int(item.get("unaccountedCarried") or 0)


def _carry_unaccounted(client: Client, settings: Settings, campaign_id: str, stage: int, n: int) -> None:
    client("dynamodb").update_item(
        TableName=settings.tracking_table,
        Key=_counter_key(campaign_id, stage),
        UpdateExpression="ADD unaccountedCarried :n REMOVE failedBatches",
        ExpressionAttributeValues={":n": {"N": str(n)}},
    )


def _suppressed_since_plan(
    client: Client, settings: Settings, topic: str, plan_doc: dict[str, Any], requests: list[Any]
) -> set[str]:
    """Recipients of the batch suppressed since the plan looked the list up (the canary's
    bounces, unsubscribes): one Query of the entries added since then (``bySince``), or,
    for a plan older than a week (or one planned before the index), a lookup per recipient."""
    if not requests:
        return set()
    since = plan_doc.get("suppressionCheckedAt")
    added = (
        suppression.added_since(client("dynamodb"), settings.suppression_table, str(since), topic) if since else None
    )
    recipients = [r.recipient for r in requests]
    if added is None:
        return _suppressed_lookup(client, settings, topic)(recipients)
    return added.intersection(recipients)


# ---------------------------------------------------------------- plan
def _suppressed_lookup(client: Client, settings: Settings, topic: str) -> Callable[[list[str]], set[str]]:
    ddb = client("dynamodb")
    return lambda addresses: suppression.suppressed_among(ddb, settings.suppression_table, addresses, topic)


def plan(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The Plan state (and, for a list of more than ``PLAN_CHUNK_KIB``, the distributed
    plan's chunk and merge states, by ``event["phase"]``): the plan document, or, to plan in
    chunks, ``{"campaignId", "planChunks": {...}}`` for the machine's PlanChunks Map."""
    phase = event.get("phase")
    if phase == "chunk":
        return plan_chunk(client, event, settings)
    if phase == "merge":
        return merge_plan(client, event, settings)
    raw = event.get("input", event)
    bucket = settings.campaigns_bucket
    spec = cp.CampaignSpec.from_input(raw, default_bucket=bucket, allow_clock=settings.local_stack)
    resumed = _resumed(client, spec.campaign_id, event)
    if resumed is not None:
        return resumed
    rate = spec.max_send_rate
    if not rate:
        rate = ses.account_max_send_rate(client("sesv2"))
    worker_rate = cp.concurrency_for(rate)[1]  # the workers: _publish
    if spec.batch_size is None:
        spec = replace(spec, batch_size=cp.batch_size_for(worker_rate))
    preview = _plan_preview(client, settings, spec)
    listing = client("s3").get_object(Bucket=spec.recipients_bucket, Key=spec.recipients_key)
    size = int(listing.get("ContentLength") or 0)
    started = time.time()
    if size > settings.plan_chunk_bytes:
        listing["Body"].close()
        return _start_chunks(
            client, settings, spec, {**raw, "maxSendRate": rate, "batchSize": spec.batch_size}, size, preview, started
        )
    planner = cp.Planner(spec, workdir=settings.plan_workdir, preview=preview)
    # entries added from a minute before the lookups on are read again by every batch (clocks
    # of other functions may be a little behind)
    checked_at = schedule_iso(started - 60)
    suppressed = suppression.plan_lookup(client("dynamodb"), settings.suppression_table, spec.topic, size)
    manifests, rejects = planner.plan(cp.iter_rows(listing["Body"], spec.recipients_key), suppressed)
    result = chunks.Merged(manifests, rejects, planner.parts, planner.counts)
    try:
        return _publish(client, event, settings, spec, rate, result, started, checked_at)
    finally:
        planner.cleanup()


def _resumed(client: Client, campaign_id: str, event: dict[str, Any]) -> dict[str, Any] | None:
    """The plan of a campaign planned already (a resumed campaign, a retried merge): the
    plan and the ledger exist, nothing is planned again."""
    existing = campaign_item(client, campaign_id)
    if not existing.get("plan"):
        return None
    logger.info("campaign already planned: resuming", extra={"campaignId": campaign_id})
    update_campaign(client, campaign_id, status="running", control=RUN, executionArn=event.get("executionArn", ""))
    plan_doc: dict[str, Any] = existing["plan"]
    return plan_doc


def _plan_preview(client: Client, settings: Settings, spec: cp.CampaignSpec) -> Callable[[dict[str, Any]], None]:
    """What renders the list's first rows at plan time: the template, and each A/B variant's
    template and subject (a variant that cannot render fails the plan, before anyone is
    mailed)."""
    template = templates.load_template(
        client("s3"), settings.templates_bucket, spec.template, settings.template_cache_ttl
    )
    variant_templates = [(v, variant_template(client, settings, spec.template, v.as_dict())) for v in spec.variants]

    def preview(data: dict[str, Any]) -> None:
        template.render(data, spec.topic)
        for v, compiled in variant_templates:
            compiled.render({**data, **v.data}, spec.topic)

    return preview


def _open_from(s3: Any, bucket: str, key: str) -> chunks.OpenFrom:
    """``open_from`` for a list in S3: a GetObject of ``bytes=pos-``, read through a buffer
    (the chunk reads lines; the body is closed, the rest unread, once it has them)."""

    def open_from(pos: int) -> IO[bytes]:
        body = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={pos}-")["Body"]
        return io.BufferedReader(_BodyReader(body), 1 << 20)

    return open_from


class _BodyReader(io.RawIOBase):
    """An S3 body as a raw stream, so that ``io.BufferedReader`` gives fast ``readline``s."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def _chunk_key(campaign_id: str, k: int, suffix: str) -> str:
    return f"campaigns/{campaign_id}/plan/chunk-{k:05d}.{suffix}"


def _start_chunks(
    client: Client,
    settings: Settings,
    spec: cp.CampaignSpec,
    raw: dict[str, Any],
    size: int,
    preview: Callable[[dict[str, Any]], None],
    started: float,
) -> dict[str, Any]:
    """A list of more than ``PLAN_CHUNK_KIB``: its header and first rows checked here (a
    campaign that cannot go out fails in this state, with its reason), then the byte ranges
    for the machine's PlanChunks Map and what its MergePlan needs (ADR 0016)."""
    open_from = _open_from(client("s3"), spec.recipients_bucket, spec.recipients_key)
    ranges = chunks.split(size, settings.plan_chunk_bytes)
    # the Planner's preview of the first valid rows, read from the start of the first range;
    # its rows read (and check) the CSV header too, which the other chunks are given
    head = chunks.ChunkRows(open_from, spec.recipients_key, 0, min(ranges[0][1], chunks.PREVIEW_BYTES))
    first = chunks.plan_chunk(spec, head, settings.plan_workdir, preview)
    shutil.rmtree(first.dir, ignore_errors=True)
    header = head.header
    logger.info("planning in chunks", extra={"campaignId": spec.campaign_id, "chunks": len(ranges), "bytes": size})
    return {
        "campaignId": spec.campaign_id,
        "planChunks": {
            "input": raw,
            "header": header,
            "listBytes": size,
            "startedAt": started,
            "chunks": [{"index": k, "start": a, "end": b} for k, (a, b) in enumerate(ranges)],
        },
    }


def plan_chunk(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """One item of the PlanChunks Map: the chunk phase over one byte range; its files go to
    S3 as one object (``chunk-<k>.data``) and their places in it, with the chunk's result,
    as ``chunk-<k>.json``. Returns a few bytes: the Map keeps no results (ResultPath null)."""
    spec = cp.CampaignSpec.from_input(
        event["input"], default_bucket=settings.campaigns_bucket, allow_clock=settings.local_stack
    )
    item = event["chunk"]
    k, s3 = int(item["index"]), client("s3")
    rows = chunks.ChunkRows(
        _open_from(s3, spec.recipients_bucket, spec.recipients_key),
        spec.recipients_key,
        int(item["start"]),
        int(item["end"]),
        event.get("header"),
    )
    result = chunks.plan_chunk(spec, rows, settings.plan_workdir)
    try:
        data = os.path.join(result.dir, "chunk.data")
        places: dict[str, list[int]] = {}
        with open(data, "wb") as out:
            for name in result.files():
                with open(os.path.join(result.dir, name), "rb") as f:
                    places[name] = [out.tell(), 0]
                    shutil.copyfileobj(f, out, 1 << 20)
                    places[name][1] = out.tell() - places[name][0]
        s3.upload_file(data, settings.campaigns_bucket, _chunk_key(spec.campaign_id, k, "data"))
        doc = {"result": {**result.as_dict(), "dir": ""}, "files": places}
        s3.put_object(
            Bucket=settings.campaigns_bucket,
            Key=_chunk_key(spec.campaign_id, k, "json"),
            Body=json.dumps(doc).encode(),
            ContentType="application/json",
        )
    finally:
        shutil.rmtree(result.dir, ignore_errors=True)
    return {"index": k, "rows": result.rows}


def merge_plan(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The MergePlan state: the chunks' files, bucket by bucket in chunk order, through the
    Planner's own dedupe, suppression and batching (``chunks.merge``: the plan one process
    would have made, byte for byte), then published as ``plan`` publishes its own."""
    raw, bucket = event["input"], settings.campaigns_bucket
    spec = cp.CampaignSpec.from_input(raw, default_bucket=bucket, allow_clock=settings.local_stack)
    resumed = _resumed(client, spec.campaign_id, event)
    if resumed is not None:
        return resumed
    s3 = client("s3")
    workdir = tempfile.mkdtemp(prefix="merge-", dir=settings.plan_workdir)
    try:
        results, places = [], []
        for item in event["chunks"]:
            k = int(item["index"])
            doc = json.loads(s3.get_object(Bucket=bucket, Key=_chunk_key(spec.campaign_id, k, "json"))["Body"].read())
            results.append(chunks.ChunkResult.from_dict(doc["result"]))
            places.append(doc["files"])
            s3.download_file(bucket, _chunk_key(spec.campaign_id, k, "data"), os.path.join(workdir, f"{k}.data"))

        def open_file(k: int, name: str) -> IO[bytes]:
            offset, length = places[k][name]
            with open(os.path.join(workdir, f"{k}.data"), "rb") as f:
                f.seek(offset)
                return io.BytesIO(f.read(length))

        started = float(event.get("startedAt") or time.time())
        checked_at = schedule_iso(time.time() - 60)  # as plan's: before the lookups
        suppressed = suppression.plan_lookup(
            client("dynamodb"), settings.suppression_table, spec.topic, int(event.get("listBytes") or 0)
        )
        merged = chunks.merge(spec, results, open_file, suppressed, workdir)
        plan_doc = _publish(client, event, settings, spec, raw["maxSendRate"], merged, started, checked_at)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    keys = [_chunk_key(spec.campaign_id, int(i["index"]), x) for i in event["chunks"] for x in ("data", "json")]
    for n in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys[n : n + 1000]]})
    return plan_doc


def _publish(
    client: Client,
    event: dict[str, Any],
    settings: Settings,
    spec: cp.CampaignSpec,
    rate: float,
    result: chunks.Merged,
    started: float,
    checked_at: str,
) -> dict[str, Any]:
    """Upload a plan's manifests (by parts) and rejects, record the plan on the campaign item,
    announce ``Campaign Started``; the plan document (the machine's state from here on)."""
    workers, worker_rate = cp.concurrency_for(rate)
    bucket = settings.campaigns_bucket
    s3 = client("s3")
    prefix = f"campaigns/{spec.campaign_id}"
    stages = []
    for i, _path in enumerate(result.manifests):
        key = f"{prefix}/stage-{i}.json"
        parts = result.parts[i]
        for n, (part_path, _recipients, _batches, _slot) in enumerate(parts):
            s3.upload_file(part_path, bucket, part_key(key, n))
            os.remove(part_path)
        stages.append(
            {
                "index": i,
                "key": key,
                "planned": result.counts.planned[i],
                "batches": result.counts.batches[i],
                "isLast": i == len(result.manifests) - 1,
                "percent": spec.stages[i],
                # a capped campaign's stage is sent part by part (about a day's worth each)
                "parts": len(parts),
            }
        )
        if spec.schedule.local_time is not None:
            # localTime: a part per send slot (UTC offset, minutes), Ready sends each at its time
            stages[-1]["slots"] = [int(p[3]) for p in parts]
    # a stage no recipient falls in (1 % of a 41-row list) is merged into the next: no empty
    # stage, no gate judging nothing
    merged = [st["index"] for st in stages[:-1] if not st["planned"]]
    stages = [st for st in stages if st["planned"] or st is stages[-1]]
    stages[-1]["isLast"] = True
    s3.upload_file(result.rejects, bucket, f"{prefix}/rejects.csv")
    os.remove(result.rejects)
    plan_doc = {
        "campaignId": spec.campaign_id,
        "bucket": bucket,
        "template": spec.template,
        "topic": spec.topic,
        "data": spec.data,
        "stages": stages,
        "cursor": {"i": 0},
        "maxSendRate": rate,
        "maxConcurrency": workers,
        "workerRate": round(worker_rate, 3),
        "batchSize": spec.batch_size,
        "gate": {
            "maxBounceRate": spec.gate.max_bounce_rate,
            "maxComplaintRate": spec.gate.max_complaint_rate,
            "maxFailureRate": spec.gate.max_failure_rate,
            "minSample": spec.gate.min_sample,
            "observeSeconds": spec.gate.observe_seconds,
            "approval": spec.gate.approval,
        },
        "approvalTimeoutSeconds": spec.approval_timeout_seconds or settings.campaign_approval_timeout_seconds,
        "mergedEmptyStages": merged,
        "pauseCheckSeconds": settings.campaign_pause_check_seconds,
        "counts": result.counts.as_dict(),
        "rejectsKey": f"{prefix}/rejects.csv",
        "suppressionCheckedAt": checked_at,
        "schedule": spec.schedule.as_dict(),
        "clock": spec.clock.as_dict(),
    }
    if spec.variants and spec.ab_test:
        plan_doc["variants"] = [v.as_dict() for v in spec.variants]
        plan_doc["abTest"] = spec.ab_test.as_dict()
    update_campaign(
        client,
        spec.campaign_id,
        status="running",
        control=RUN,
        plan=plan_doc,
        createdAt=now_iso(),
        startedAt=time.time(),
        planSeconds=round(time.time() - started, 3),
        executionArn=event.get("executionArn", ""),
    )
    emit(
        client,
        settings,
        "Campaign Started",
        {
            "campaignId": spec.campaign_id,
            "template": spec.template,
            "topic": spec.topic,
            "counts": result.counts.as_dict(),
        },
    )
    return plan_doc


# ---------------------------------------------------------------- send one batch
def _fault_check(client: Client, campaign_id: str, sent_in_call: int) -> None:
    """Test hook: FAULT_CRASH_AFTER_SENDS=N makes one worker per campaign die after N sends."""
    after = Settings.from_env().fault_crash_after_sends
    if not after or sent_in_call != after:
        return
    try:
        client("dynamodb").put_item(
            TableName=_campaigns_table(client),
            Item={"campaignId": {"S": f"fault#{campaign_id}"}},
            ConditionExpression="attribute_not_exists(campaignId)",
        )
    except client("dynamodb").exceptions.ConditionalCheckFailedException:
        return
    raise CampaignWorkerCrashed(f"injected crash after {after} sends")


def send_batch(client: Client, event: dict[str, Any], context: Any, settings: Settings) -> dict[str, Any]:
    batch = event["batch"]
    campaign_id, stage = batch["campaignId"], int(batch["stage"])
    item = campaign_item(client, campaign_id)
    control = item.get("control", RUN)
    schedule, clock = _schedule_of(item.get("plan") or {})
    if control != RUN or not schedule.is_open(clock.now()):
        # paused, cancelled, or outside the start time/window: sent when the stage is sent again
        counts = dict.fromkeys(COUNTS, 0) | {"skipped": len(batch["recipients"])}
        _add_counters(client, settings, campaign_id, stage, counts)
        return {"batch": batch["batch"], "control": control, **counts}
    sender = _BatchSender(client, event, settings, item)
    allowance = (
        _reserve_day(client, settings, campaign_id, sender.day, len(sender.requests), schedule.daily_cap)
        if schedule.daily_cap and sender.requests
        else None
    )
    # a daily cap counts attempts as they are made: one at a time then
    threads = 1 if allowance is not None else cp.sender_threads(float(event.get("workerRate") or 0))
    try:
        sender.run(context, allowance, threads)
    finally:
        try:
            _retried(sender.results.flush)
        finally:
            if allowance is not None and allowance > sender.attempts:
                _release_day(client, settings, campaign_id, sender.day, allowance - sender.attempts)
            _batch_counters(client, settings, batch, sender.counts, sender.by_variant, sender.started)
    return {"batch": batch["batch"], "control": control, **sender.counts}


COUNTS = ("accepted", "duplicates", "suppressed", "failed", "unknown", "throttled", "skipped")


class _StopBatch(Exception):
    """SES throttling outlasted the in-batch retries: no more recipients in this call."""


def _drain(pool: ThreadPoolExecutor, pending: set[Future[None]]) -> None:
    """Wait for the senders in flight; the first error among them (a stop aside) is raised."""
    error: BaseException | None = None
    for f in pending:
        try:
            f.result()
        except _StopBatch:
            pass  # counted by its sender
        except BaseException as exc:  # raised below, once every sender has ended
            error = error or exc
    pool.shutdown(wait=True)
    if error is not None:
        raise error


class _BatchSender:
    """One invocation of a batch: the recipients in order, each rendered, claimed (the only
    per-recipient write, ADR 0014) and sent, by ``threads`` senders sharing one pacer (a
    worker waits on SES and DynamoDB most of the time: a few senders per worker keep the
    function's billed duration per email near the pace's interval, ADR 0014)."""

    def __init__(self, client: Client, event: dict[str, Any], settings: Settings, item: dict[str, Any]) -> None:
        batch = event["batch"]
        self.client, self.settings = client, settings
        self.campaign_id, self.stage = batch["campaignId"], int(batch["stage"])
        self.counts = dict.fromkeys(COUNTS, 0)
        plan_doc = item.get("plan") or {}
        self.schedule, self.clock = _schedule_of(plan_doc)
        variants = {str(v["id"]): v for v in plan_doc.get("variants") or []}
        # the A/B sample (stage 0) sends each recipient's variant; the stages after it the winner
        self.winner = (item.get("abDecision") or {}).get("winner") or next(iter(variants), None) if self.stage else None
        self.template_for = _batch_templates(client, settings, event["template"], variants)
        self.owner = batch_owner(self.campaign_id, self.stage, batch["batch"])
        self.requests = _batch_requests(event, settings, self.counts, variants, self.winner)
        self.by_variant: dict[str, int] = {}
        self.blocked = _suppressed_since_plan(client, settings, event["topic"], plan_doc, self.requests)
        self.pacer = cp.Pacer(float(event.get("workerRate") or 0))
        self.ddb, self.table = client("dynamodb"), settings.tracking_table
        self.results = BatchResults(self.ddb, self.table, self.owner, settings.expires_at(), len(self.requests))
        self.sent_in_call = self.attempts = 0
        self.started = time.time()
        self.day = self.schedule.day_key(self.clock.now())
        self.lock = threading.Lock()

    def count(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def run(self, context: Any, allowance: int | None, threads: int) -> None:
        """Send the batch's recipients in order; those not reached are counted ``skipped`` (the
        stage is sent again and the ledger skips whoever was sent)."""
        pool = ThreadPoolExecutor(threads, thread_name_prefix="sender") if threads > 1 else None
        pending: set[Future[None]] = set()
        next_n = 0  # the first recipient neither sent nor handed to a sender
        try:
            for n, req in enumerate(self.requests):
                if (allowance is not None and self.attempts >= allowance) or not self.schedule.is_open(
                    self.clock.now()
                ):
                    break  # the daily cap is reached, or the window closed: the rest waits for the next opening
                if _out_of_time(context):
                    # the child execution must end within Express's 5 minutes
                    left = len(self.requests) - n
                    logger.info("batch time budget used up", extra={"campaignId": self.campaign_id, "left": left})
                    break
                while len(pending) >= threads:  # one recipient per sender in flight
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                next_n = n + 1
                if pool is None:
                    self.one(n, req)
                else:
                    pending.add(pool.submit(self.one, n, req))
            else:
                next_n = len(self.requests)
        except _StopBatch:
            pass  # throttling outlasted the in-batch retries: the stage's next pass sends the rest
        finally:
            if pool is not None:
                _drain(pool, pending)
            self.count("skipped", len(self.requests) - next_n)

    def one(self, n: int, req: Any) -> None:
        """Render, claim and send recipient ``n``; its result slot is settled whatever happens."""
        message_id = None
        try:
            message_id = self._one(n, req)
        finally:
            self.results.done(n, message_id)
        if message_id is not None:
            with self.lock:
                self.counts["accepted"] += 1
                if req.variant:
                    self.by_variant[req.variant] = self.by_variant.get(req.variant, 0) + 1
                self.sent_in_call += 1
                sent_in_call = self.sent_in_call
            _fault_check(self.client, self.campaign_id, sent_in_call)

    def _one(self, n: int, req: Any) -> str | None:
        if req.recipient in self.blocked:
            self.count("suppressed")
            return None
        # Rendered before the claim: a row the template cannot render takes no claim, and a
        # claim is held only around the SES call itself.
        unsubscribe = sending.unsubscribe_url(self.client, self.settings, req)
        try:
            rendered = self.template_for(req.locale, req.variant or self.winner).render(
                sending.template_data(req, unsubscribe), req.topic
            )
        except TemplateRenderError as exc:
            # not sent: a resumed campaign with a fixed template may send it
            if _record_render_failure(
                self.ddb, self.table, req, self.campaign_id, self.stage, self.settings.expires_at(), exc
            ):
                self.count("failed")
            else:
                self.count("duplicates")  # sent (or refused) in an earlier pass
            return None
        if not self._claim(n, req, rendered):
            return None
        with self.lock:
            self.attempts += 1  # one of the day's emails (counted against dailyCap), whatever SES answers
        try:
            return _send_with_backoff(
                self.client, self.settings, req, rendered, self.pacer, self, unsubscribe, self.owner
            )
        except SesThrottled:
            self.count("skipped")  # its claim was freed: sent when the stage is sent again
            raise _StopBatch() from None

    def _claim(self, n: int, req: Any, rendered: Any) -> bool:
        """Take the recipient's ledger; False (counted) when it is not this call's to send.

        The claim creates the tracking item as "sending" (not "sent": a worker that dies before
        the SES call must not leave an email recorded sent that never went), naming the result
        slot SES's answer will take. No createdAt: the indexes byRecipient and byCampaign are
        sparse (both keys or no entry), so an email that goes well costs no index write (ADR
        0014); a failure, bounce or complaint adds createdAt and with it the index entries."""
        fields: dict[str, str | int] = {
            "recipient": req.recipient,
            "template": req.template,
            "topic": req.topic,
            "campaignId": self.campaign_id,
            "stage": str(self.stage),
            "expiresAt": self.settings.expires_at(),
            "statusSequence": 1,
        }
        written: dict[str, str | int] = {
            "status": SENDING,
            "result": self.results.slot(n),
            "templateVersion": str(rendered.template_version),
        }
        if rendered.locale:
            written["locale"] = rendered.locale
        ddb, table, owner = self.ddb, self.table, self.owner
        holder = _retried(partial(ledger.take, ddb, table, req.emailId, owner, fields, overwrite=written))
        if holder is None:
            return True
        if _held_by(holder, owner) and _retried(partial(sent_message_id, ddb, table, holder)):
            self.count("duplicates")  # sent by an earlier attempt of this batch (its result says so)
        elif _held_by(holder, owner) and _retried(
            partial(_record_unknown, ddb, table, req.emailId, owner, WORKER_DIED)
        ):
            # this batch claimed it before and died around the SES call (the Map child retried,
            # or the stage sent again): SES may have sent it, so it is never sent again (ADR
            # 0002); it is failed with the reason, the ledger stays held
            _count_unknown(self.client, self.settings, self.campaign_id, self.stage, self)
        else:
            self.count("duplicates")
        return False


def _batch_counters(
    client: Client,
    settings: Settings,
    batch: dict[str, Any],
    counts: dict[str, int],
    by_variant: dict[str, int],
    started: float,
) -> None:
    """The batch's counts on its stage's counter (one write), and its sends per A/B variant
    and per local-time slot on theirs."""
    campaign_id, stage = batch["campaignId"], int(batch["stage"])
    added = {k: v for k, v in counts.items() if k != "unknown"}  # counted as they happened
    window = (started, time.time()) if counts["accepted"] else None
    _add_counters(client, settings, campaign_id, stage, added, window)
    for vid, n in by_variant.items():  # the A/B sample's sends per variant (the winner's denominator)
        _add_counters(client, settings, campaign_id, f"{stage}#variant#{vid}", {"accepted": n}, window)
    if batch.get("slot") is not None and counts["accepted"]:
        # localTime: the slot's own sent count and send times (the report's spread per slot)
        _add_counters(
            client, settings, campaign_id, f"{stage}#slot#{batch['slot']}", {"accepted": counts["accepted"]}, window
        )


def _batch_templates(
    client: Client, settings: Settings, name: str, variants: dict[str, dict[str, Any]] | None = None
) -> Callable[[str | None, str | None], Any]:
    """The batch's template per (recipient locale, A/B variant), each loaded once: the
    locale's variant with its fallback; an A/B variant's own template and/or subject. The
    default is loaded at once, so a missing template fails the batch before any claim."""
    loaded: dict[tuple[str | None, str | None], Any] = {}

    def template_for(locale: str | None, variant: str | None = None) -> Any:
        if (locale, variant) not in loaded:
            loaded[(locale, variant)] = variant_template(
                client, settings, name, (variants or {}).get(variant or ""), locale
            )
        return loaded[(locale, variant)]

    template_for(None)
    return template_for


def variant_template(
    client: Client, settings: Settings, name: str, variant: dict[str, Any] | None, locale: str | None = None
) -> Any:
    """The compiled template an A/B variant renders with: its own template (else the
    campaign's), its own subject (else the template's)."""
    base = templates.load_template(
        client("s3"),
        settings.templates_bucket,
        (variant or {}).get("template") or name,
        settings.template_cache_ttl,
        locale,
    )
    subject = (variant or {}).get("subject")
    if not subject:
        return base
    return CompiledTemplate(replace(base.source, metadata={**base.source.metadata, "subject": subject}))


def _batch_requests(
    event: dict[str, Any],
    settings: Settings,
    counts: dict[str, int],
    variants: dict[str, dict[str, Any]] | None = None,
    winner: str | None = None,
) -> list[Any]:
    """The batch's recipients as validated send requests (an invalid one is counted failed).
    Data: the campaign's, then the A/B variant's, then the row's."""
    batch = event["batch"]
    campaign_id, stage = batch["campaignId"], int(batch["stage"])
    requests = []
    for r in batch["recipients"]:
        variant = (variants or {}).get(r.get("variant") or winner or "") or {}
        try:
            req = validate(
                {
                    "to": r["to"],
                    "toName": r.get("toName"),
                    "template": variant.get("template") or event["template"],
                    "topic": event["topic"],
                    "data": {**event.get("data", {}), **(variant.get("data") or {}), **(r.get("data") or {})},
                    "campaignId": campaign_id,
                    "stage": stage,
                    "locale": r.get("locale"),
                    "variant": r.get("variant"),
                },
                identity=settings.sender_identity,
                default_email_id=cp.email_id_for(campaign_id, r["to"].lower()),
            )
        except InvalidEmailRequest:
            counts["failed"] += 1
            continue
        requests.append(req)
    return requests


def _reserve_day(client: Client, settings: Settings, campaign_id: str, day: str, want: int, cap: int) -> int:
    """Take up to ``want`` of the day's ``cap`` (one conditional write; a second one when less
    is left): how many this batch may send. What it does not use it gives back
    (:func:`_release_day`); a worker that dies keeps its share, so the cap errs low, never high."""
    ddb, key = client("dynamodb"), _day_counter_key(campaign_id, day)
    expires = {":exp": {"N": str(settings.expires_at())}}
    want = min(want, cap)
    for _ in range(5):
        try:
            _retried(
                partial(
                    ddb.update_item,
                    TableName=settings.tracking_table,
                    Key=key,
                    UpdateExpression="ADD used :n SET expiresAt = if_not_exists(expiresAt, :exp)",
                    ConditionExpression="attribute_not_exists(used) OR used <= :room",
                    ExpressionAttributeValues={":n": {"N": str(want)}, ":room": {"N": str(cap - want)}, **expires},
                )
            )
            return want
        except ddb.exceptions.ConditionalCheckFailedException:
            pass
        used = sent_on(client, settings, campaign_id, day)
        left = cap - used
        if left <= 0:
            return 0
        want = min(want, left)  # the rest of the day's cap, if nobody takes it first
    return 0


def _release_day(client: Client, settings: Settings, campaign_id: str, day: str, n: int) -> None:
    _retried(
        partial(
            client("dynamodb").update_item,
            TableName=settings.tracking_table,
            Key=_day_counter_key(campaign_id, day),
            UpdateExpression="ADD used :n",
            ExpressionAttributeValues={":n": {"N": str(-n)}},
        )
    )


def batch_owner(campaign_id: str, stage: int | str, batch: int | str) -> str:
    """Who holds a recipient's claim: the batch (the same in every pass and every retry)."""
    return f"{campaign_id}:{stage}:{batch}"


#: the reason an unknown outcome records when the batch finds its own claim held on a retry
WORKER_DIED = (
    "unknown outcome: the batch's worker died around the SES call (crash, timeout); "
    "not sent again (at most once, ADR 0002)"
)

#: ledger and status writes of the batch: attempts in all (each one the SDK's own retries); a
#: hot key's throttling burst can outlast the SDK's 3 attempts, and a correction that never
#: lands would leave the claim "sending" (an unknown outcome) for a message never sent
LEDGER_WRITE_ATTEMPTS = 4
_THROTTLING = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})

T = TypeVar("T")


def _retried(write: Callable[[], T]) -> T:
    """``write()``, again with backoff and full jitter while DynamoDB throttles it."""
    for attempt in range(LEDGER_WRITE_ATTEMPTS):
        try:
            return write()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _THROTTLING or attempt == LEDGER_WRITE_ATTEMPTS - 1:
                raise
            time.sleep(cp.backoff_delay(attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


#: stop taking recipients when less than this is left of the function's time (one send with
#: its throttling backoff fits): the function Timeout bounds the child's worst case
TIME_MARGIN_MS = 15_000


def _out_of_time(context: Any) -> bool:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining is not None and remaining() < TIME_MARGIN_MS


def _send_with_backoff(
    client: Client,
    settings: Settings,
    req: Any,
    rendered: Any,
    pacer: cp.Pacer,
    sender: _BatchSender,
    unsubscribe: str | None = None,
    owner: str = "",
) -> str | None:
    """Send one email, pacing; SES throttling is retried here with backoff and full jitter.

    None when it was not sent, counted ``failed`` (SES refused it) or ``unknown`` (no answer)."""
    ddb, table = client("dynamodb"), settings.tracking_table
    for attempt in range(6):
        pacer.wait()
        try:
            return sending.deliver(client, settings, req, rendered, unsubscribe)
        except SesThrottled:
            sender.count("throttled")
            time.sleep(cp.backoff_delay(attempt))
        except SesConfigurationError as exc:
            # every recipient would fail the same way: stop the batch (and, past the tolerated
            # failures, the stage) instead of marking the whole list failed; this one is not sent
            _record_failed(client, settings, req.emailId, ledger.RETRYABLE, exc)
            raise
        except SesOutcomeUnknown as exc:
            # SES may have sent it: the claim stays held, never sent again (ADR 0002)
            why = f"unknown outcome: {str(exc)[:400]}; not sent again (at most once, ADR 0002)"
            _retried(partial(_record_unknown, ddb, table, req.emailId, owner, why))
            _count_unknown(client, settings, str(req.campaignId), int(req.stage or 0), sender)
            return None
        except SesflowError as exc:
            state = ledger.RETRYABLE if isinstance(exc, ses_errors.RETRYABLE) else ledger.REJECTED
            _record_failed(client, settings, req.emailId, state, exc)
            sender.count("failed")
            return None
    _retried(lambda: ledger.release(ddb, table, req.emailId, ledger.RETRYABLE, reason="throttled"))
    raise SesThrottled("SES throttling outlasted the in-batch retries")


def _record_failed(client: Client, settings: Settings, email_id: str, state: str, exc: Exception) -> None:
    """Correct the claim (which said "sending") to ``failed`` with the reason; ``state`` frees
    the ledger (``retryable``) or keeps it closed (``rejected``)."""
    ddb, table, reason = client("dynamodb"), settings.tracking_table, str(exc)[:500]
    _retried(lambda: ledger.release_indexed(ddb, table, email_id, state, reason=reason, status=FAILED))


def _count_unknown(client: Client, settings: Settings, campaign_id: str, stage: int, sender: _BatchSender) -> None:
    """One more unknown outcome, added to the stage's counter at once: the batch's other
    counters are added when it ends, which a worker that dies (the usual cause) never does."""
    sender.count("unknown")
    _retried(partial(_add_counters, client, settings, campaign_id, stage, {"unknown": 1}))


def _held_by(holder: dict[str, Any], owner: str) -> bool:
    return ledger.attr(holder, "sendState") == ledger.SENDING and ledger.attr(holder, "sendOwner") == owner


#: emails per result chunk: 12 entries of ~63 bytes (position -> messageId) keep a chunk item
#: under 1 KB, one write unit for 12 emails
RESULTS_PER_CHUNK = 12


class BatchResults:
    """SES's answers (messageIds) of one invocation of a batch, written a chunk at a time.

    A campaign email costs one tracking write, its claim (ADR 0014): the claim names the slot
    ``<chunk key>#<position>`` its messageId will take, and the chunk item
    ``r#<owner>#<invocation>#<k>`` (tracking table) maps positions to messageIds. Chunk k holds
    positions 12k..12k+11 of the batch; it is written once all of them are settled (``done``)
    and, for what is left, when the invocation ends (``flush``, in ``finally``). A worker that
    dies between an SES answer and its chunk's write leaves the claim without a result: the
    batch's retry (or ``batch_failed``) records that claim as an unknown outcome, never sent
    again (ADR 0002) — at most RESULTS_PER_CHUNK emails per sender of a crashed invocation."""

    def __init__(self, ddb: Any, table: str, owner: str, expires_at: int, positions: int) -> None:
        self.ddb, self.table, self.expires_at, self.positions = ddb, table, expires_at, positions
        self.prefix = f"r#{owner}#{uuid.uuid4().hex[:8]}"
        self.entries: dict[int, dict[str, str]] = {}  # chunk -> position -> messageId, not written yet
        self.settled: dict[int, int] = {}  # chunk -> positions settled
        self.lock = threading.Lock()

    def slot(self, position: int) -> str:
        return f"{self.prefix}#{position // RESULTS_PER_CHUNK}#{position}"

    def done(self, position: int, message_id: str | None) -> None:
        """Position settled (sent with ``message_id``, or not sent: None); a chunk whose
        positions are all settled is written."""
        chunk = position // RESULTS_PER_CHUNK
        size = min(RESULTS_PER_CHUNK, self.positions - chunk * RESULTS_PER_CHUNK)
        with self.lock:
            if message_id is not None:
                self.entries.setdefault(chunk, {})[str(position)] = message_id
            self.settled[chunk] = self.settled.get(chunk, 0) + 1
            ready = self.entries.pop(chunk, None) if self.settled[chunk] >= size else None
        if ready:
            _retried(partial(self._write, chunk, ready))

    def flush(self) -> None:
        """Write what is left (the invocation ends)."""
        with self.lock:
            left, self.entries = self.entries, {}
        for chunk, entries in left.items():
            if entries:
                self._write(chunk, entries)

    def _write(self, chunk: int, entries: dict[str, str]) -> None:
        # UpdateItem (the function's one write action on the table), a whole new item
        self.ddb.update_item(
            TableName=self.table,
            Key={"emailId": {"S": f"{self.prefix}#{chunk}"}},
            UpdateExpression="SET sent = :sent, #at = :at, expiresAt = :exp",
            ExpressionAttributeNames={"#at": "at"},
            ExpressionAttributeValues={
                ":sent": {"M": {k: {"S": v} for k, v in entries.items()}},
                ":at": {"S": now_iso()},
                ":exp": {"N": str(self.expires_at)},
            },
        )


def _answer(ddb: Any, table: str, slot: str) -> tuple[str | None, str | None]:
    """(messageId, when its chunk was written) of a result slot ``<chunk key>#<position>``;
    (None, None) when its chunk holds no answer for it."""
    chunk_key, _, position = slot.rpartition("#")
    chunk = ddb.get_item(TableName=table, Key={"emailId": {"S": chunk_key}}, ConsistentRead=True).get("Item") or {}
    message_id = chunk.get("sent", {}).get("M", {}).get(position, {}).get("S")
    return (str(message_id), ledger.attr(chunk, "at")) if message_id else (None, None)


def sent_message_id(ddb: Any, table: str, item: dict[str, Any]) -> str | None:
    """The messageId SES gave a campaign claim (raw item), from its batch's result chunk; None
    when the claim has no recorded answer (not sent, or sent and its chunk never written)."""
    slot = ledger.attr(item, "result")
    return _answer(ddb, table, slot)[0] if slot else None


def resolve(ddb: Any, table: str, item: dict[str, Any]) -> dict[str, Any]:
    """A plain tracking item as readers should see it: a campaign claim whose result chunk
    holds its messageId was sent (ledger ``sent``, ``messageId``, ``sentAt``, and status
    ``sent`` unless feedback moved it on). Anything else is returned as it is."""
    slot = item.get("result")
    if item.get("sendState") != ledger.SENDING or not isinstance(slot, str):
        return item
    message_id, sent_at = _answer(ddb, table, slot)
    if not message_id:
        return item
    seen = {**item, "sendState": ledger.SENT, "messageId": message_id, "sentAt": sent_at}
    if item.get("status") == SENDING:
        seen["status"] = SENT
    return seen


def _record_unknown(ddb: Any, table: str, email_id: str, owner: str, reason: str) -> bool:
    """A claim of ``owner`` whose SES call has no known outcome: ``failed`` with the reason, the
    ledger left held (never sent again). False when it no longer says "sending" (recorded
    before, or feedback moved it on): nothing to correct, nothing to count."""
    try:
        ddb.update_item(
            TableName=table,
            Key={"emailId": {"S": email_id}},
            UpdateExpression="SET #s = :failed, reason = :reason, updatedAt = :now, "
            "createdAt = if_not_exists(createdAt, :now)",
            ConditionExpression="sendState = :sending AND sendOwner = :owner AND #s = :sending",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":failed": {"S": FAILED},
                ":sending": {"S": ledger.SENDING},
                ":owner": {"S": owner},
                ":reason": {"S": reason[:500]},
                ":now": {"S": now_iso()},
            },
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def _record_render_failure(
    ddb: Any, table: str, req: Any, campaign_id: str, stage: int, expires_at: int, exc: Exception
) -> bool:
    """A row the template cannot render: its tracking item says ``failed`` with the reason and
    its ledger stays free (a resume with a fixed template may send it). No claim is taken:
    False when the ledger is held or closed (sent or refused in an earlier pass)."""
    now = now_iso()
    try:
        _retried(
            lambda: ddb.update_item(
                TableName=table,
                Key={"emailId": {"S": req.emailId}},
                UpdateExpression="SET #s = :failed, reason = :reason, sendState = :retryable, updatedAt = :now, "
                "recipient = if_not_exists(recipient, :rcpt), template = if_not_exists(template, :tpl), "
                "topic = if_not_exists(topic, :topic), campaignId = if_not_exists(campaignId, :cid), "
                "stage = if_not_exists(stage, :stage), createdAt = if_not_exists(createdAt, :now), "
                "expiresAt = if_not_exists(expiresAt, :exp), statusSequence = if_not_exists(statusSequence, :one)",
                ConditionExpression="attribute_not_exists(sendState) OR sendState = :retryable",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":failed": {"S": FAILED},
                    ":reason": {"S": str(exc)[:500]},
                    ":retryable": {"S": ledger.RETRYABLE},
                    ":now": {"S": now},
                    ":rcpt": {"S": req.recipient},
                    ":tpl": {"S": req.template},
                    ":topic": {"S": req.topic},
                    ":cid": {"S": campaign_id},
                    ":stage": {"S": str(stage)},
                    ":exp": {"N": str(expires_at)},
                    ":one": {"N": "1"},
                },
            )
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def _add_counters(
    client: Client,
    settings: Settings,
    campaign_id: str,
    stage: int | str,
    counts: dict[str, int],
    window: tuple[float, float] | None = None,
) -> None:
    """One write per batch: ADD the batch's counts; keep the stage's sending window."""
    nonzero = {k: v for k, v in counts.items() if v}
    if not nonzero:
        return
    names = {f"#c{i}": k for i, k in enumerate(nonzero)}
    values = {f":c{i}": {"N": str(v)} for i, v in enumerate(nonzero.values())}
    update = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(nonzero)))
    if window:
        values.update({":first": {"N": f"{window[0]:.3f}"}, ":last": {"N": f"{window[1]:.3f}"}})
        update += " SET firstSendAt = if_not_exists(firstSendAt, :first), lastSendAt = :last"
    client("dynamodb").update_item(
        TableName=settings.tracking_table,
        Key=_counter_key(campaign_id, stage),
        UpdateExpression=update,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


# ---------------------------------------------------------------- when to send: start, window, cap
def _schedule_of(plan_doc: dict[str, Any]) -> tuple[SendSchedule, Clock]:
    return SendSchedule.from_dict(plan_doc.get("schedule")), Clock.from_dict(plan_doc.get("clock"))


def _day_counter_key(campaign_id: str, day: str) -> dict[str, Any]:
    """The daily cap's counter item (tracking table): emails handed to SES that day."""
    return {"emailId": {"S": f"{ids.stage_counter_key(campaign_id, 'day')}#{day}"}}


def sent_on(client: Client, settings: Settings, campaign_id: str, day: str) -> int:
    item = (
        client("dynamodb")
        .get_item(TableName=settings.tracking_table, Key=_day_counter_key(campaign_id, day), ConsistentRead=True)
        .get("Item", {})
    )
    return int(item.get("used", {}).get("N", "0"))


#: the longest a wait lasts before the machine decides again (a Task's timeout; far under a year)
MAX_WAIT_SECONDS = 30 * 86400


def ready(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Before every pass of a stage (or of a part of it): may it send now?

    ``send`` with the manifest ``key`` of the current part; ``cancelled``; or ``wait`` with
    ``waitSeconds`` (real seconds) and the campaign item saying ``waiting`` + ``resumeAt`` (start
    time, window, daily cap) or ``paused``. The wait is ``WaitForWindow``, which pause, resume
    and cancel cut short (``sesflow campaign ...`` sends its task token)."""
    campaign_id, current = event["campaignId"], event["current"]
    stage, part = current["stage"], int(current.get("part") or 0)
    item = campaign_item(client, campaign_id)
    schedule, clock = _schedule_of(item.get("plan") or {})
    control = item.get("control", RUN)
    out = {
        "action": "send",
        "key": part_key(str(stage["key"]), part),
        "waitSeconds": 0,
        "control": control,
        "resumeAt": None,
    }
    if control == CANCELLED:
        return {**out, "action": "cancelled"}
    if control == PAUSED:
        update_campaign(client, campaign_id, status="paused")
        return {**out, "action": "wait", "waitSeconds": max(1, settings.campaign_pause_check_seconds)}
    ab_wait = _ab_decision(client, settings, campaign_id, item, int(stage["index"]))
    if ab_wait is not None:
        # the A/B sample is out: the rest of the list waits for the winner
        seconds = min(MAX_WAIT_SECONDS, max(1, int(ab_wait + 0.999)))
        resume = schedule_iso(time.time() + seconds)
        if item.get("status") != "waiting" or item.get("waitReason") != "abTest":
            update_campaign(client, campaign_id, status="waiting", resumeAt=resume, waitReason="abTest")
        return {**out, "action": "wait", "waitSeconds": seconds, "resumeAt": resume}
    now = clock.now()
    used = sent_on(client, settings, campaign_id, schedule.day_key(now)) if schedule.daily_cap else 0
    at, why = schedule.resume_at(now, used)
    if stage.get("slots"):
        # localTime: the parts go in the order their slots' times come round once the stage may
        # start (fixed at its first pass past pause, the A/B pick and startAt); each waits for its time
        order = _slot_order(client, settings, campaign_id, stage, schedule, schedule.next_open(now))
        part, target = order[part]
        out["key"] = part_key(str(stage["key"]), part)
        if target > at:
            at, why = target, "localTime"
    if not why:
        if item.get("status") in ("waiting", "paused"):
            update_campaign(client, campaign_id, status="running", resumeAt=None, waitReason=None)
        return out
    seconds = min(MAX_WAIT_SECONDS, max(1, int(clock.real_seconds(at - now) + 0.999)))
    reasons = {
        "startAt": "the campaign's startAt",
        "window": "the send window",
        "dailyCap": f"the daily cap ({schedule.daily_cap} sent on {schedule.day_key(now)})",
        "localTime": f"the send slot's local time ({stage.get('slots', [None])[part] if stage.get('slots') else ''})",
    }
    if item.get("status") != "waiting" or item.get("resumeAt") != schedule_iso(at):
        update_campaign(client, campaign_id, status="waiting", resumeAt=schedule_iso(at), waitReason=why)
        emit(
            client,
            settings,
            "Campaign Waiting",
            {"campaignId": campaign_id, "stage": int(stage["index"]), "resumeAt": schedule_iso(at), "reason": why},
        )
    logger.info(
        "waiting",
        extra={"campaignId": campaign_id, "until": schedule_iso(at), "for": reasons[why], "realSeconds": seconds},
    )
    return {**out, "action": "wait", "waitSeconds": seconds, "resumeAt": schedule_iso(at)}


def variant_counters(
    client: Client, settings: Settings, campaign_id: str, ids_: list[str]
) -> dict[str, dict[str, Any]]:
    """The A/B sample's counters per variant (stage 0)."""
    return {vid: _numbers(stage_item(client, settings, campaign_id, f"0#variant#{vid}")) for vid in ids_}


def _ab_decision(
    client: Client, settings: Settings, campaign_id: str, item: dict[str, Any], stage: int
) -> float | None:
    """Before the first stage after the A/B sample: None once the winner is known (decided
    now when the sample's observation time is over), else the real seconds to wait (manual
    pick: until ``sesflow campaign pick-winner``, which ends the wait)."""
    plan_doc = item.get("plan") or {}
    ab = plan_doc.get("abTest")
    if not ab or stage < 1 or item.get("abDecision"):
        return None
    if ab.get("pick") == "manual":
        return float(MAX_WAIT_SECONDS)
    last = stage_item(client, settings, campaign_id, 0).get("lastSendAt")
    decide_at = (float(last) if last else time.time()) + int(ab.get("observeSeconds", 0))
    if time.time() < decide_at:
        return decide_at - time.time()
    ids_ = [str(v["id"]) for v in plan_doc.get("variants") or []]
    decision = abtest.choose(
        variant_counters(client, settings, campaign_id, ids_), ids_, str(ab["metric"]), int(ab["minSample"])
    )
    record_ab_decision(
        client("dynamodb"),
        client("events"),
        _campaigns_table(client),
        settings.event_bus,
        campaign_id,
        {**decision, "by": "auto"},
    )
    return None


def record_ab_decision(
    ddb: Any, events_client: Any, campaigns_table: str, event_bus: str, campaign_id: str, decision: dict[str, Any]
) -> bool:
    """Keep the A/B decision on the campaign (once: a manual pick or the first automatic
    decision wins) and announce it (``Campaign Variant Chosen``). The CLI's pick-winner uses
    it too, with the caller's credentials."""
    decision = {**decision, "decidedAt": now_iso()}
    try:
        ddb.update_item(
            TableName=campaigns_table,
            Key={"campaignId": {"S": campaign_id}},
            UpdateExpression="SET abDecision = :d",
            ConditionExpression="attribute_not_exists(abDecision)",
            ExpressionAttributeValues={":d": dynamo.to_value(json.loads(json.dumps(decision)))},
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    logger.info(
        "A/B winner", extra={"campaignId": campaign_id, "winner": decision["winner"], "reason": decision["reason"]}
    )
    events.put(events_client, event_bus, "Campaign Variant Chosen", {"campaignId": campaign_id, **decision})
    return True


def _slot_order(
    client: Client, settings: Settings, campaign_id: str, stage: dict[str, Any], schedule: SendSchedule, now: float
) -> list[tuple[int, float]]:
    """(part, target time) in send order: each slot's next ``localTime`` from the stage's first
    pass, earliest first. Written once on the stage's counter item (a retry or a resumed
    execution reads the same order), with the targets the report measures the spread from."""
    ddb = client("dynamodb")
    key = _counter_key(campaign_id, stage["index"])
    found = ddb.get_item(TableName=settings.tracking_table, Key=key, ConsistentRead=True).get("Item", {})
    if "slotOrder" not in found:
        slots = [int(o) for o in stage["slots"]]
        planned = sorted((schedule.slot_target(o, now), i) for i, o in enumerate(slots))
        order = [{"part": i, "target": round(t, 3), "offset": slots[i]} for t, i in planned]
        try:
            ddb.update_item(
                TableName=settings.tracking_table,
                Key=key,
                UpdateExpression="SET slotOrder = :o",
                ConditionExpression="attribute_not_exists(slotOrder)",
                ExpressionAttributeValues={":o": dynamo.to_value(order)},
            )
        except ddb.exceptions.ConditionalCheckFailedException:
            pass
        found = ddb.get_item(TableName=settings.tracking_table, Key=key, ConsistentRead=True)["Item"]
    order_doc = dynamo.to_plain(found)["slotOrder"]
    return [(int(o["part"]), float(o["target"])) for o in order_doc]


def hold(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``WaitForWindow``: keep the wait's task token on the campaign, so that pause, resume and
    cancel can end the wait at once; unless the control word changed since ``ready`` decided
    to wait (the operator's command came in between): then :class:`CampaignWoken`, and the
    machine decides again. (The command writes the control word, then reads the token: one of
    the two sees the other.)"""
    ddb, seen = client("dynamodb"), str(event.get("control") or RUN)
    try:
        ddb.update_item(
            TableName=_campaigns_table(client),
            Key={"campaignId": {"S": event["campaignId"]}},
            UpdateExpression="SET waitToken = :t",
            # (no control word reads as "run"; two values are never compared in a condition)
            ConditionExpression="#c = :c" + (" OR attribute_not_exists(#c)" if seen == RUN else ""),
            ExpressionAttributeNames={"#c": "control"},
            ExpressionAttributeValues={":t": {"S": event["taskToken"]}, ":c": {"S": seen}},
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        raise CampaignWoken("the campaign's control word changed: deciding again") from None
    return {"holding": True}


# ---------------------------------------------------------------- control, gate, approval
def after_stage(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    campaign_id, stage = event["campaignId"], int(event["stage"])
    item = campaign_item(client, campaign_id)
    control = item.get("control", RUN)
    current = event.get("current") or {}
    part, parts = int(current.get("part") or 0), int((current.get("stage") or {}).get("parts") or 1)
    if control == CANCELLED:
        return {"action": "cancelled", "part": part}
    if control == PAUSED:
        update_campaign(client, campaign_id, status="paused")
        return {"action": "paused", "part": part}
    item = stage_item(client, settings, campaign_id, stage)
    counters = _numbers(item)
    unaccounted = _unaccounted(item)
    this_pass = _unaccounted({"failedBatches": item.get("failedBatches")})  # this part's failed batches
    resends = int(event.get("failedBatchResends") or 0)
    if this_pass and resends < FAILED_BATCH_RESENDS:
        # batches whose worker died twice (their child executions failed, within the tolerated
        # failures): send the stage again, a bounded number of times (the machine counts them)
        logger.warning(
            "failed batches: sending the stage again",
            extra={"campaignId": campaign_id, "stage": stage, "failedBatches": item.get("failedBatches")},
        )
        _reset_stage(client, settings, campaign_id, stage)
        update_campaign(client, campaign_id, status="running")
        return {"action": "resend-failed", "part": part}
    if counters.get("skipped"):
        # batches skipped while paused, or past their time budget or throttling: send the stage
        # again (the ledger skips those sent)
        _reset_stage(client, settings, campaign_id, stage)
        update_campaign(client, campaign_id, status="running")
        return {"action": "resend", "part": part}
    if part + 1 < parts:
        # the next part of the stage (a capped campaign: about a day's worth); what the failed
        # batches of this part left is carried, not sent again with the next part
        if this_pass:
            _carry_unaccounted(client, settings, campaign_id, stage, this_pass)
        return {"action": "next-part", "part": part + 1}
    if unaccounted:
        # still failed after the last pass: the stage goes on, and the summary says how many
        logger.warning(
            "failed batches after the last pass",
            extra={"campaignId": campaign_id, "stage": stage, "failedBatches": item.get("failedBatches")},
        )
        counters["unaccounted"] = unaccounted
    update_campaign(client, campaign_id, status="running")
    emit(
        client, settings, "Campaign Stage Completed", {"campaignId": campaign_id, "stage": stage, "counters": counters}
    )
    return {"action": "done" if event.get("isLast") else "observe", "counters": counters, "part": part}


#: how many times a stage is sent again because batches failed (each pass sends what the
#: failed batches left; the ledger skips the rest); after that the summary counts them
FAILED_BATCH_RESENDS = 2


def _reset_stage(client: Client, settings: Settings, campaign_id: str, stage: int) -> None:
    """Before the stage is sent again: its next pass records what it skips or leaves anew."""
    client("dynamodb").update_item(
        TableName=settings.tracking_table,
        Key=_counter_key(campaign_id, stage),
        UpdateExpression="SET skipped = :z REMOVE failedBatches",
        ExpressionAttributeValues={":z": {"N": "0"}},
    )


def batch_failed(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A batch's child execution failed (its worker died twice, or stopped on a set-up error):
    account for its recipients before the child ends failed.

    A claim of this batch still ``sending`` is an unknown outcome (failed, never sent again);
    a recipient with no tracking item (or a free ledger still ``sending``) has no outcome: the
    batch is recorded on the stage's counter item, ``failedBatches.<batch>`` = that number, so
    that ``after-stage`` sends the stage again. Idempotent (a retried call records the same)."""
    batch = event["batch"]
    campaign_id, stage, number = batch["campaignId"], int(batch["stage"]), int(batch["batch"])
    owner = batch_owner(campaign_id, stage, number)
    ddb, table = client("dynamodb"), settings.tracking_table
    unknown = unaccounted = 0
    for r in batch["recipients"]:
        email_id = cp.email_id_for(campaign_id, str(r["to"]).lower())
        item = ddb.get_item(
            TableName=table,
            Key={"emailId": {"S": email_id}},
            ConsistentRead=True,
            ProjectionExpression="#s, sendState, sendOwner, #r",
            ExpressionAttributeNames={"#s": "status", "#r": "result"},
        ).get("Item")
        if item is None:
            unaccounted += 1  # never attempted (or suppressed since planning: no item either)
        elif ledger.attr(item, "status") == SENDING:
            if _held_by(item, owner) and sent_message_id(ddb, table, item):
                continue  # sent: its result chunk says so
            if _held_by(item, owner) and _record_unknown(ddb, table, email_id, owner, WORKER_DIED):
                unknown += 1
            else:
                unaccounted += 1
    error = event.get("error") or {}
    logger.warning(
        "batch failed",
        extra={
            "campaignId": campaign_id,
            "stage": stage,
            "batch": number,
            "unknown": unknown,
            "unaccounted": unaccounted,
            "error": error.get("Error") if isinstance(error, dict) else str(error)[:200],
        },
    )
    _retried(partial(_record_failed_batch, ddb, table, campaign_id, stage, number, unaccounted, unknown))
    return {"batch": number, "unknown": unknown, "unaccounted": unaccounted}


def _record_failed_batch(
    ddb: Any, table: str, campaign_id: str, stage: int, batch: int, unaccounted: int, unknown: int
) -> None:
    """``failedBatches.<batch> = unaccounted`` (when some are) and ``ADD unknown``, in one write."""
    add = " ADD #u :u" if unknown else ""
    base: dict[str, Any] = {":u": {"N": str(unknown)}} if unknown else {}
    names = {"#u": "unknown"} if unknown else {}
    if not unaccounted:
        if unknown:
            ddb.update_item(
                TableName=table,
                Key=_counter_key(campaign_id, stage),
                UpdateExpression=add.strip(),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=base,
            )
        return
    # a map entry can only be set inside an existing map: set the map when there is none
    in_map = {
        "UpdateExpression": "SET failedBatches.#b = :n" + add,
        "ConditionExpression": "attribute_exists(failedBatches)",
        "ExpressionAttributeNames": {**names, "#b": str(batch)},
        "ExpressionAttributeValues": {**base, ":n": {"N": str(unaccounted)}},
    }
    new_map = {
        "UpdateExpression": "SET failedBatches = :m" + add,
        "ConditionExpression": "attribute_not_exists(failedBatches)",
        **({"ExpressionAttributeNames": names} if names else {}),
        "ExpressionAttributeValues": {**base, ":m": {"M": {str(batch): {"N": str(unaccounted)}}}},
    }
    for attempt in (in_map, new_map, in_map):
        try:
            ddb.update_item(TableName=table, Key=_counter_key(campaign_id, stage), **attempt)
            return
        except ddb.exceptions.ConditionalCheckFailedException:
            continue  # the map appeared (or went) in between: the other form applies
    raise RuntimeError(f"could not record failed batch {batch} of stage {stage}")


def run_gate(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    campaign_id, stage = event["campaignId"], int(event["stage"])
    g = event["gate"]
    decision = cp.gate(
        stage_counters(client, settings, campaign_id, stage),
        cp.GateSettings(
            max_bounce_rate=float(g["maxBounceRate"]),
            max_complaint_rate=float(g["maxComplaintRate"]),
            min_sample=int(g["minSample"]),
            observe_seconds=int(g["observeSeconds"]),
            approval=g["approval"],
            max_failure_rate=float(g.get("maxFailureRate", 0.05)),
        ),
    )
    _record_gate(client, campaign_id, {"stage": stage, **decision.as_dict(), "at": now_iso()})
    if decision.action == "halt":
        update_campaign(
            client,
            campaign_id,
            status="halted",
            haltReason=decision.reason,
            haltedAtStage=stage,
            gate=decision.as_dict(),
        )
    logger.info("gate", extra={"campaignId": campaign_id, "stage": stage, **decision.as_dict()})
    return decision.as_dict()


def _record_gate(client: Client, campaign_id: str, decision: dict[str, Any]) -> None:
    """Every gate's decision and its numbers stay on the campaign (status, report)."""
    client("dynamodb").update_item(
        TableName=_campaigns_table(client),
        Key={"campaignId": {"S": campaign_id}},
        UpdateExpression="SET gates = list_append(if_not_exists(gates, :empty), :d)",
        ExpressionAttributeValues={":empty": {"L": []}, ":d": {"L": [dynamo.to_value(decision)]}},
    )


def request_approval(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    campaign_id = event["campaignId"]
    update_campaign(
        client,
        campaign_id,
        status="awaiting-approval",
        taskToken=event["taskToken"],
        approvalStage=int(event["stage"]),
        gate=event.get("decision", {}),
    )
    emit(
        client,
        settings,
        "Campaign Approval Requested",
        {"campaignId": campaign_id, "stage": event["stage"], "decision": event.get("decision")},
    )
    return {"requested": True}


# ---------------------------------------------------------------- summarize
def _slot_report(
    client: Client,
    settings: Settings,
    campaign_id: str,
    stage: dict[str, Any],
    stage_doc: dict[str, Any],
    plan_doc: dict[str, Any],
) -> list[dict[str, Any]]:
    """Per send slot (localTime): its UTC offset, target time, emails sent, and how late the
    first and the last went after the target (real seconds: what the send rate costs)."""
    clock = Clock.from_dict(plan_doc.get("clock"))
    out = []
    for slot in stage_doc.get("slotOrder") or []:
        offset, target = int(slot["offset"]), float(slot["target"])
        c = stage_item(client, settings, campaign_id, f"{stage['index']}#slot#{offset}")
        real_target = clock.real_time(target)
        first, last = c.get("firstSendAt"), c.get("lastSendAt")
        out.append(
            {
                "offsetMinutes": offset,
                "target": schedule_iso(target),
                "sent": int(c.get("accepted", 0)),
                "firstLateSeconds": round(float(first) - real_target, 3) if first else None,
                "lastLateSeconds": round(float(last) - real_target, 3) if last else None,
            }
        )
    return out


def summarize(client: Client, event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    campaign_id = event["campaignId"]
    item = campaign_item(client, campaign_id)
    plan_doc = item.get("plan", {})
    if isinstance(event.get("reason"), dict):  # a Lambda error payload (Cause of a caught error)
        cause = event["reason"]
        # or the Error and Cause of a failed Map (PlanChunksFailed)
        message = cause.get("errorMessage", cause.get("Cause", ""))
        event = {**event, "reason": f"{cause.get('errorType', event.get('error'))}: {message}"}
    stages = []
    totals: dict[str, int] = {}
    sending_seconds = 0.0
    for st in plan_doc.get("stages", []):
        stage_doc = stage_item(client, settings, campaign_id, int(st["index"]))
        c = _numbers(stage_doc)
        if _unaccounted(stage_doc):
            c["unaccounted"] = _unaccounted(stage_doc)
        first, last = c.pop("firstSendAt", None), c.pop("lastSendAt", None)
        window = round(last - first, 3) if first and last else 0.0
        sending_seconds += window
        stage_report: dict[str, Any] = {
            "stage": int(st["index"]),
            "planned": int(st["planned"]),
            "sendingSeconds": window,
        }
        if stage_doc.get("slotOrder"):
            stage_report["slots"] = _slot_report(client, settings, campaign_id, st, stage_doc, plan_doc)
        stages.append({**stage_report, **c})
        for k, v in c.items():
            totals[k] = totals.get(k, 0) + int(v)
    status = item.get("status", "running")
    if event.get("expired"):
        status = "expired"
        event = {**event, "reason": f"no approval within {int(plan_doc.get('approvalTimeoutSeconds', 0))} s"}
    elif event.get("error"):
        status = "failed"
    elif item.get("control") == CANCELLED:
        status = "cancelled"
    elif status not in ("halted", "rejected"):
        status = "completed"
    duration = max(1e-6, time.time() - float(item.get("startedAt", time.time())))
    reason = item.get("haltReason") or event.get("reason")
    unaccounted = totals.get("unaccounted", 0)
    if unaccounted and not reason:
        reason = (
            f"{unaccounted} recipient(s) have no outcome: their batches failed in every pass "
            f"(the stage was sent {FAILED_BATCH_RESENDS} more times); never attempted, not sent"
        )
    report = {
        "campaignId": campaign_id,
        "status": status,
        "reason": reason,
        "unaccounted": unaccounted,
        "counts": plan_doc.get("counts", {}),
        "stages": stages,
        "totals": totals,
        "gates": item.get("gates", []),
        "mergedEmptyStages": plan_doc.get("mergedEmptyStages", []),
        "durationSeconds": round(duration, 3),
        "sendingSeconds": round(sending_seconds, 3),
        "achievedSendRate": round(totals.get("accepted", 0) / sending_seconds, 3) if sending_seconds else 0.0,
        "maxSendRate": plan_doc.get("maxSendRate"),
        "maxConcurrency": plan_doc.get("maxConcurrency"),
        "throttledCalls": totals.get("throttled", 0),
        "throttledPercent": round(100 * totals.get("throttled", 0) / max(1, totals.get("accepted", 0)), 3),
        "error": event.get("error"),
    }
    if plan_doc.get("variants"):
        ids_ = [str(v["id"]) for v in plan_doc["variants"]]
        report["abTest"] = {
            **plan_doc.get("abTest", {}),
            "decision": item.get("abDecision"),
            # the sample's numbers now (opens and clicks keep coming after the decision)
            "variants": abtest.rates(variant_counters(client, settings, campaign_id, ids_), ids_),
        }
    key = f"campaigns/{campaign_id}/report.json"
    client("s3").put_object(
        Bucket=plan_doc.get("bucket") or settings.campaigns_bucket,
        Key=key,
        Body=json.dumps(report, indent=2, default=str).encode(),
    )
    update_campaign(client, campaign_id, status=status, reportKey=key, finishedAt=now_iso(), summary=report)
    emit(client, settings, "Campaign Completed" if status == "completed" else f"Campaign {status.title()}", report)
    return report
