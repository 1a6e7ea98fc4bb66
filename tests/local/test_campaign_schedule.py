"""Campaign start time, send windows and daily caps on the local stack, through the real ASL
(Ready -> WaitForWindow), with a campaign clock on a time scale (hours per real second)."""

from __future__ import annotations

import io
import json
from collections import Counter
from contextlib import redirect_stdout
from datetime import datetime
from typing import Any

import pytest
from sesflow_aws.dynamo import to_plain

from sesflow import executions
from sesflow.cli.campaign import campaign
from sesflow.target import Target

from ..helpers import EventCapture, poll
from .test_campaigns import cli_run, finish, sent_to, start, status_of

pytestmark = pytest.mark.local

BERLIN_WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "08:00", "to": "20:00"}


def day_counters(stack: Target, cid: str) -> dict[str, int]:
    """The daily cap's counters: local day -> emails handed to SES that day."""
    ddb = stack.clients.client("dynamodb")
    items = ddb.scan(
        TableName=stack.outputs["TrackingTableName"],
        FilterExpression="begins_with(emailId, :p)",
        ExpressionAttributeValues={":p": {"S": f"campaign#{cid}#stage#day#"}},
        ConsistentRead=True,
    )["Items"]
    return {to_plain(i)["emailId"].rsplit("#", 1)[1]: int(to_plain(i)["used"]) for i in items}


@pytest.fixture(scope="module")
def campaign_capture(stack: Target) -> EventCapture:
    """``Campaign Waiting`` events (one producer: the campaign's Ready step)."""
    return EventCapture(
        stack.clients, stack.outputs["EventBusName"], {"source": ["sesflow"], "detail-type": ["Campaign Waiting"]}
    )


def waiting_events(capture: EventCapture, cid: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in capture.matching(lambda e: e["detail"].get("campaignId") == cid)]


def test_a_capped_campaign_in_a_weekday_window_sends_each_day_s_cap_and_nobody_twice(
    stack: Target, campaign_capture: EventCapture
) -> None:
    """45 recipients, at most 20 a day, Monday-Friday 08:00-20:00 Berlin, starting on a Friday
    at 19:00 on a clock running two hours per second: a few (or none) go on Friday, the
    campaign waits over the weekend and each night (``waiting``, with the next 08:00 as
    ``resumeAt``), no day exceeds 20, everyone gets exactly one email."""
    rows = [f"cap{i}@example.org,C" for i in range(45)]
    cid, arn = start(
        stack,
        rows,
        stages=[100],
        batchSize=10,
        timezone="Europe/Berlin",
        window=BERLIN_WEEKDAYS,
        dailyCap=20,
        clock={"scale": 7200, "start": "2026-11-27T19:00:00+01:00"},
    )
    report = finish(stack, arn, timeout=180)
    assert report["status"] == "completed", report
    sent = sent_to(stack, cid)
    assert len(sent) == 45 and max(sent.values()) == 1
    assert report["totals"]["accepted"] == 45
    days = day_counters(stack, cid)
    assert all(n <= 20 for n in days.values()), days
    assert sum(days.values()) == 45, days
    assert all(datetime.fromisoformat(d).weekday() < 5 for d in days), days  # nothing on the weekend
    waits = poll(lambda: waiting_events(campaign_capture, cid) or None, timeout=10, what="Campaign Waiting")
    resumes = {w["resumeAt"] for w in waits}
    # every resume is an opening of the window: 08:00 Berlin = 07:00 UTC in winter
    assert resumes and all(r.endswith("T07:00:00Z") for r in resumes), resumes
    assert "2026-11-28T07:00:00Z" not in resumes and "2026-11-29T07:00:00Z" not in resumes  # the weekend
    assert {w["reason"] for w in waits} <= {"window", "dailyCap"}


def test_a_campaign_waiting_for_its_start_time_shows_it_and_a_cancel_ends_it_at_once(stack: Target) -> None:
    """startAt an hour ahead (the wall clock): the campaign says ``waiting`` with resumeAt; a
    cancel sends the wait's task token back: it ends cancelled within seconds, nobody mailed."""
    start_at = datetime.fromtimestamp(datetime.now().timestamp() + 3600).astimezone().isoformat(timespec="seconds")
    cid, arn = start(stack, [f"later{i}@example.org,L" for i in range(5)], stages=[100], startAt=start_at)
    poll(lambda: status_of(stack, cid) == "waiting", timeout=60, what="waiting")
    poll(lambda: campaign(stack, cid).get("waitToken"), timeout=20, what="the wait's task token")
    item = campaign(stack, cid)
    assert item["waitReason"] == "startAt" and item["resumeAt"]
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli_run(stack, "campaign", "status", cid) == 0
    assert f"resumes at {item['resumeAt']}" in out.getvalue() and "waiting for its start time" in out.getvalue()
    with redirect_stdout(io.StringIO()):
        assert cli_run(stack, "campaign", "cancel", cid) == 0
    report = finish(stack, arn, timeout=30)
    assert report["status"] == "cancelled"
    assert sent_to(stack, cid) == Counter()


def test_pause_and_resume_during_a_wait_keep_it_waiting_and_send_nobody(stack: Target) -> None:
    start_at = datetime.fromtimestamp(datetime.now().timestamp() + 3600).astimezone().isoformat(timespec="seconds")
    cid, arn = start(stack, [f"held{i}@example.org,H" for i in range(3)], stages=[100], startAt=start_at)
    poll(lambda: status_of(stack, cid) == "waiting", timeout=60, what="waiting")
    with redirect_stdout(io.StringIO()):
        assert cli_run(stack, "campaign", "pause", cid) == 0
        poll(lambda: campaign(stack, cid).get("status") == "paused", timeout=20, what="paused")
        assert cli_run(stack, "campaign", "resume", cid) == 0
        poll(lambda: campaign(stack, cid).get("status") == "waiting", timeout=20, what="waiting again")
        assert cli_run(stack, "campaign", "cancel", cid) == 0
    assert finish(stack, arn, timeout=30)["status"] == "cancelled"
    assert sent_to(stack, cid) == Counter()


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"startAt": "2020-01-01T00:00:00Z"}, "in the past"),
        ({"window": {"from": "17:00", "to": "09:00"}}, "must be before window.to"),
        ({"timezone": "Mars/Olympus_Mons"}, "not a known IANA time zone"),
        ({"dailyCap": 0}, "dailyCap must be"),
    ],
)
def test_bad_schedule_input_fails_the_plan_with_the_reason_and_sends_nothing(
    stack: Target, fields: dict[str, Any], reason: str
) -> None:
    cid, arn = start(stack, [f"bad{i}@example.org,B" for i in range(3)], stages=[100], **fields)
    sfn = stack.clients.client("stepfunctions")
    assert executions.wait(sfn, arn, timeout=60) == "FAILED"
    assert sfn.describe_execution(executionArn=arn)["error"] == "CampaignPlanFailed"
    assert reason in campaign(stack, cid)["summary"]["reason"]
    assert sent_to(stack, cid) == Counter()


def test_a_deployed_stack_refuses_a_campaign_clock() -> None:
    """The time scale is for the local stack: in AWS (no SESFLOW_LOCAL_STACK) it is InvalidCampaign."""
    from sesflow_core.campaign.spec import CampaignSpec
    from sesflow_core.errors import InvalidCampaign

    raw = {"campaignId": "c", "template": "newsletter", "recipients": {"key": "k", "bucket": "b"}}
    with pytest.raises(InvalidCampaign, match="local-stack"):
        CampaignSpec.from_input({**raw, "clock": {"scale": 60}}, allow_clock=False)
    assert json.dumps(CampaignSpec.from_input(raw).clock.as_dict()) == "{}"


def test_local_time_sends_each_zone_at_its_own_09_30_slot_by_slot(stack: Target) -> None:
    """Recipients in four zones (and one unknown), localTime 09:30, a clock from Monday 01:00
    UTC at half an hour per second: one slot per UTC offset, sent in the order the slots'
    09:30 comes round (Kolkata +05:30, Berlin, London, New York), each not before its time;
    the unknown zone is in the rejects; the report has per-slot counts and lateness."""
    zones = {"Asia/Kolkata": 3, "Europe/Berlin": 2, "Europe/London": 4, "America/New_York": 1}
    rows = [f"lt-{z.split('/')[1].lower()}{i}@example.org,L,{z}" for z, n in zones.items() for i in range(n)]
    rows.append("lt-mars@example.org,L,Mars/Olympus_Mons")
    cid, arn = start(
        stack,
        rows,
        header="email,name,timezone",
        stages=[100],
        localTime="09:30",
        clock={"scale": 1800, "start": "2026-11-30T01:00:00Z"},
    )
    report = finish(stack, arn, timeout=120)
    assert report["status"] == "completed", report
    sent = sent_to(stack, cid)
    assert len(sent) == 10 and max(sent.values()) == 1 and "lt-mars@example.org" not in sent
    assert report["counts"]["invalid"] == 1
    [stage] = report["stages"]
    slots = stage["slots"]
    assert [(s["offsetMinutes"], s["target"], s["sent"]) for s in slots] == [
        (330, "2026-11-30T04:00:00Z", 3),
        (60, "2026-11-30T08:30:00Z", 2),
        (0, "2026-11-30T09:30:00Z", 4),
        (-300, "2026-11-30T14:30:00Z", 1),
    ]
    # never early (a second of tolerance: the counters' times are the batch's start and end)
    assert all(s["firstLateSeconds"] >= -1.0 for s in slots), slots
    rejects = (
        stack.clients.client("s3")
        .get_object(Bucket=stack.outputs["CampaignsBucketName"], Key=f"campaigns/{cid}/rejects.csv")["Body"]
        .read()
        .decode()
    )
    assert "Mars/Olympus_Mons" in rejects
