"""Drip sequences on the local stack: deploy, enroll with a time scale (a day per second),
the steps' emails through the send machine once each, an unsubscribe ending it, an exit."""

from __future__ import annotations

import io
import json
import uuid
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from sesflow_aws import sequences as store
from sesflow_core import sequence as sq

from sesflow import executions
from sesflow.target import Target

from ..conftest import ROOT
from ..helpers import poll
from .test_campaigns import cli_run
from .test_send_machine import messages_for

pytestmark = pytest.mark.local

DATA = {"name": "Ada", "product": "Acme"}


def cli_json(stack: Target, *argv: str) -> tuple[int, Any]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli_run(stack, *argv, "--json")
    text = out.getvalue().strip()
    return code, (json.loads(text) if text.startswith(("{", "[")) else err.getvalue())


@pytest.fixture(scope="module")
def onboarding(stack: Target) -> int:
    code, out = cli_json(stack, "sequence", "deploy", str(ROOT / "sequences" / "onboarding.yaml"))
    assert code == 0, out
    return int(out["version"])


def enrollment(stack: Target, key: str) -> dict[str, Any]:
    item = store.enrollment(stack.clients.client("dynamodb"), stack.outputs["SequencesTableName"], "onboarding", key)
    return item or {}


def ended(stack: Target, key: str) -> dict[str, Any]:
    item: dict[str, Any] = poll(
        lambda: (e := enrollment(stack, key)) and e.get("status") != "active" and e, timeout=90, what=f"{key} ends"
    )
    return item


def test_an_enrollment_sends_each_step_once_in_order_with_its_waits(stack: Target, onboarding: int) -> None:
    to = f"success+seq{uuid.uuid4().hex[:6]}@simulator.amazonses.com"
    code, out = cli_json(
        stack, "sequence", "enroll", "onboarding", "--to", to, "--data", json.dumps(DATA), "--time-scale", "86400"
    )
    assert code == 0 and out["status"] == "enrolled", out
    again = cli_json(stack, "sequence", "enroll", "onboarding", "--to", to, "--data", json.dumps(DATA))[1]
    assert again["status"] == "already enrolled" and again["key"] == out["key"]  # one enrollment
    item = ended(stack, out["key"])
    assert item["status"] == "completed", item
    kinds = [(h["step"], h["type"]) for h in item["history"]]
    assert kinds == [
        ("welcome", "send"),
        ("wait-2-days", "wait"),
        ("tips", "send"),
        ("tips-bounced", "branch"),
        ("wait-5-days", "wait"),
        ("morning", "wait"),
        ("feedback-ask", "send"),
    ]
    waits = {h["step"]: h["seconds"] for h in item["history"] if h["type"] == "wait"}
    assert waits["wait-2-days"] == 2 * 86400 and waits["wait-5-days"] == 5 * 86400 and 0 < waits["morning"] <= 86400
    for step in ("welcome", "tips", "feedback-ask"):
        email_id = sq.email_id(out["key"], step)
        poll(lambda e=email_id: len(messages_for(stack, e)) == 1, timeout=30, what=f"{step} sent")
    sfn = stack.clients.client("stepfunctions")
    assert executions.wait(sfn, out["executionArn"], timeout=30) == "SUCCEEDED"
    assert item["version"] == onboarding


def test_an_address_unsubscribed_from_the_topic_exits_before_the_next_send(stack: Target, onboarding: int) -> None:
    to = f"success+unsub{uuid.uuid4().hex[:6]}@simulator.amazonses.com"
    ddb = stack.clients.client("dynamodb")
    ddb.put_item(
        TableName=stack.outputs["SuppressionTableName"],
        Item={"address": {"S": to.lower()}, "topic": {"S": "onboarding"}, "reason": {"S": "unsubscribed"}},
    )
    _code, out = cli_json(
        stack, "sequence", "enroll", "onboarding", "--to", to, "--data", json.dumps(DATA), "--time-scale", "86400"
    )
    item = ended(stack, out["key"])
    assert item["status"] == "exited" and "unsubscribed or suppressed for onboarding" in item["reason"]
    assert [h["step"] for h in item["history"]] == ["welcome", "wait-2-days"]  # the transactional welcome went
    assert messages_for(stack, sq.email_id(out["key"], "tips")) == []


def test_exit_stops_an_enrollment_in_its_wait(stack: Target, onboarding: int) -> None:
    to = f"success+exit{uuid.uuid4().hex[:6]}@simulator.amazonses.com"
    code, out = cli_json(
        stack, "sequence", "enroll", "onboarding", "--to", to, "--data", json.dumps(DATA), "--time-scale", "3600"
    )
    poll(
        lambda: any(h["step"] == "wait-2-days" for h in enrollment(stack, out["key"]).get("history", [])),
        30,
        what="waiting",
    )
    code, result = cli_json(stack, "sequence", "exit", "onboarding", out["key"], "--reason", "left the company")
    assert code == 0 and result["exited"] is True
    sfn = stack.clients.client("stepfunctions")
    assert executions.wait(sfn, out["executionArn"], timeout=30) == "ABORTED"
    item = enrollment(stack, out["key"])
    assert (item["status"], item["reason"]) == ("exited", "left the company")
    assert messages_for(stack, sq.email_id(out["key"], "tips")) == []
    code, listed = cli_json(stack, "sequence", "list", "onboarding")
    assert any(r["key"] == out["key"] and r["status"] == "exited" for r in listed)


def test_a_step_failing_past_its_retries_ends_the_enrollment_failed(stack: Target, onboarding: int) -> None:
    """The machine's Step catches every error into RecordFailure (mode ``fail``), then fails:
    the enrollment says ``failed`` with the error instead of staying ``active`` for ever."""
    definition = json.loads((ROOT / "statemachines" / "sequence.asl.json").read_text())["States"]
    assert definition["Step"]["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}
    ]
    assert (
        definition["RecordFailure"]["Next"] == "EnrollmentFailed" and definition["EnrollmentFailed"]["Type"] == "Fail"
    )
    to = f"success+fail{uuid.uuid4().hex[:6]}@simulator.amazonses.com"
    code, out = cli_json(
        stack, "sequence", "enroll", "onboarding", "--to", to, "--data", json.dumps(DATA), "--time-scale", "3600"
    )
    assert code == 0, out
    poll(lambda: enrollment(stack, out["key"]).get("status") == "active", 30, what="enrolled")
    error = {"Error": "Sandbox.Timedout", "Cause": "Task timed out after 15.00 seconds"}
    payload = {
        "mode": "fail",
        "input": {"sequence": "onboarding", "key": out["key"], "version": onboarding},
        "error": error,
    }
    lam = stack.clients.client("lambda")
    for _ in range(2):  # a retried RecordFailure changes nothing
        answer = lam.invoke(FunctionName=stack.function_name("SequenceFunction"), Payload=json.dumps(payload).encode())
        assert "FunctionError" not in answer
    item = enrollment(stack, out["key"])
    assert item["status"] == "failed" and item["reason"].startswith("Sandbox.Timedout: Task timed out"), item
    sfn = stack.clients.client("stepfunctions")
    sfn.stop_execution(executionArn=out["executionArn"], cause="test cleanup")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["steps"][1].update(next="welcome"), "cycle"),
        (lambda d: d["steps"][2].update(template="no-such-template"), "not in the templates bucket: no-such-template"),
        (lambda d: d["steps"][1].update(duration="400d"), "at most 360"),
        (lambda d: d["steps"][3]["when"].append({"if": "teleported", "goto": "exit"}), "unknown condition"),
    ],
)
def test_a_bad_definition_is_refused_at_deploy_with_the_reason(
    stack: Target, tmp_path: Path, change: Any, reason: str
) -> None:
    import yaml  # type: ignore[import-untyped]

    definition = yaml.safe_load((ROOT / "sequences" / "onboarding.yaml").read_text())
    definition["name"] = f"bad-{uuid.uuid4().hex[:6]}"
    change(definition)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(definition))
    code, err = cli_json(stack, "sequence", "deploy", str(path))
    assert code == 2 and reason in err, err
    assert (
        store.latest_version(stack.clients.client("dynamodb"), stack.outputs["SequencesTableName"], definition["name"])
        is None
    )
