"""Defer: a send SES refused for rate or quota becomes a one-time schedule that starts a new
execution (``sendRound`` + 1), once per round; past MaxSendRounds the email is failed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sesflow_core import deferral
from sesflow_core import request as req
from sesflow_handlers import defer

from .conftest import (
    ROOT,
    SCHEDULE_GROUP,
    SCHEDULER_ROLE_ARN,
    SEND_MACHINE_ARN,
    Aws,
    LambdaContext,
    normalised,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def run(ctx: LambdaContext, request: dict[str, Any], error: str = "SesThrottled") -> dict[str, Any]:
    event = {
        "request": request,
        "error": {"Error": error, "Cause": json.dumps({"errorType": error, "errorMessage": "refused"})},
        "stateMachineArn": SEND_MACHINE_ARN,
    }
    result: dict[str, Any] = defer.handler(event, ctx)
    return result


def schedules(aws: Aws) -> list[dict[str, Any]]:
    scheduler = aws.client("scheduler")
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=SCHEDULE_GROUP)["Schedules"]]
    return [scheduler.get_schedule(GroupName=SCHEDULE_GROUP, Name=n) for n in names]


def at_time(expression: str) -> datetime:
    match = re.fullmatch(r"at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)", expression)
    assert match, expression
    return datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def test_throttled_in_round_0_is_deferred_to_a_one_time_schedule(aws: Aws, ctx: LambdaContext) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    out = run(ctx, normalised(emailId="d-1", tags={"app": "signup"}))
    after = datetime.now(UTC)
    assert out["emailId"] == "d-1" and out["status"] == "deferred" and out["messageId"] is None
    assert out["reason"].startswith("SesThrottled: deferred to ") and out["reason"].endswith("(round 1 of 5)")
    [schedule] = schedules(aws)
    assert schedule["Name"] == deferral.schedule_name("d-1", 1)
    assert schedule["GroupName"] == SCHEDULE_GROUP
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    # ThrottleWaitSeconds (30) in round 0: between half and all of it (equal jitter)
    at = at_time(schedule["ScheduleExpression"])
    assert before + timedelta(seconds=14) <= at <= after + timedelta(seconds=30)
    assert at.strftime("%Y-%m-%dT%H:%M:%SZ") in out["reason"]
    target = schedule["Target"]
    assert (target["Arn"], target["RoleArn"]) == (SEND_MACHINE_ARN, SCHEDULER_ROLE_ARN)
    payload = json.loads(target["Input"])
    assert payload["sendRound"] == 1
    assert payload == {
        "emailId": "d-1",
        "template": "welcome",
        "to": "Ada@example.org",
        "data": {"name": "Ada", "product": "Acme"},
        "topic": "transactional",
        "tags": {"app": "signup"},
        "sendRound": 1,
    }
    # what the schedule starts is a send request the next execution accepts as it is
    assert req.validate(payload, identity="example.com").sendRound == 1


def test_the_same_deferral_twice_is_one_schedule(aws: Aws, ctx: LambdaContext) -> None:
    first = run(ctx, normalised(emailId="d-2"))
    second = run(ctx, normalised(emailId="d-2"))  # a retried Defer state: ConflictException, not an error
    assert first["status"] == second["status"] == "deferred"
    assert [s["Name"] for s in schedules(aws)] == [deferral.schedule_name("d-2", 1)]


def test_each_round_is_its_own_schedule_with_a_doubling_wait(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THROTTLE_WAIT_SECONDS", "100")
    start = datetime.now(UTC).replace(microsecond=0)
    run(ctx, normalised(emailId="d-3", sendRound=2))
    [schedule] = schedules(aws)
    assert schedule["Name"] == deferral.schedule_name("d-3", 3)
    assert json.loads(schedule["Target"]["Input"])["sendRound"] == 3
    delay = (at_time(schedule["ScheduleExpression"]) - start).total_seconds()
    assert 200 - 1 <= delay <= 400 + 2  # 100 * 2**2, equal jitter


def test_the_last_round_fails_the_email(aws: Aws, ctx: LambdaContext) -> None:
    out = run(ctx, normalised(emailId="d-4", sendRound=5))  # MaxSendRounds: 5 by default
    assert out == {
        "emailId": "d-4",
        "status": "failed",
        "messageId": None,
        "reason": "SesThrottled: SES still refused after 5 deferred round(s)",
    }
    assert schedules(aws) == []


def test_max_send_rounds_comes_from_the_environment(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_SEND_ROUNDS", "2")
    assert run(ctx, normalised(emailId="d-5", sendRound=1))["status"] == "deferred"
    out = run(ctx, normalised(emailId="d-5", sendRound=2))
    assert out["status"] == "failed"
    assert "still refused after 2 deferred round(s)" in out["reason"]
    monkeypatch.setenv("MAX_SEND_ROUNDS", "0")  # no deferral at all
    assert run(ctx, normalised(emailId="d-6"))["status"] == "failed"
    assert len(schedules(aws)) == 1


def test_the_daily_quota_waits_quota_wait_seconds(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUOTA_WAIT_SECONDS", "7200")
    before = datetime.now(UTC).replace(microsecond=0)
    out = run(ctx, normalised(emailId="d-7"), error="SesDailyQuotaExceeded")
    after = datetime.now(UTC)
    assert out["status"] == "deferred" and out["reason"].startswith("SesDailyQuotaExceeded: deferred to ")
    [schedule] = schedules(aws)
    at = at_time(schedule["ScheduleExpression"])
    assert before + timedelta(seconds=7200) <= at <= after + timedelta(seconds=7200)  # no jitter


def test_the_sample_event(aws: Aws, ctx: LambdaContext) -> None:
    event = json.loads((ROOT / "events" / "fn-defer.json").read_text())
    out = defer.handler(event, ctx)
    assert out["status"] == "deferred"
    [schedule] = schedules(aws)
    assert schedule["Target"]["Arn"] == event["stateMachineArn"]
