"""Campaigns on the local stack: exact counts, one message per recipient, canary halt,
manual approval, pause and resume, a crash mid-batch."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sesflow_core import campaign as cp

from sesflow import cli, executions
from sesflow.cli.campaign import campaign, counters
from sesflow.cli.output import UsageError
from sesflow.local.ses import outbox_entries
from sesflow.target import Target

from ..helpers import canary_bounces, poll

pytestmark = pytest.mark.local

NEWS_DATA = {"title": "T", "intro": "I", "articles": []}


def start(stack: Target, rows: list[str], header: str = "email,name", **overrides: Any) -> tuple[str, str]:
    cid = overrides.pop("campaignId", f"t{uuid.uuid4().hex[:10]}")
    key = f"uploads/{cid}/recipients.csv"
    stack.clients.client("s3").put_object(
        Bucket=stack.outputs["CampaignsBucketName"], Key=key, Body="\n".join([header, *rows]).encode()
    )
    payload = {
        "campaignId": cid,
        "template": "newsletter",
        "topic": "newsletter",
        "recipients": {"key": key},
        "data": NEWS_DATA,
        "gate": {"observeSeconds": 1, "minSample": 1000},
        **overrides,
    }
    arn = stack.clients.client("stepfunctions").start_execution(
        stateMachineArn=stack.outputs["CampaignStateMachineArn"], name=cid, input=json.dumps(payload)
    )["executionArn"]
    return cid, arn


def finish(stack: Target, arn: str, timeout: float = 240) -> dict[str, Any]:
    sfn = stack.clients.client("stepfunctions")
    status = executions.wait(sfn, arn, timeout=timeout)
    desc = sfn.describe_execution(executionArn=arn)
    assert status == "SUCCEEDED", {k: desc.get(k) for k in ("status", "error", "cause")}
    output: dict[str, Any] = json.loads(desc["output"])
    return output


def status_of(stack: Target, cid: str) -> str | None:
    try:
        return campaign(stack, cid).get("status")
    except UsageError:  # not planned yet
        return None


def sent_to(stack: Target, cid: str) -> Counter[str]:
    return Counter(
        e["destinations"][0].lower()
        for e in outbox_entries(Path(stack.state["outbox"]))
        if e["tags"].get("campaignId") == cid
    )


def cli_run(stack: Target, *argv: str) -> int:
    import os

    os.environ["SESFLOW_STATE_DIR"] = str(Path(stack.state["outbox"]).parent)
    try:
        return cli.main(list(argv))
    finally:
        os.environ.pop("SESFLOW_STATE_DIR", None)


def test_thousand_rows_exact_counts_and_one_message_per_recipient(stack: Target) -> None:
    ddb = stack.clients.client("dynamodb")
    suppressed = [f"supp{i}@example.org" for i in range(10)]
    for a in suppressed:
        ddb.put_item(
            TableName=stack.outputs["SuppressionTableName"],
            Item={"address": {"S": a}, "topic": {"S": "*"}, "reason": {"S": "test"}},
        )
    unique = [f"k{i}@example.org" for i in range(940)]
    rows = [f"{a},N" for a in unique + suppressed]
    rows += [f"{a.upper()},dup" for a in unique[:30]]  # 30 duplicates (case differs)
    rows += [f"broken{i}-no-at-sign,X" for i in range(20)]  # 20 invalid
    assert len(rows) == 1000
    cid, arn = start(stack, rows)
    report = finish(stack, arn)
    assert report["status"] == "completed"
    # 18 KB: planned in chunks (the local stack's CampaignPlanChunkKiB is 16), the duplicates
    # at the end of the list in another chunk than their first rows
    history = stack.clients.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)
    entered = [e["stateEnteredEventDetails"]["name"] for e in history["events"] if "stateEnteredEventDetails" in e]
    assert entered[:4] == ["Plan", "PlannedInChunks", "PlanChunks", "MergePlan"]
    assert report["counts"] == {
        "rows": 1000,
        "valid": 950,
        "invalid": 20,
        "duplicates": 30,
        "suppressed": 10,
        "planned": report["counts"]["planned"],
        "batches": report["counts"]["batches"],
    }
    assert sum(report["counts"]["planned"]) == 940
    assert report["totals"]["accepted"] == 940
    outbox = sent_to(stack, cid)
    assert set(outbox) == set(unique) and max(outbox.values()) == 1
    assert [s["planned"] for s in report["stages"]] == report["counts"]["planned"]
    assert report["counts"]["planned"][0] < report["counts"]["planned"][1] < report["counts"]["planned"][2]
    # each recipient's tracking item says "sent" (campaign deliveries are not tracked by default)
    from sesflow.cli.send import tracking_item

    item = tracking_item(stack, cp.email_id_for(cid, unique[-1]))
    assert item is not None and item["status"] == "sent" and item["campaignId"] == cid


def feedback_settled(stack: Target, quiet: float = 2.0) -> None:
    """Wait until the local feedback backlog is processed (no invocation for ``quiet`` s)."""
    import urllib.request

    def invocations() -> float:
        with urllib.request.urlopen(f"{stack.state['endpoint']}/_sesflow/stats", timeout=10) as resp:
            return sum(v[0] for v in json.loads(resp.read())["lambda"].values())

    last, since, deadline = -1.0, time.monotonic(), time.monotonic() + 240
    while time.monotonic() < deadline:
        n = invocations()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)
    raise AssertionError("the feedback backlog did not settle")


def test_canary_with_bounces_halts_the_campaign(stack: Target) -> None:
    feedback_settled(stack)  # earlier tests' feedback must not delay this canary's bounces
    cid = f"halt{uuid.uuid4().hex[:8]}"
    stages = (10.0, 100.0)
    bounces = canary_bounces(cid, stages, 8)
    good = [f"h{i}@example.org" for i in range(200)]
    _, arn = start(
        stack,
        [f"{a},B" for a in bounces] + [f"{a},G" for a in good],
        campaignId=cid,
        stages=list(stages),
        gate={"observeSeconds": 10, "minSample": 5, "maxBounceRate": 0.05},
    )
    report = finish(stack, arn)
    assert report["status"] == "halted", report["stages"]
    assert report["reason"].startswith("bounce rate")
    canary = [a for a in bounces + good if cp.stage_for(cid, a, stages) == 0]
    assert set(sent_to(stack, cid)) == set(canary)  # nobody of stage 1 was mailed
    assert report["stages"][1].get("accepted", 0) == 0
    assert campaign(stack, cid)["status"] == "halted"


def test_manual_approval_then_reject(stack: Target) -> None:
    rows = [f"m{i}@example.org,M" for i in range(40)]
    cid, arn = start(stack, rows, stages=[50, 100], approval="manual")
    poll(lambda: status_of(stack, cid) == "awaiting-approval", timeout=60, what="approval gate")
    assert cli_run(stack, "campaign", "approve", cid) == 0
    report = finish(stack, arn)
    assert report["status"] == "completed" and report["totals"]["accepted"] == 40

    cid2, arn2 = start(stack, [f"r{i}@example.org,R" for i in range(40)], stages=[50, 100], approval="manual")
    poll(lambda: status_of(stack, cid2) == "awaiting-approval", timeout=60, what="approval gate")
    assert cli_run(stack, "campaign", "reject", cid2, "--reason", "wrong list") == 0
    report2 = finish(stack, arn2)
    assert report2["status"] == "rejected" and report2["reason"] == "wrong list"
    assert len(sent_to(stack, cid2)) == report2["stages"][0]["planned"]


def test_pause_and_resume_send_nobody_twice(stack: Target) -> None:
    rows = [f"p{i}@example.org,P" for i in range(100)]
    cid, arn = start(stack, rows, stages=[100], maxSendRate=10, batchSize=10)
    poll(lambda: counters(stack, cid, 0).get("accepted", 0) >= 10, timeout=60, what="first sends")
    assert cli_run(stack, "campaign", "pause", cid) == 0
    poll(lambda: status_of(stack, cid) == "paused", timeout=60, what="paused")
    paused_at = counters(stack, cid, 0).get("accepted", 0)
    assert 10 <= paused_at < 100
    assert counters(stack, cid, 0).get("skipped", 0) > 0  # batches after the pause were skipped
    assert cli_run(stack, "campaign", "resume", cid) == 0
    report = finish(stack, arn)
    assert report["status"] == "completed"
    outbox = sent_to(stack, cid)
    assert len(outbox) == 100 and max(outbox.values()) == 1


def test_a_crash_mid_batch_loses_nobody_and_sends_nobody_twice(stack: Target) -> None:
    lam = stack.clients.client("lambda")
    name = stack.function_name("CampaignSendBatchFunction")
    env = {k: str(v) for k, v in lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"].items()}
    lam.update_function_configuration(
        FunctionName=name, Environment={"Variables": {**env, "FAULT_CRASH_AFTER_SENDS": "7"}}
    )
    try:
        cid, arn = start(stack, [f"x{i}@example.org,X" for i in range(120)], stages=[100])
        report = finish(stack, arn)
    finally:
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": env})
    assert report["status"] == "completed"
    outbox = sent_to(stack, cid)
    assert len(outbox) == 120 and max(outbox.values()) == 1
    # the crash did happen (its one-shot marker is there) and the retried batch resumed
    marker = stack.clients.client("dynamodb").get_item(
        TableName=stack.outputs["CampaignsTableName"], Key={"campaignId": {"S": f"fault#{cid}"}}
    )
    assert "Item" in marker
    assert report["totals"]["accepted"] == 120 and report["totals"].get("duplicates", 0) >= 1


def test_wide_rows_and_large_campaign_data_fit_the_state_limits(stack: Target) -> None:
    """40-column rows near the 4 KiB row limit and 26 KiB of campaign data: batches are cut by
    bytes, so every child's input stays under 256 KiB (which the local stack enforces)."""
    header = "email," + ",".join(f"col{i:02d}" for i in range(40))
    rows = [f"w{i}@example.org," + ",".join(f"{i:04d}" + "v" * 84 for _ in range(40)) for i in range(120)]
    _, arn = start(stack, rows, header=header, data=NEWS_DATA | {"padding": "p" * 26_000}, stages=[100])
    report = finish(stack, arn)
    assert report["status"] == "completed" and report["totals"]["accepted"] == 120
    assert report["counts"]["batches"][0] >= 3  # 120 rows of ~4 KB: more batches than 120 / 50


def test_a_template_that_cannot_render_for_the_list_fails_before_anyone_is_mailed(stack: Target) -> None:
    """The first rows are rendered at plan time: a variable the list lacks fails the campaign
    with the reason, instead of every stage failing every recipient."""
    cid, arn = start(stack, [f"nr{i}@example.org,N" for i in range(30)], data={"intro": "I", "articles": []})
    sfn = stack.clients.client("stepfunctions")
    assert executions.wait(sfn, arn, timeout=120) == "FAILED"
    assert sfn.describe_execution(executionArn=arn)["error"] == "CampaignPlanFailed"
    item = campaign(stack, cid)
    assert item["status"] == "failed"
    assert "missing variable(s): title" in item["summary"]["reason"] and "row 2" in item["summary"]["reason"]
    assert sent_to(stack, cid) == Counter()


def test_rows_whose_data_would_not_fit_a_send_request_are_rejected_at_plan_time(stack: Target) -> None:
    rows = [f"fit{i}@example.org,F,x" for i in range(10)] + [f"toobig{i}@example.org,B,{'b' * 3_000}" for i in range(3)]
    cid, arn = start(stack, rows, header="email,name,note", data=NEWS_DATA | {"padding": "p" * 30_000}, stages=[100])
    report = finish(stack, arn)
    assert report["counts"]["invalid"] == 3 and report["totals"]["accepted"] == 10
    rejects = (
        stack.clients.client("s3")
        .get_object(Bucket=stack.outputs["CampaignsBucketName"], Key=f"campaigns/{cid}/rejects.csv")["Body"]
        .read()
        .decode()
    )
    assert rejects.count("with the campaign's data is") == 3


def test_an_unanswered_approval_expires_the_campaign(stack: Target) -> None:
    cid, arn = start(
        stack,
        [f"ex{i}@example.org,E" for i in range(20)],
        stages=[50, 100],
        approval="manual",
        approvalTimeoutSeconds=2,
    )
    report = finish(stack, arn)
    assert report["status"] == "expired" and report["reason"] == "no approval within 2 s"
    assert len(sent_to(stack, cid)) == report["stages"][0]["planned"]  # nobody of the last stage
    assert campaign(stack, cid)["status"] == "expired"


def test_a_stage_no_recipient_falls_in_is_merged_into_the_next(stack: Target) -> None:
    cid = f"merge{uuid.uuid4().hex[:8]}"
    stages = (1.0, 100.0)
    addresses = [a for a in (f"mg{i}@example.org" for i in range(60)) if cp.stage_for(cid, a, stages) == 1][:41]
    _, arn = start(stack, [f"{a},M" for a in addresses], campaignId=cid, stages=list(stages))
    report = finish(stack, arn)
    assert report["status"] == "completed" and report["mergedEmptyStages"] == [0]
    assert [s["stage"] for s in report["stages"]] == [1] and report["totals"]["accepted"] == 41
    assert report["gates"] == []  # no gate judged an empty stage


def test_a_canary_whose_sends_fail_halts_on_the_failure_rate(stack: Target) -> None:
    from ..helpers import inject_ses_faults

    cid = f"fail{uuid.uuid4().hex[:8]}"
    stages = (50.0, 100.0)
    rows = [f"fr{i}@example.org" for i in range(40)]
    canary = [a for a in rows if cp.stage_for(cid, a, stages) == 0]
    for address in canary[:5]:
        inject_ses_faults(
            stack.state["endpoint"], {"code": "MessageRejected", "message": "Illegal header.", "recipient": address}
        )
    _, arn = start(
        stack, [f"{a},F" for a in rows], campaignId=cid, stages=list(stages), gate={"observeSeconds": 1, "minSample": 5}
    )
    report = finish(stack, arn)
    assert report["status"] == "halted" and report["reason"].startswith("failure rate")
    [gate] = report["gates"]
    assert gate["failed"] == 5 and gate["action"] == "halt"
    assert set(sent_to(stack, cid)) == set(canary[5:])  # stage 1 was never mailed


def test_the_longest_campaign_id_sends_to_everyone(stack: Target) -> None:
    """A 60-character id (the longest accepted) used to make every recipient's emailId
    longer than 80 characters: every send failed and the campaign still "completed"."""
    cid = ("long" + uuid.uuid4().hex).ljust(60, "L")
    _, arn = start(stack, [f"ln{i}@example.org,L" for i in range(25)], campaignId=cid, stages=[100])
    report = finish(stack, arn)
    assert report["status"] == "completed" and report["totals"].get("failed", 0) == 0
    assert report["totals"]["accepted"] == 25 and len(sent_to(stack, cid)) == 25


def test_invalid_campaign_input_fails_with_the_reason_before_anything_is_sent(stack: Target) -> None:
    cid, arn = start(stack, [f"inv{i}@example.org,I" for i in range(5)], stages=[50, 10])
    sfn = stack.clients.client("stepfunctions")
    assert executions.wait(sfn, arn, timeout=60) == "FAILED"
    assert sfn.describe_execution(executionArn=arn)["error"] == "CampaignPlanFailed"
    item = campaign(stack, cid)
    assert item["status"] == "failed" and "stages must be increasing" in item["summary"]["reason"]
    assert sent_to(stack, cid) == Counter()


def test_cancel_stops_the_campaign_at_the_next_batch(stack: Target) -> None:
    rows = [f"cx{i}@example.org,C" for i in range(100)]
    cid, arn = start(stack, rows, stages=[100], maxSendRate=10, batchSize=10)
    poll(lambda: counters(stack, cid, 0).get("accepted", 0) >= 10, timeout=60, what="first sends")
    assert cli_run(stack, "campaign", "cancel", cid) == 0
    report = finish(stack, arn)
    assert report["status"] == "cancelled"
    sent = sent_to(stack, cid)
    assert 10 <= len(sent) < 100 and max(sent.values()) == 1
    assert report["totals"]["accepted"] == len(sent)


def test_a_dead_execution_resumes_in_a_new_one_and_nobody_is_mailed_twice(stack: Target) -> None:
    rows = [f"rs{i}@example.org,R" for i in range(100)]
    cid, arn = start(stack, rows, stages=[100], maxSendRate=10, batchSize=10)
    sfn = stack.clients.client("stepfunctions")
    poll(lambda: counters(stack, cid, 0).get("accepted", 0) >= 10, timeout=60, what="first sends")
    sfn.stop_execution(executionArn=arn, error="Killed", cause="the test stops it mid-stage")
    payload = json.loads(sfn.describe_execution(executionArn=arn)["input"])
    again = sfn.start_execution(
        stateMachineArn=stack.outputs["CampaignStateMachineArn"], name=f"{cid}-resume", input=json.dumps(payload)
    )["executionArn"]
    report = finish(stack, again)
    assert report["status"] == "completed"
    sent = sent_to(stack, cid)
    assert len(sent) == 100 and max(sent.values()) == 1


def test_a_stage_whose_batches_fail_fails_the_campaign_with_a_report(stack: Target) -> None:
    from ..helpers import clear_ses_faults, inject_ses_faults

    cid = f"sf{uuid.uuid4().hex[:8]}"
    rows = [f"sf{i}-{cid}@example.org" for i in range(20)]
    for address in rows:  # every send refused for the set-up: each batch stops (SesConfigurationError)
        inject_ses_faults(
            stack.state["endpoint"],
            {
                "code": "AccessDeniedException",
                "status": 403,
                "times": 5,
                "message": "not authorized to perform: ses:SendEmail",
                "recipient": address,
            },
        )
    try:
        _, arn = start(stack, [f"{a},S" for a in rows], campaignId=cid, stages=[100], batchSize=5)
        sfn = stack.clients.client("stepfunctions")
        assert executions.wait(sfn, arn, timeout=120) == "FAILED"
    finally:
        clear_ses_faults(stack.state["endpoint"])
    assert sfn.describe_execution(executionArn=arn)["error"] == "CampaignStageFailed"
    item = campaign(stack, cid)
    assert item["status"] == "failed" and item["summary"]["error"]
    assert sent_to(stack, cid) == Counter()


def test_a_batch_whose_worker_dies_twice_is_sent_again_and_nobody_is_lost(stack: Target) -> None:
    """The first batch's worker dies before an SES call, and again in the Map child's retry: the
    child fails (1 batch of 25, within ToleratedFailurePercentage 5). Its recipients are not
    dropped: the stage is sent again, the two claims whose worker died are failed with an
    unknown outcome (never sent), everybody else is sent once."""
    from sesflow_aws import campaign_flow
    from sesflow_aws.dynamo import batch_get, to_plain

    from sesflow.cli.campaign import progress

    from ..helpers import fault_log, set_fault_plan

    cid = f"dd{uuid.uuid4().hex[:8]}"
    rows = [f"dd{i}@example.org" for i in range(100)]
    crash = {"kind": "lambdaCrash", "function": "CampaignSendBatchFunction", "call": "sesv2:SendEmail"}
    # maxSendRate 10: one worker, the children run one after another (batch 0, its retry, batch 1...)
    set_fault_plan(stack.state["endpoint"], 5, [{**crash, "when": "before", "nth": [1, 2]}])
    try:
        _, arn = start(stack, [f"{a},D" for a in rows], campaignId=cid, stages=[100], batchSize=4, maxSendRate=10)
        report = finish(stack, arn)
        died = [f for f in fault_log(stack.state["endpoint"]) if cid in f.get("subject", "")]
    finally:
        set_fault_plan(stack.state["endpoint"], 0, [])
    assert [(f["kind"], f["subject"]) for f in died] == [("lambdaCrash", f"batch={cid}:0:0")] * 2
    assert report["status"] == "completed" and report["counts"]["batches"] == [25]
    ddb = stack.clients.client("dynamodb")
    keys = [{"emailId": {"S": cp.email_id_for(cid, a)}} for a in rows]
    table = stack.outputs["TrackingTableName"]
    # as readers see them: a claim whose batch result chunk holds its messageId is sent (ADR 0014)
    items = {i["recipient"]: campaign_flow.resolve(ddb, table, i) for i in map(to_plain, batch_get(ddb, table, keys))}
    assert set(items) == set(rows), f"never attempted: {sorted(set(rows) - set(items))}"
    statuses = Counter(i["status"] for i in items.values())
    assert statuses == {"sent": 98, "failed": 2}, statuses
    unknown = [a for a, i in items.items() if i["status"] == "failed"]
    assert all("unknown outcome" in items[a]["reason"] and items[a]["sendState"] == "sending" for a in unknown)
    outbox = sent_to(stack, cid)
    assert set(outbox) == set(rows) - set(unknown) and max(outbox.values()) == 1  # nobody twice
    assert (report["totals"]["accepted"], report["totals"]["unknown"], report.get("unaccounted", 0)) == (98, 2, 0)
    assert progress(stack, cid)["done"] == 100


def test_a_chunk_that_cannot_be_planned_fails_the_campaign_before_anyone_is_mailed(stack: Target) -> None:
    """A list over the chunk size is planned by PlanChunks (ADR 0016): a chunk function that
    dies every time (after the task's retries) fails the Map, and PlanFailed records the
    campaign failed with the Map's error; nothing is sent."""
    from ..helpers import fault_log, set_fault_plan

    cid = f"pc{uuid.uuid4().hex[:8]}"
    crash = {
        "kind": "lambdaCrash",
        "function": "CampaignPlanFunction",
        "call": "s3:PutObject",
        "when": "before",
        "p": 1,
    }
    set_fault_plan(stack.state["endpoint"], 3, [crash])
    try:
        _, arn = start(stack, [f"pc{i}@example.org,P" for i in range(1000)], campaignId=cid)
        sfn = stack.clients.client("stepfunctions")
        assert executions.wait(sfn, arn, timeout=180) == "FAILED"
        died = [f for f in fault_log(stack.state["endpoint"]) if f["kind"] == "lambdaCrash"]
    finally:
        set_fault_plan(stack.state["endpoint"], 0, [])
    assert sfn.describe_execution(executionArn=arn)["error"] == "CampaignPlanFailed"
    assert len(died) >= 6  # a chunk's first attempt and its 5 retries
    item = campaign(stack, cid)
    assert item["status"] == "failed"
    assert item["summary"]["reason"].startswith("States.ExceedToleratedFailureThreshold: ")
    history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert entered[:5] == ["Plan", "PlannedInChunks", "PlanChunks", "PlanChunksFailed", "PlanFailed"]
    assert sent_to(stack, cid) == Counter()
