"""Campaign functions: plan (manifests, rejects, counts, suppressed dropped), send a batch
(each recipient once, pause, the time budget), and control (after a stage, the gate, the summary)."""

from __future__ import annotations

import csv
import email
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sesflow_aws import campaign_flow
from sesflow_core import campaign as cp
from sesflow_core import errors
from sesflow_handlers import _common, campaign_control, campaign_plan, campaign_send_batch

from .conftest import CAMPAIGNS, CAMPAIGNS_BUCKET, TEMPLATES_BUCKET, Aws, LambdaContext, ses_client_error
from .conftest import TRACKING as TRACKING_TABLE

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

CID = "camp-1"
DATA = {"title": "Acme monthly", "intro": "Hello!", "articles": []}
EXECUTION = f"arn:aws:states:us-east-1:123456789012:execution:sesflow-test-campaign:{CID}"


def counters(aws: Aws, stage: int, campaign_id: str = CID) -> dict[str, Any]:
    item = aws.item(f"campaign#{campaign_id}#stage#{stage}")
    return {k: v for k, v in item.items() if k != "emailId"}


# ================================================================ plan

ROWS = [
    "email,name,plan",
    "not-an-address,Broken,free",  # row 2: rejected
    *[f"user{i}@example.org,User {i},pro" for i in range(20)],  # rows 3-22
    "USER1@Example.org,Duplicate,pro",  # row 23: a duplicate of row 4
    "blocked@example.org,Blocked,pro",  # suppressed for every topic
    "news-off@example.org,Off,pro",  # unsubscribed from the newsletter
    "tx-off@example.org,Tx,pro",  # suppressed for transactional mail only: still planned
]
PLANNED = {f"user{i}@example.org" for i in range(20)} | {"tx-off@example.org"}


def plan_input(**fields: Any) -> dict[str, Any]:
    raw = {
        "campaignId": CID,
        "template": "newsletter",
        "topic": "newsletter",
        "recipients": {"key": "uploads/list.csv"},
        "data": DATA,
        "stages": [50, 100],
        "batchSize": 4,
        "maxSendRate": 20,
    }
    raw.update(fields)
    return {"input": raw, "executionArn": EXECUTION}


@pytest.fixture
def listed(aws: Aws) -> Aws:
    aws.put_object(CAMPAIGNS_BUCKET, "uploads/list.csv", "\n".join(ROWS) + "\n")
    aws.suppress("blocked@example.org", "*")
    aws.suppress("news-off@example.org", "newsletter")
    aws.suppress("tx-off@example.org", "~transactional")
    return aws


def test_plan_writes_a_manifest_per_stage_and_the_rejects(listed: Aws, ctx: LambdaContext) -> None:
    aws = listed
    plan = campaign_plan.handler(plan_input(), ctx)
    assert plan["campaignId"] == CID and plan["bucket"] == CAMPAIGNS_BUCKET
    assert (plan["template"], plan["topic"], plan["data"]) == ("newsletter", "newsletter", DATA)
    assert plan["counts"] | {"planned": None, "batches": None} == {
        "rows": 25,
        "valid": 23,  # unique
        "invalid": 1,
        "duplicates": 1,
        "suppressed": 2,
        "planned": None,
        "batches": None,
    }
    assert sum(plan["counts"]["planned"]) == len(PLANNED)
    assert (plan["maxSendRate"], plan["maxConcurrency"], plan["workerRate"]) == (20, 1, 19.8)
    assert [(s["index"], s["percent"], s["isLast"]) for s in plan["stages"]] == [(0, 50.0, False), (1, 100.0, True)]
    planned: list[str] = []
    for stage in plan["stages"]:
        assert stage["key"] == f"campaigns/{CID}/stage-{stage['index']}.json"
        batches = aws.get_json(CAMPAIGNS_BUCKET, stage["key"])
        assert len(batches) == stage["batches"] == plan["counts"]["batches"][stage["index"]]
        assert [b["batch"] for b in batches] == list(range(len(batches)))
        for b in batches:
            assert (b["campaignId"], b["stage"]) == (CID, stage["index"]) and 1 <= len(b["recipients"]) <= 4
        recipients = [r for b in batches for r in b["recipients"]]
        assert len(recipients) == stage["planned"]
        # each recipient in the stage its stable hash gives it
        assert all(cp.stage_for(CID, r["to"].lower(), (50.0, 100.0)) == stage["index"] for r in recipients)
        planned += [r["to"].lower() for r in recipients]
    assert sorted(planned) == sorted(PLANNED)  # once each: no duplicate, nothing suppressed
    user3 = next(
        r
        for s in plan["stages"]
        for b in aws.get_json(CAMPAIGNS_BUCKET, s["key"])
        for r in b["recipients"]
        if r["to"] == "user3@example.org"
    )
    assert user3 == {"to": "user3@example.org", "toName": "User 3", "data": {"plan": "pro"}}
    rejects = list(
        csv.reader(
            io.StringIO(
                aws.client("s3").get_object(Bucket=CAMPAIGNS_BUCKET, Key=plan["rejectsKey"])["Body"].read().decode()
            )
        )
    )
    assert rejects[0] == ["row", "reason"]
    assert [r[0] for r in rejects[1:]] == ["2"] and "not a valid address" in rejects[1][1]
    item = aws.campaign(CID)
    assert (item["status"], item["control"], item["executionArn"]) == ("running", "run", EXECUTION)
    assert item["plan"] == plan
    [started] = aws.events("Campaign Started")
    assert started["detail"]["counts"] == plan["counts"]


def test_a_second_plan_resumes_the_first(listed: Aws, ctx: LambdaContext) -> None:
    first = campaign_plan.handler(plan_input(), ctx)
    listed.client("s3").delete_object(Bucket=CAMPAIGNS_BUCKET, Key="uploads/list.csv")  # not read again
    again = campaign_plan.handler({**plan_input(), "executionArn": EXECUTION + "-2"}, ctx)
    assert again == first
    assert listed.campaign(CID)["executionArn"] == EXECUTION + "-2"
    assert len(listed.events("Campaign Started")) == 1


def test_a_template_that_cannot_render_names_the_row(listed: Aws, ctx: LambdaContext) -> None:
    with pytest.raises(errors.TemplateRenderError, match=r"row 3\).*missing variable\(s\): articles"):
        campaign_plan.handler(plan_input(data={"title": "T", "intro": "i"}), ctx)
    assert listed.campaign(CID) == {}
    assert listed.events() == []


def files_in(path: Path) -> list[str]:
    return sorted(str(Path(d, f).relative_to(path)) for d, _, names in os.walk(path) for f in names)


def test_a_plan_leaves_no_file_in_the_workdir(listed: Aws, ctx: LambdaContext) -> None:
    campaign_plan.handler(plan_input(), ctx)
    assert files_in(Path(listed.env["PLAN_WORKDIR"])) == []


def test_a_failed_plan_leaves_no_file_in_the_workdir(listed: Aws, ctx: LambdaContext) -> None:
    with pytest.raises(errors.TemplateRenderError):
        campaign_plan.handler(plan_input(data={"title": "T", "intro": "i"}), ctx)
    assert files_in(Path(listed.env["PLAN_WORKDIR"])) == []


# ---------------------------------------------------------------- the distributed plan
def big_list() -> str:
    """About 100 KB: seven chunks of 16 KiB, with duplicates far apart (in other chunks),
    invalid rows and suppressed addresses spread over the list."""
    rows = ["email,name,plan"]
    for i in range(3000):
        rows.append(f"user{i}@example.org,User {i},pro")
        if i % 97 == 0:
            rows.append(f"broken-{i},Broken,free")
        if i % 113 == 0:
            rows.append(f"USER{i // 7}@Example.org,Again,free")  # a duplicate of an earlier row
    rows += ["blocked@example.org,Blocked,pro", "news-off@example.org,Off,pro", "user5@example.org,Last,x"]
    return "\n".join(rows) + "\n"


def run_chunked(ctx: LambdaContext, first: dict[str, Any]) -> dict[str, Any]:
    """What the machine does with Plan's planChunks: the Map's items, then MergePlan."""
    chunked = first["planChunks"]
    for item in chunked["chunks"]:
        done = campaign_plan.handler(
            {"phase": "chunk", "chunk": item, "input": chunked["input"], "header": chunked["header"]}, ctx
        )
        assert done["index"] == item["index"]
    merge = {k: chunked[k] for k in ("input", "chunks", "listBytes", "startedAt")}
    return campaign_plan.handler({"phase": "merge", **merge, "executionArn": EXECUTION}, ctx)


def stored(aws: Aws, plan: dict[str, Any]) -> dict[str, bytes]:
    s3 = aws.client("s3")
    keys = [cp.part_key(st["key"], n) for st in plan["stages"] for n in range(st["parts"])] + [plan["rejectsKey"]]
    return {k: s3.get_object(Bucket=CAMPAIGNS_BUCKET, Key=k)["Body"].read() for k in keys}


def test_a_list_over_the_chunk_size_is_planned_in_chunks_as_one_process_plans_it(
    listed: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = listed
    aws.put_object(CAMPAIGNS_BUCKET, "uploads/list.csv", big_list())
    monkeypatch.setenv("PLAN_CHUNK_KIB", "16")
    first = campaign_plan.handler(plan_input(batchSize=None), ctx)
    assert set(first) == {"campaignId", "planChunks"} and first["campaignId"] == CID
    chunked = first["planChunks"]
    assert len(chunked["chunks"]) == 7 and chunked["header"] == ["email", "name", "plan"]
    assert chunked["input"]["maxSendRate"] == 20 and chunked["input"]["batchSize"] == cp.batch_size_for(19.8)
    assert aws.campaign(CID) == {}  # nothing recorded before the merge
    plan = run_chunked(ctx, first)
    files = stored(aws, plan)
    assert aws.campaign(CID)["plan"] == plan and len(aws.events("Campaign Started")) == 1
    # the chunks' files are gone; nothing is left in the workdir
    listing = aws.client("s3").list_objects_v2(Bucket=CAMPAIGNS_BUCKET, Prefix=f"campaigns/{CID}/plan/")
    assert listing.get("KeyCount", 0) == 0
    assert files_in(Path(aws.env["PLAN_WORKDIR"])) == []
    # a merge run again (a retried state) returns the plan it made, and reads no chunk
    merge = {k: chunked[k] for k in ("input", "chunks", "listBytes", "startedAt")}
    assert campaign_plan.handler({"phase": "merge", **merge}, ctx) == plan
    # the same campaign planned by one process: the same counts, manifests and rejects
    aws.client("dynamodb").delete_item(TableName=CAMPAIGNS, Key={"campaignId": {"S": CID}})
    monkeypatch.setenv("PLAN_CHUNK_KIB", "1024")
    single = campaign_plan.handler(plan_input(batchSize=None), ctx)
    assert "planChunks" not in single
    assert single["counts"] == plan["counts"] and single["stages"] == plan["stages"]
    assert {k: v for k, v in single.items() if k != "suppressionCheckedAt"} == {
        k: v for k, v in plan.items() if k != "suppressionCheckedAt"
    }
    assert stored(aws, single) == files
    assert plan["counts"]["duplicates"] > 20 and plan["counts"]["invalid"] > 20 and plan["counts"]["suppressed"] == 2


def test_a_chunked_plan_checks_the_first_rows_before_the_map(
    listed: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed.put_object(CAMPAIGNS_BUCKET, "uploads/list.csv", big_list())
    monkeypatch.setenv("PLAN_CHUNK_KIB", "16")
    with pytest.raises(errors.TemplateRenderError, match=r"row 2\).*missing variable\(s\): articles"):
        campaign_plan.handler(plan_input(data={"title": "T", "intro": "i"}), ctx)
    listed.put_object(CAMPAIGNS_BUCKET, "uploads/list.csv", "name,plan\n" + "x,y\n" * 9000)
    with pytest.raises(errors.InvalidCampaign, match="email"):
        campaign_plan.handler(plan_input(), ctx)
    assert listed.campaign(CID) == {} and listed.events() == []
    assert files_in(Path(listed.env["PLAN_WORKDIR"])) == []


def test_a_missing_template_is_template_not_found(listed: Aws, ctx: LambdaContext) -> None:
    with pytest.raises(errors.TemplateNotFound):
        campaign_plan.handler(plan_input(template="no-such-template"), ctx)


def test_the_recipients_must_be_in_the_campaigns_bucket(listed: Aws, ctx: LambdaContext) -> None:
    with pytest.raises(errors.InvalidCampaign, match="not one this stack may read"):
        campaign_plan.handler(plan_input(recipients={"bucket": "someone-elses-bucket", "key": "list.csv"}), ctx)


def test_without_a_rate_the_account_rate_is_used(
    listed: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_common.client("sesv2"), "get_account", lambda: {"SendQuota": {"MaxSendRate": 14.0}})
    plan = campaign_plan.handler(plan_input(maxSendRate=None), ctx)
    assert (plan["maxSendRate"], plan["maxConcurrency"]) == (14.0, 1)


def test_an_empty_stage_is_merged_into_the_next(aws: Aws, ctx: LambdaContext) -> None:
    late = [a for a in (f"u{i}@example.org" for i in range(50)) if cp.stage_for(CID, a, (1.0, 100.0)) == 1][:3]
    aws.put_object(CAMPAIGNS_BUCKET, "uploads/list.csv", "email\n" + "\n".join(late) + "\n")
    plan = campaign_plan.handler(plan_input(stages=[1, 100]), ctx)
    assert plan["mergedEmptyStages"] == [0]
    assert [(s["index"], s["planned"], s["isLast"]) for s in plan["stages"]] == [(1, 3, True)]


# ================================================================ send a batch

RECIPIENTS = ["ada@example.org", "grace@example.org", "kat@example.org"]


def batch_event(recipients: list[str] = RECIPIENTS, stage: int = 0, batch: int = 0) -> dict[str, Any]:
    return {
        "batch": {
            "campaignId": CID,
            "stage": stage,
            "batch": batch,
            "recipients": [{"to": r, "toName": None, "data": {"plan": "pro"}} for r in recipients],
        },
        "template": "newsletter",
        "topic": "newsletter",
        "data": DATA,
        "workerRate": 0,  # no pacing in tests
    }


def running(aws: Aws, control: str = "run") -> None:
    campaign_flow.update_campaign(_common.client, CID, status="running", control=control)


def send_batch(ctx: LambdaContext, event: dict[str, Any] | None = None) -> dict[str, Any]:
    result: dict[str, Any] = campaign_send_batch.handler(event or batch_event(), ctx)
    return result


def email_id(address: str) -> str:
    return cp.email_id_for(CID, address)


def test_a_batch_sends_each_recipient_once(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    result = send_batch(ctx)
    assert result == {
        "batch": 0,
        "control": "run",
        "accepted": 3,
        "duplicates": 0,
        "suppressed": 0,
        "failed": 0,
        "unknown": 0,
        "throttled": 0,
        "skipped": 0,
    }
    sent = aws.sent()
    assert sorted(m.destinations[0] for m in sent) == sorted(RECIPIENTS)
    msg = email.message_from_string(sent[0].raw_data)
    assert msg["Subject"] == "Acme monthly" and msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for address in RECIPIENTS:
        item = aws.item(email_id(address))
        assert (item["status"], item["statusSequence"], item["recipient"]) == ("sent", 1, address)
        assert (item["campaignId"], item["stage"], item["template"], item["topic"]) == (
            CID,
            "0",
            "newsletter",
            "newsletter",
        )
        assert (item["sendState"], item["sendOwner"]) == ("sent", f"{CID}:0:0")  # released after SES accepted
    c = counters(aws, 0)
    assert c["accepted"] == 3 and c["firstSendAt"] <= c["lastSendAt"]
    # the same batch again (a retried child): duplicates, nothing sent
    again = send_batch(ctx)
    assert (again["accepted"], again["duplicates"]) == (0, 3)
    assert len(aws.sent()) == 3
    assert (counters(aws, 0)["accepted"], counters(aws, 0)["duplicates"]) == (3, 3)


def test_recipients_suppressed_since_planning_are_skipped(aws: Aws, ctx: LambdaContext) -> None:
    """A plan made before the bySince index (no suppressionCheckedAt): every recipient is
    looked up again."""
    running(aws)
    aws.suppress("grace@example.org", "~subscription")  # unsubscribed after the plan
    result = send_batch(ctx)
    assert (result["accepted"], result["suppressed"]) == (2, 1)
    assert "grace@example.org" not in {m.destinations[0] for m in aws.sent()}
    assert aws.item(email_id("grace@example.org")) == {}


def test_a_batch_reads_only_the_entries_added_since_its_plan(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan recorded when it looked the list up: the batch reads the entries added since
    (one Query of bySince), not each recipient; an older entry (the plan saw it) is not read."""
    from sesflow_aws import suppression

    def iso(seconds_ago: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))

    checked = iso(86_400)  # the plan looked the list up a day ago
    campaign_flow.update_campaign(
        _common.client, CID, status="running", control="run", plan={"suppressionCheckedAt": checked}
    )
    ddb = _common.client("dynamodb")
    table = os.environ["SUPPRESSION_TABLE"]
    monkeypatch.setattr("sesflow_aws.suppression.now_iso", lambda: iso(86_460))
    suppression.add(ddb, table, "ada@example.org", "*", "permanent bounce", "old")  # before: the plan saw it
    monkeypatch.setattr("sesflow_aws.suppression.now_iso", lambda: iso(3_600))
    suppression.add(ddb, table, "grace@example.org", "~subscription", "unsubscribed", "one-click")
    suppression.add(ddb, table, "linus@example.org", "offers", "unsubscribed", "one-click")  # another topic
    calls: list[str] = []
    ddb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    try:
        result = send_batch(ctx)
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.*")
    assert (result["accepted"], result["suppressed"]) == (2, 1)  # ada was filtered by the plan, not here
    assert "BatchGetItem" not in calls and calls.count("Query") >= 1
    assert "grace@example.org" not in {m.destinations[0] for m in aws.sent()}


def test_added_since_reads_each_day_and_gives_up_past_a_week(aws: Aws) -> None:
    from sesflow_aws import suppression

    ddb, table = aws.client("dynamodb"), os.environ["SUPPRESSION_TABLE"]
    for day, address in (("2026-12-01T09:00:00Z", "a@example.org"), ("2026-12-03T23:59:59Z", "b@example.org")):
        ddb.update_item(
            **suppression.entry_update(table, address, "*", "r", "s")
            | {
                "ExpressionAttributeValues": {
                    ":reason": {"S": "r"},
                    ":source": {"S": "s"},
                    ":now": {"S": day},
                    ":day": {"S": day[:10]},
                    ":one": {"N": "1"},
                }
            }
        )
    now = 1796688000.0  # 2026-12-04T00:00:00Z
    assert suppression.added_since(ddb, table, "2026-12-01T08:00:00Z", "news", now) == {
        "a@example.org",
        "b@example.org",
    }
    assert suppression.added_since(ddb, table, "2026-12-01T10:00:00Z", "news", now) == {"b@example.org"}
    assert suppression.added_since(ddb, table, "2026-11-20T10:00:00Z", "news", now) is None  # look up instead


def test_a_plan_reads_a_small_suppression_list_once_instead_of_each_recipient(aws: Aws) -> None:
    from sesflow_aws import suppression

    ddb, table = aws.client("dynamodb"), os.environ["SUPPRESSION_TABLE"]
    aws.suppress("all@example.org", "*")
    aws.suppress("news@example.org", "newsletter")
    aws.suppress("offers@example.org", "offers")
    calls: list[str] = []
    ddb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    try:
        lookup = suppression.plan_lookup(ddb, table, "newsletter", list_bytes=40_000)  # ~1,000 rows
        found = lookup(["all@example.org", "news@example.org", "offers@example.org", "x@example.org"])
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.*")
    assert found == {"all@example.org", "news@example.org"}
    assert "Scan" in calls and "BatchGetItem" not in calls
    # a list of 20 rows reads less with lookups than with a Scan of a larger table
    big = {"Table": {"TableSizeBytes": 10**9, "ItemCount": 10**7}}
    ddb_big = type("D", (), {"describe_table": lambda self, **_: big, "batch_get_item": ddb.batch_get_item})()
    assert suppression.plan_lookup(ddb_big, table, "newsletter", list_bytes=800)(["all@example.org"]) == {
        "all@example.org"
    }


@pytest.mark.parametrize("control", ["paused", "cancelled"])
def test_a_paused_or_cancelled_campaign_skips_the_whole_batch(aws: Aws, ctx: LambdaContext, control: str) -> None:
    running(aws, control)
    result = send_batch(ctx)
    assert (result["control"], result["skipped"], result["accepted"]) == (control, 3, 0)
    assert aws.sent() == []
    assert counters(aws, 0) == {"skipped": 3}


def test_the_time_budget_skips_the_rest_and_a_resend_sends_it(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    left = iter([60_000, 14_999, 14_999])
    ctx.get_remaining_time_in_millis = lambda: next(left)  # type: ignore[method-assign]
    result = send_batch(ctx)
    assert (result["accepted"], result["skipped"]) == (1, 2)
    assert len(aws.sent()) == 1
    assert sum(1 for a in RECIPIENTS if aws.item(email_id(a))) == 1  # the skipped were never claimed
    again = send_batch(LambdaContext())  # the stage sent again, with time to spare
    assert (again["accepted"], again["duplicates"]) == (2, 1)
    assert len(aws.sent()) == 3


def test_no_time_at_all_sends_nothing(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    ctx.remaining_ms = 14_000
    assert send_batch(ctx)["skipped"] == 3
    assert aws.sent() == []


def test_a_row_the_template_cannot_render_fails_alone(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    aws.put_template("needs-plan", "Hi {{ plan }}", "<p>{{ plan }}</p>", topic="newsletter")
    event = batch_event()
    event["template"] = "needs-plan"
    event["batch"]["recipients"][1]["data"] = {}  # no "plan" for grace
    result = send_batch(ctx, event)
    assert (result["accepted"], result["failed"]) == (2, 1)
    item = aws.item(email_id("grace@example.org"))
    assert (item["status"], item["sendState"]) == ("failed", "retryable")  # a resume with a fixed template may send
    assert "plan" in item["reason"]


def refuse(exc: Exception) -> Callable[..., Any]:
    """An SES SendEmail that always fails with ``exc``."""

    def send_email(**kwargs: Any) -> Any:
        raise exc

    return send_email


def test_ses_throttling_past_the_in_batch_retries_skips_the_rest(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    running(aws)
    monkeypatch.setattr(cp, "backoff_delay", lambda attempt: 0.0)
    throttled = ses_client_error("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
    monkeypatch.setattr(_common.client("sesv2"), "send_email", refuse(throttled))
    result = send_batch(ctx)
    assert (result["accepted"], result["throttled"], result["skipped"]) == (0, 6, 3)
    first = aws.item(email_id(RECIPIENTS[0]))
    assert (first["sendState"], first["reason"]) == ("retryable", "throttled")  # the resend may take it


def test_four_senders_send_each_recipient_once_and_record_every_answer(aws: Aws, ctx: LambdaContext) -> None:
    """A worker paced at 1,000/s runs 4 senders (threads) sharing its pacer: every recipient
    once, every messageId in a result chunk, the counters whole."""
    running(aws)
    recipients = [f"s{i}@example.org" for i in range(40)]
    event = batch_event(recipients) | {"workerRate": 1000}
    assert cp.sender_threads(1000) == 4
    result = send_batch(ctx, event)
    assert (result["accepted"], result["skipped"], result["duplicates"]) == (40, 0, 0)
    ids = {m.destinations[0]: m.id for m in aws.sent()}
    assert sorted(ids) == sorted(recipients) and len(aws.sent()) == 40
    assert all(aws.item(email_id(a))["messageId"] == ids[a] for a in recipients)
    # a second call (the Map child retried) sends nobody again
    assert send_batch(ctx, event)["duplicates"] == 40 and len(aws.sent()) == 40


def test_four_senders_stop_on_lasting_throttling_and_account_for_everyone(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SES throttles after 10 sends: the senders stop, whoever was not sent is skipped (sent
    when the stage is sent again), nobody is lost or counted twice."""
    running(aws)
    monkeypatch.setattr(cp, "backoff_delay", lambda attempt: 0.0)
    throttled = ses_client_error("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
    ses = _common.client("sesv2")
    real, calls, lock = ses.send_email, [0], threading.Lock()

    def send_email(**kwargs: Any) -> Any:
        with lock:
            calls[0] += 1
            if calls[0] > 10:
                raise throttled
        return real(**kwargs)

    monkeypatch.setattr(ses, "send_email", send_email)
    recipients = [f"t{i}@example.org" for i in range(40)]
    result = send_batch(ctx, batch_event(recipients) | {"workerRate": 1000})
    assert result["accepted"] == 10 == len(aws.sent())
    assert result["accepted"] + result["skipped"] == 40 and result["failed"] == result["unknown"] == 0
    states = {a: aws.item(email_id(a)).get("sendState") for a in recipients}
    assert list(states.values()).count("sent") == 10
    assert all(st in (None, "retryable") for st in states.values() if st != "sent")  # free for the next pass


@pytest.fixture
def access_denied(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    denied = ses_client_error("AccessDeniedException", "User is not authorized to perform ses:SendEmail", 403)
    monkeypatch.setattr(_common.client("sesv2"), "send_email", refuse(denied))
    yield


def test_a_configuration_error_stops_the_batch(aws: Aws, ctx: LambdaContext, access_denied: None) -> None:
    running(aws)
    with pytest.raises(errors.SesConfigurationError):
        send_batch(ctx)
    first = aws.item(email_id(RECIPIENTS[0]))
    assert first["sendState"] == "retryable"  # resendable once fixed
    assert aws.item(email_id(RECIPIENTS[1])) == {}  # the rest never claimed
    assert aws.sent() == []


def test_a_recipient_ses_refused_for_configuration_is_not_recorded_sent(
    aws: Aws, ctx: LambdaContext, access_denied: None
) -> None:
    running(aws)
    with pytest.raises(errors.SesConfigurationError):
        send_batch(ctx)
    assert aws.item(email_id(RECIPIENTS[0]))["status"] != "sent"


# ---------------------------------------------------------------- the claim says "sending" until SES answers


def throttled_write() -> Exception:
    """What botocore raises when DynamoDB throttling outlasts the SDK's own retries."""
    from botocore.exceptions import ClientError

    response: Any = {
        "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, "UpdateItem")


def test_a_sent_recipient_is_recorded_sent_with_its_message_id(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    send_batch(ctx)
    ids = {m.destinations[0]: m.id for m in aws.sent()}
    for address in RECIPIENTS:
        item = aws.item(email_id(address))
        assert (item["status"], item["sendState"]) == ("sent", "sent")
        assert item["messageId"] == ids[address] and item["sentAt"] >= item["sendStartedAt"]
        # as stored (ADR 0014): the claim alone, truthful, naming its result slot; no createdAt
        # and no messageId, so no entry in byCampaign or byMessageId
        raw = aws.item(email_id(address), raw=True)
        assert raw["status"] == raw["sendState"] == "sending" and raw["result"].startswith(f"r#{CID}:0:0#")
        assert "createdAt" not in raw and "messageId" not in raw


def test_a_claim_and_a_full_result_chunk_are_one_write_unit_each(aws: Aws, ctx: LambdaContext) -> None:
    """DynamoDB bills a write unit per KB of the item: with the longest campaign id (60) and
    SES-sized messageIds, a full result chunk stays under 1 KB, and so does a claim of an
    ordinary recipient. No claim has an index key (createdAt, messageId): no index write."""
    from sesflow.local import capacity

    cid = "c" * 60
    owner = campaign_flow.batch_owner(cid, 2, 1234)
    results = campaign_flow.BatchResults(aws.client("dynamodb"), TRACKING_TABLE, owner, 1_900_000_000, 250)
    message_id = "0100019bd1b3c4a5-5d3e2c1b-1f2e-4d5c-9b8a-7c6d5e4f3a2b-000000"
    assert len(message_id) == 60
    for n in range(240, 250):  # the widest positions, a (last) chunk of 10; and a full one below
        results.done(n, message_id)
    for n in range(228, 240):
        results.done(n, message_id)
    items = aws.client("dynamodb").scan(TableName=TRACKING_TABLE)["Items"]
    chunks = [i for i in items if i["emailId"]["S"].startswith("r#")]
    assert len(chunks) == 2 and max(capacity.item_size(c) for c in chunks) <= 1024
    running(aws)
    send_batch(ctx)
    claim = aws.client("dynamodb").get_item(TableName=TRACKING_TABLE, Key={"emailId": {"S": email_id(RECIPIENTS[0])}})[
        "Item"
    ]
    assert capacity.item_size(claim) <= 1024 and not {"createdAt", "messageId"} & set(claim)


def test_a_batch_writes_one_tracking_item_per_recipient_and_one_result_chunk_per_12(
    aws: Aws, ctx: LambdaContext
) -> None:
    """The claim is the only per-recipient write; the messageIds go in chunks of 12."""
    running(aws)
    event = batch_event([f"r{i}@example.org" for i in range(30)])
    calls: list[str] = []
    ddb = _common.client("dynamodb")
    ddb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    try:
        assert send_batch(ctx, event)["accepted"] == 30
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.*")
    table = os.environ["TRACKING_TABLE"]
    chunks = [i["emailId"]["S"] for i in ddb.scan(TableName=table)["Items"] if i["emailId"]["S"].startswith("r#")]
    assert len(chunks) == 3  # 12 + 12 + 6
    writes = [c for c in calls if c in ("UpdateItem", "PutItem")]
    assert len(writes) == 30 + 3 + 1  # the claims, the chunks, the stage counter


def test_a_worker_that_dies_after_its_claim_leaves_an_unknown_outcome_never_sent(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker dies between grace's claim and her SES call (a crash, a timeout): her item
    must not say "sent"; the batch's retry finds her claim held by the same batch, records her
    failed with an unknown outcome (never sent again, ADR 0002) and sends the rest."""
    from sesflow_aws import sending

    running(aws)
    deliver = sending.deliver

    def dies_on_grace(client: Any, settings: Any, request: Any, *args: Any) -> str:
        if request.recipient == "grace@example.org":
            raise RuntimeError("the worker died")
        return deliver(client, settings, request, *args)

    monkeypatch.setattr(sending, "deliver", dies_on_grace)
    with pytest.raises(RuntimeError):
        send_batch(ctx)
    grace = aws.item(email_id("grace@example.org"))
    assert grace["status"] != "sent" and "messageId" not in grace, grace
    assert [m.destinations[0] for m in aws.sent()] == ["ada@example.org"]

    monkeypatch.setattr(sending, "deliver", deliver)  # the Map child's retry
    again = send_batch(ctx)
    assert (again["accepted"], again["duplicates"], again["unknown"]) == (1, 1, 1)
    grace = aws.item(email_id("grace@example.org"))
    assert (grace["status"], grace["sendState"], grace["sendOwner"]) == ("failed", "sending", f"{CID}:0:0")
    assert "unknown outcome" in grace["reason"] and "messageId" not in grace
    assert sorted(m.destinations[0] for m in aws.sent()) == ["ada@example.org", "kat@example.org"]
    # the stage sent again: nobody is sent twice, grace is not counted again
    third = send_batch(ctx)
    assert (third["accepted"], third["duplicates"], third["unknown"]) == (0, 3, 0)
    assert len(aws.sent()) == 2
    assert counters(aws, 0)["unknown"] == 1


def test_an_unknown_ses_outcome_is_failed_and_never_sent_again(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sesflow_aws import sending

    running(aws)

    def lost_reply(*args: Any) -> str:
        raise errors.SesOutcomeUnknown("ReadTimeoutError: Read timeout on endpoint URL")

    monkeypatch.setattr(sending, "deliver", lost_reply)
    result = send_batch(ctx)
    assert (result["accepted"], result["unknown"], result["failed"]) == (0, 3, 0)
    item = aws.item(email_id(RECIPIENTS[0]))
    assert (item["status"], item["sendState"]) == ("failed", "sending")  # held: never sent again
    assert "unknown outcome" in item["reason"] and "Read timeout" in item["reason"]
    assert send_batch(ctx)["duplicates"] == 3


@pytest.mark.parametrize("throttles", [3, 50], ids=["for-a-while", "past-every-retry"])
def test_a_throttled_correction_never_leaves_the_recipient_sent(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch, throttles: int
) -> None:
    """SES refuses the message; the write that records it (rejected) is throttled. A short
    burst is outlasted; a longer one kills the batch and its retry records an unknown outcome.
    Either way nobody is left "sent" with nothing sent."""
    from sesflow_aws import ledger

    running(aws)
    monkeypatch.setattr(cp, "backoff_delay", lambda attempt: 0.0)
    rejected = ses_client_error("MessageRejected", "Illegal header.", 400)
    monkeypatch.setattr(_common.client("sesv2"), "send_email", refuse(rejected))
    release, left = ledger.release_indexed, [throttles]

    def throttled_release(*args: Any, **kwargs: Any) -> None:
        if left[0] > 0:
            left[0] -= 1
            raise throttled_write()
        release(*args, **kwargs)

    monkeypatch.setattr(ledger, "release_indexed", throttled_release)
    if throttles < 10:
        result = send_batch(ctx)
        assert (result["failed"], result["accepted"]) == (3, 0)
        first = aws.item(email_id(RECIPIENTS[0]))
        assert (first["status"], first["sendState"]) == ("failed", "rejected")
        return
    with pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
        send_batch(ctx)
    first = aws.item(email_id(RECIPIENTS[0]))
    assert first["status"] != "sent", first
    monkeypatch.setattr(ledger, "release_indexed", release)  # the retry of the batch
    again = send_batch(ctx)
    assert (again["unknown"], again["failed"]) == (1, 2)
    first = aws.item(email_id(RECIPIENTS[0]))
    assert (first["status"], first["sendState"]) == ("failed", "sending") and "unknown outcome" in first["reason"]
    assert aws.sent() == []


def test_a_bounce_recorded_before_the_send_is_released_is_kept(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Feedback may overtake the write that records the send: a bounce applied while the claim
    still says "sending" stays (statuses never regress); the ledger still records the send."""
    from sesflow_aws import sending, tracking

    running(aws)
    deliver = sending.deliver

    def bounced_at_once(client: Any, settings: Any, request: Any, *args: Any) -> str:
        message_id = deliver(client, settings, request, *args)
        applied = tracking.record_event(
            client("dynamodb"), settings.tracking_table, request.emailId, f"Bounce:{message_id}", {}, "bounced", "x"
        )
        assert applied.changed and applied.previous == "sending"
        return message_id

    monkeypatch.setattr(sending, "deliver", bounced_at_once)
    assert send_batch(ctx)["accepted"] == 3
    item = aws.item(email_id(RECIPIENTS[0]))
    assert (item["status"], item["sendState"]) == ("bounced", "sent") and item["messageId"]


# ================================================================ control

GATE = {"maxBounceRate": 0.05, "maxComplaintRate": 0.001, "minSample": 20, "observeSeconds": 1, "approval": "auto"}


def control(ctx: LambdaContext, mode: str, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = campaign_control.handler({"mode": mode, "campaignId": CID, **fields}, ctx)
    return result


def stage_counters(aws: Aws, stage: int, **numbers: float) -> None:
    aws.put_item(f"campaign#{CID}#stage#{stage}", **numbers)


def test_after_a_stage_observe_then_done(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    stage_counters(aws, 0, accepted=5, duplicates=1)
    out = control(ctx, "after-stage", stage=0, isLast=False)
    assert out == {"action": "observe", "counters": {"accepted": 5, "duplicates": 1}, "part": 0}
    [completed] = aws.events("Campaign Stage Completed")
    assert completed["detail"] | {"timestamp": None} == {
        "campaignId": CID,
        "stage": 0,
        "counters": {"accepted": 5, "duplicates": 1},
        "timestamp": None,
    }
    assert control(ctx, "after-stage", stage=1, isLast=True)["action"] == "done"


def test_after_a_stage_pause_and_cancel(aws: Aws, ctx: LambdaContext) -> None:
    running(aws, "paused")
    assert control(ctx, "after-stage", stage=0, isLast=False) == {"action": "paused", "part": 0}
    assert aws.campaign(CID)["status"] == "paused"
    running(aws, "cancelled")
    assert control(ctx, "after-stage", stage=0, isLast=False) == {"action": "cancelled", "part": 0}
    assert aws.events("Campaign Stage Completed") == []


def test_after_a_stage_with_skipped_batches_it_is_sent_again(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    stage_counters(aws, 0, accepted=5, skipped=3)
    assert control(ctx, "after-stage", stage=0, isLast=False) == {"action": "resend", "part": 0}
    assert counters(aws, 0) == {"accepted": 5, "skipped": 0}
    assert control(ctx, "after-stage", stage=0, isLast=False)["action"] == "observe"  # the resend went through


@pytest.mark.parametrize(
    ("numbers", "reason"),
    [
        ({"accepted": 100, "bounced": 10}, "bounce rate 10.00% > 5.00%"),
        ({"accepted": 80, "failed": 20}, "failure rate 20.00% > 5.00%"),
        ({"accepted": 1000, "complained": 2}, "complaint rate 0.200% > 0.100%"),
    ],
)
def test_the_gate_halts_on_bounces_failures_and_complaints(
    aws: Aws, ctx: LambdaContext, numbers: dict[str, int], reason: str
) -> None:
    running(aws)
    stage_counters(aws, 0, **numbers)
    decision = control(ctx, "gate", stage=0, gate=GATE)
    assert (decision["action"], decision["reason"]) == ("halt", reason)
    item = aws.campaign(CID)
    assert (item["status"], item["haltReason"], item["haltedAtStage"]) == ("halted", reason, 0)
    [recorded] = item["gates"]
    assert recorded["stage"] == 0 and recorded["action"] == "halt" and recorded["reason"] == reason


def test_every_gate_is_recorded_in_order(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    stage_counters(aws, 0, accepted=10)
    stage_counters(aws, 1, accepted=100, bounced=1)
    first = control(ctx, "gate", stage=0, gate=GATE)
    assert first["action"] == "continue" and first["insufficient_sample"] is True
    second = control(ctx, "gate", stage=1, gate={**GATE, "approval": "manual"})
    assert second["action"] == "approve"
    item = aws.campaign(CID)
    assert [(g["stage"], g["action"]) for g in item["gates"]] == [(0, "continue"), (1, "approve")]
    assert item["gates"][1]["bounce_rate"] == 0.01
    assert item["status"] == "running"


def test_request_approval_keeps_the_task_token(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    out = control(ctx, "request-approval", stage=1, taskToken="token-1", decision={"action": "approve"})
    assert out == {"requested": True}
    item = aws.campaign(CID)
    assert (item["status"], item["taskToken"], item["approvalStage"]) == ("awaiting-approval", "token-1", 1)
    [requested] = aws.events("Campaign Approval Requested")
    assert requested["detail"]["stage"] == 1


def test_an_unknown_mode_is_an_error(aws: Aws, ctx: LambdaContext) -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        control(ctx, "launch")


# ---------------------------------------------------------------- summarize

PLAN = {
    "campaignId": CID,
    "bucket": CAMPAIGNS_BUCKET,
    "stages": [{"index": 0, "planned": 4, "isLast": False}, {"index": 1, "planned": 6, "isLast": True}],
    "counts": {"rows": 10, "planned": [4, 6]},
    "approvalTimeoutSeconds": 3600,
    "maxSendRate": 20,
    "maxConcurrency": 2,
    "mergedEmptyStages": [],
}


def planned(aws: Aws, **fields: Any) -> None:
    campaign_flow.update_campaign(
        _common.client,
        CID,
        **{"status": "running", "control": "run", "plan": PLAN, "startedAt": time.time() - 60, **fields},
    )
    stage_counters(aws, 0, accepted=4, bounced=1, firstSendAt=1000.0, lastSendAt=1002.0)
    stage_counters(aws, 1, accepted=5, failed=1, throttled=2, firstSendAt=1010.0, lastSendAt=1013.0)


def summarize(ctx: LambdaContext, **fields: Any) -> dict[str, Any]:
    return control(ctx, "summarize", **fields)


def test_summarize_a_completed_campaign(aws: Aws, ctx: LambdaContext) -> None:
    planned(aws)
    report = summarize(ctx)
    assert report["status"] == "completed" and report["reason"] is None and report["error"] is None
    assert report["totals"] == {"accepted": 9, "bounced": 1, "failed": 1, "throttled": 2}
    assert report["unaccounted"] == 0
    assert report["stages"] == [
        {"stage": 0, "planned": 4, "sendingSeconds": 2.0, "accepted": 4, "bounced": 1},
        {"stage": 1, "planned": 6, "sendingSeconds": 3.0, "accepted": 5, "failed": 1, "throttled": 2},
    ]
    assert (report["sendingSeconds"], report["achievedSendRate"]) == (5.0, 1.8)
    assert report["throttledCalls"] == 2 and report["counts"] == PLAN["counts"]
    assert 59 <= report["durationSeconds"] < 120
    key = f"campaigns/{CID}/report.json"
    assert aws.get_json(CAMPAIGNS_BUCKET, key) == report
    item = aws.campaign(CID)
    assert (item["status"], item["reportKey"]) == ("completed", key) and "finishedAt" in item
    [done] = aws.events("Campaign Completed")
    assert done["detail"]["totals"] == report["totals"]


@pytest.mark.parametrize(
    ("item_fields", "event_fields", "status", "reason_ok"),
    [
        (
            {"status": "halted", "haltReason": "bounce rate 25.00% > 5.00%"},
            {},
            "halted",
            lambda r: r == "bounce rate 25.00% > 5.00%",
        ),
        ({"control": "cancelled"}, {}, "cancelled", lambda r: r is None),
        (
            {"status": "rejected"},
            {"reason": "rejected by the operator"},
            "rejected",
            lambda r: r == "rejected by the operator",
        ),
        ({"status": "awaiting-approval"}, {"expired": True}, "expired", lambda r: r == "no approval within 3600 s"),
        (
            {},
            {
                "error": "SesConfigurationError",
                "reason": {"errorType": "SesConfigurationError", "errorMessage": "AccessDeniedException: denied"},
            },
            "failed",
            lambda r: r == "SesConfigurationError: AccessDeniedException: denied",
        ),
        (
            {},
            {"error": "States.ExceedToleratedFailureThreshold", "reason": "the stage's batches failed"},
            "failed",
            lambda r: r == "the stage's batches failed",
        ),
    ],
    ids=["halted", "cancelled", "rejected", "expired", "failed-with-a-lambda-error", "failed-with-a-cause"],
)
def test_summarize_every_ending(
    aws: Aws,
    ctx: LambdaContext,
    item_fields: dict[str, Any],
    event_fields: dict[str, Any],
    status: str,
    reason_ok: Callable[[str | None], bool],
) -> None:
    planned(aws, **item_fields)
    report = summarize(ctx, **event_fields)
    assert report["status"] == status
    assert reason_ok(report["reason"]), report["reason"]
    assert report["error"] == event_fields.get("error")
    assert aws.campaign(CID)["status"] == status
    assert aws.get_json(CAMPAIGNS_BUCKET, f"campaigns/{CID}/report.json")["status"] == status
    [ended] = aws.events()
    assert ended["detail-type"] == f"Campaign {status.title()}"


def test_a_failed_batch_records_what_it_left_without_an_outcome(aws: Aws, ctx: LambdaContext) -> None:
    """The child's RecordFailedBatch: ada was sent, grace's claim (this batch's) is still
    "sending" (the worker died around her SES call), kat was never attempted."""
    running(aws)
    aws.put_item(email_id("ada@example.org"), status="sent", sendState="sent", sendOwner=f"{CID}:0:0")
    aws.put_item(email_id("grace@example.org"), status="sending", sendState="sending", sendOwner=f"{CID}:0:0")
    failed = {"Error": "Runtime.ExitError", "Cause": "the worker died"}
    out = control(ctx, "batch-failed", batch=batch_event()["batch"], error=failed)
    assert out == {"batch": 0, "unknown": 1, "unaccounted": 1}
    grace = aws.item(email_id("grace@example.org"))
    assert (grace["status"], grace["sendState"]) == ("failed", "sending") and "unknown outcome" in grace["reason"]
    assert counters(aws, 0) == {"unknown": 1, "failedBatches": {"0": 1}}
    # a retried record (the task's retry) and a second failed batch
    assert control(ctx, "batch-failed", batch=batch_event()["batch"], error=failed)["unaccounted"] == 1
    control(ctx, "batch-failed", batch=batch_event(["zoe@example.org"], batch=7)["batch"], error=failed)
    assert counters(aws, 0) == {"unknown": 1, "failedBatches": {"0": 1, "7": 1}}


def test_after_a_stage_with_failed_batches_it_is_sent_again_a_bounded_number_of_times(
    aws: Aws, ctx: LambdaContext
) -> None:
    running(aws)
    stage_counters(aws, 0, accepted=5, failedBatches={"3": 2})
    assert control(ctx, "after-stage", stage=0, isLast=False, failedBatchResends=0) == {
        "action": "resend-failed",
        "part": 0,
    }
    assert counters(aws, 0) == {"accepted": 5, "skipped": 0}  # the next pass records its own
    for resends in range(1, campaign_flow.FAILED_BATCH_RESENDS):
        stage_counters(aws, 0, accepted=5, failedBatches={"3": 2})  # the batch failed again
        assert control(ctx, "after-stage", stage=0, isLast=False, failedBatchResends=resends) == {
            "action": "resend-failed",
            "part": 0,
        }
    stage_counters(aws, 0, accepted=5, failedBatches={"3": 2})
    last = control(ctx, "after-stage", stage=0, isLast=False, failedBatchResends=campaign_flow.FAILED_BATCH_RESENDS)
    assert last == {"action": "observe", "counters": {"accepted": 5, "unaccounted": 2}, "part": 0}
    [completed] = aws.events("Campaign Stage Completed")
    assert completed["detail"]["counters"] == {"accepted": 5, "unaccounted": 2}


def test_summarize_says_how_many_recipients_failed_batches_left(aws: Aws, ctx: LambdaContext) -> None:
    planned(aws)
    stage_counters(aws, 1, accepted=3, unknown=1, failedBatches={"0": 2}, firstSendAt=1010.0, lastSendAt=1013.0)
    report = summarize(ctx)
    assert report["status"] == "completed" and report["unaccounted"] == 2
    assert "2 recipient(s) have no outcome" in report["reason"]
    assert report["stages"][1] == {
        "stage": 1,
        "planned": 6,
        "sendingSeconds": 3.0,
        "accepted": 3,
        "unknown": 1,
        "unaccounted": 2,
    }
    assert report["totals"] == {"accepted": 7, "bounced": 1, "unknown": 1, "unaccounted": 2}


def test_aws_throttling_past_the_sdk_retries_is_one_error_name_the_machine_retries() -> None:
    from botocore.exceptions import ClientError
    from sesflow_core.errors import AwsThrottled
    from sesflow_handlers._common import throttling_as_aws_throttled

    def failing(code: str) -> Any:
        @throttling_as_aws_throttled
        def handler(event: Any, context: Any) -> Any:
            raise ClientError({"Error": {"Code": code, "Message": "m"}}, "BatchGetItem")

        return handler

    with pytest.raises(AwsThrottled, match=r"ProvisionedThroughputExceededException \(BatchGetItem\)"):
        failing("ProvisionedThroughputExceededException")({}, None)
    with pytest.raises(ClientError):  # not a throttle: the machine's Catch sees its own name
        failing("AccessDeniedException")({}, None)
    import json

    definition = json.loads((Path(__file__).resolve().parents[2] / "statemachines/campaign.asl.json").read_text())
    for name in ("Plan", "AfterStage", "Gate", "Summarize"):
        retried = {e for r in definition["States"][name]["Retry"] for e in r["ErrorEquals"]}
        assert {"AwsThrottled", "Runtime.ExitError", "Sandbox.Timedout"} <= retried, name


# ================================================================ start time, window, daily cap


def scheduled(aws: Aws, clock_start: str, control: str = "run", **schedule: Any) -> None:
    """A running campaign whose plan has ``schedule`` and a clock frozen at ``clock_start``
    (scale 1, anchored now: it moves with the test, seconds at most)."""
    from sesflow_core.campaign.schedule import SendSchedule
    from sesflow_core.clock import Clock

    clock = Clock.from_input({"scale": 1, "start": clock_start}, allowed=True)
    plan = {"schedule": SendSchedule.from_input(schedule, clock.now()).as_dict(), "clock": clock.as_dict()}
    campaign_flow.update_campaign(_common.client, CID, status="running", control=control, plan=plan)


CURRENT = {"stage": {"index": 0, "key": "campaigns/c/stage-0.json", "parts": 3}, "part": 1, "failedBatchResends": 0}
WINDOW = {"from": "09:00", "to": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}


def test_ready_sends_inside_the_window_with_the_part_s_manifest(aws: Aws, ctx: LambdaContext) -> None:
    scheduled(aws, "2026-11-30T10:00:00Z", window=WINDOW)
    out = control(ctx, "ready", current=CURRENT)
    assert out == {
        "action": "send",
        "key": "campaigns/c/stage-0-part-1.json",
        "waitSeconds": 0,
        "control": "run",
        "resumeAt": None,
    }


def test_ready_outside_the_window_waits_until_it_opens_and_says_so(aws: Aws, ctx: LambdaContext) -> None:
    scheduled(aws, "2026-11-28T10:00:00Z", window=WINDOW)  # a Saturday
    out = control(ctx, "ready", current=CURRENT)
    assert out["action"] == "wait" and out["resumeAt"] == "2026-11-30T09:00:00Z"
    assert abs(out["waitSeconds"] - (2 * 86400 - 3600)) <= 2  # Saturday 10:00 -> Monday 09:00
    item = campaign_flow.campaign_item(_common.client, CID)
    assert (item["status"], item["resumeAt"], item["waitReason"]) == ("waiting", "2026-11-30T09:00:00Z", "window")
    [waiting] = aws.events("Campaign Waiting")
    assert waiting["detail"]["resumeAt"] == "2026-11-30T09:00:00Z" and waiting["detail"]["reason"] == "window"
    control(ctx, "ready", current=CURRENT)  # decided again (woken): the same wait is not announced twice
    assert len(aws.events("Campaign Waiting")) == 1


def test_ready_once_the_daily_cap_is_used_waits_for_the_next_day(aws: Aws, ctx: LambdaContext) -> None:
    scheduled(aws, "2026-11-30T10:00:00Z", window=WINDOW, dailyCap=5)
    aws.put_item(f"campaign#{CID}#stage#day#2026-11-30", used=5)
    out = control(ctx, "ready", current=CURRENT)
    assert (out["action"], out["resumeAt"]) == ("wait", "2026-12-01T09:00:00Z")
    assert campaign_flow.campaign_item(_common.client, CID)["waitReason"] == "dailyCap"


def test_ready_paused_waits_a_pause_check_and_cancelled_ends(aws: Aws, ctx: LambdaContext) -> None:
    scheduled(aws, "2026-11-30T10:00:00Z", control="paused")
    out = control(ctx, "ready", current=CURRENT)
    assert (out["action"], out["control"], out["waitSeconds"]) == ("wait", "paused", 30)
    running(aws, "cancelled")
    assert control(ctx, "ready", current=CURRENT)["action"] == "cancelled"


def test_hold_keeps_the_task_token_unless_the_control_word_changed(aws: Aws, ctx: LambdaContext) -> None:
    from sesflow_core.errors import CampaignWoken

    running(aws)
    assert control(ctx, "hold", control="run", taskToken="tok-1") == {"holding": True}
    assert campaign_flow.campaign_item(_common.client, CID)["waitToken"] == "tok-1"
    running(aws, "cancelled")  # the operator's command came between ready and hold
    with pytest.raises(CampaignWoken):
        control(ctx, "hold", control="run", taskToken="tok-2")
    assert campaign_flow.campaign_item(_common.client, CID)["waitToken"] == "tok-1"


def test_after_a_part_comes_the_next_and_its_failed_batches_are_carried(aws: Aws, ctx: LambdaContext) -> None:
    running(aws)
    stage_counters(aws, 0, accepted=5)
    aws.put_item(f"campaign#{CID}#stage#0", accepted=5, failedBatches={"2": 3})
    resends = campaign_flow.FAILED_BATCH_RESENDS
    out = control(ctx, "after-stage", stage=0, isLast=True, failedBatchResends=resends, current=CURRENT)
    assert out == {"action": "next-part", "part": 2}
    assert counters(aws, 0) == {"accepted": 5, "unaccountedCarried": 3}
    last = {**CURRENT, "part": 2}
    out = control(ctx, "after-stage", stage=0, isLast=True, failedBatchResends=0, current=last)
    assert out == {"action": "done", "counters": {"accepted": 5, "unaccounted": 3}, "part": 2}


def test_a_batch_outside_the_window_skips_everyone(aws: Aws, ctx: LambdaContext) -> None:
    scheduled(aws, "2026-11-28T10:00:00Z", window=WINDOW)
    result = send_batch(ctx)
    assert (result["accepted"], result["skipped"]) == (0, 3)
    assert aws.sent() == []


def test_a_batch_sends_no_more_than_what_is_left_of_the_day_s_cap(aws: Aws, ctx: LambdaContext) -> None:
    scheduled(aws, "2026-11-30T10:00:00Z", dailyCap=4)
    aws.put_item(f"campaign#{CID}#stage#day#2026-11-30", used=2)
    result = send_batch(ctx)
    assert (result["accepted"], result["skipped"]) == (2, 1)
    assert counters(aws, "day#2026-11-30") == {"used": 4, "expiresAt": counters(aws, "day#2026-11-30")["expiresAt"]}
    # the next pass the same day sends nobody; the ledger keeps the two sent from going again
    result = send_batch(ctx)
    assert (result["accepted"], result["skipped"]) == (0, 3)
    assert len(aws.sent()) == 2


def test_a_batch_gives_back_the_share_of_the_cap_it_did_not_use(aws: Aws, ctx: LambdaContext) -> None:
    scheduled(aws, "2026-11-30T10:00:00Z", dailyCap=10)
    email = email_id("grace@example.org")
    aws.put_item(email, sendState="sent", status="sent")  # sent in an earlier pass: a duplicate
    result = send_batch(ctx)
    assert (result["accepted"], result["duplicates"]) == (2, 1)
    assert counters(aws, "day#2026-11-30")["used"] == 2


def test_a_batch_renders_each_recipient_s_locale_variant(aws: Aws, ctx: LambdaContext) -> None:
    import email as email_lib

    running(aws)
    aws.put_object(
        TEMPLATES_BUCKET, "newsletter/de/metadata.json", '{"subject": "Neu: {{ title }}", "topic": "newsletter"}'
    )
    aws.put_object(TEMPLATES_BUCKET, "newsletter/de/template.html", "<p>{{ intro }}</p>")
    event = batch_event()
    event["batch"]["recipients"][0]["locale"] = "de-AT"
    assert send_batch(ctx, event)["accepted"] == 3
    subjects = {m.destinations[0]: email_lib.message_from_string(m.raw_data)["Subject"] for m in aws.sent()}
    assert subjects["ada@example.org"].startswith("Neu: ") and not subjects["grace@example.org"].startswith("Neu: ")
    assert aws.item(email_id("ada@example.org"))["locale"] == "de"
