"""The CLI against the local stack: exit codes of ``send``, ``--json`` before and after every
command that reads the stack, DynamoDB numbers as JSON numbers, ``campaign start --wait``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sesflow import cli
from sesflow.target import Target

from ..conftest import EVENTS

pytestmark = pytest.mark.local

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(stack: Target, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run the CLI in-process against the session stack (its state dir)."""
    monkeypatch.setenv("SESFLOW_STATE_DIR", str(Path(stack.state["outbox"]).parent))

    def run_cli(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run_cli


def _without_clock(doc: Any) -> Any:
    """The document without what depends on the second it was made (expiresAt, timestamps)."""
    if isinstance(doc, dict):
        return {k: _without_clock(v) for k, v in doc.items() if k not in ("expiresAt", "timestamp", "startedAt")}
    if isinstance(doc, list):
        return [_without_clock(v) for v in doc]
    return doc


def both_ways(run: Run, *argv: str) -> tuple[int, Any]:
    """``sesflow --json CMD`` and ``sesflow CMD --json``: same exit code, same JSON (two runs a
    moment apart: fields that carry the clock may differ by a second)."""
    code, out, err = run("--json", *argv)
    code_after, out_after, _ = run(*argv, "--json")
    assert code == code_after, (argv, err)
    before, after = json.loads(out), json.loads(out_after)
    assert _without_clock(before) == _without_clock(after), argv
    return code, before


def send(run: Run, to: str, *extra: str) -> tuple[int, dict[str, Any]]:
    email_id = f"cli-{uuid.uuid4().hex[:12]}"
    data = '{"name": "Ada", "product": "Acme"}'
    code, out, err = run("send", "--template", "welcome", "--to", to, "--data", data, "--email-id", email_id, *extra)
    assert out, err
    return code, json.loads(out) if "--json" in extra else {"emailId": email_id, "text": out}


def test_send_exit_codes(run: Run) -> None:
    code, result = send(run, "success@simulator.amazonses.com", "--json")
    assert code == 0 and result["status"] == "sent" and result["messageId"]
    code, result = send(run, "not-an-address", "--json")
    assert code == 1 and result["status"] == "rejected" and result["reason"]
    code, result = send(run, "success@simulator.amazonses.com")  # text: one line per email
    assert code == 0 and result["text"].startswith(f"{result['emailId']}: sent\n  messageId ")


def test_send_json_before_and_after_the_command(run: Run) -> None:
    email_id = f"cli-{uuid.uuid4().hex[:12]}"
    base = ["send", "--template", "welcome", "--to", "not-an-address", "--email-id", email_id]
    code, before, _ = run("--json", *base)
    code_after, after, _ = run(*base, "--json")  # the same emailId: the same (rejected) outcome
    assert code == code_after == 1 and json.loads(before) == json.loads(after)


def test_send_at_and_cancel_exit_codes(run: Run) -> None:
    """``send --at`` ends scheduled (exit 0); ``cancel`` exits 0 cancelled (again: 0, already),
    1 not cancellable (sent), 2 no such email; ``status`` shows when it was scheduled for."""
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    code, result = send(run, "success@simulator.amazonses.com", "--at", at, "--json")
    assert code == 0 and result["status"] == "scheduled" and result["reason"] == f"scheduled for {at}"
    email_id = result["emailId"]
    code, out, _ = run("status", email_id)
    assert code == 0 and out.startswith(f"{email_id}: scheduled (scheduled for {at})\n") and f"scheduledFor {at}" in out
    code, out, _ = run("cancel", email_id)
    assert code == 0 and out == f"{email_id}: cancelled; it was scheduled for {at}\n"
    code, again = both_ways(run, "cancel", email_id)
    assert code == 0 and again["cancelled"] and again["alreadyCancelled"] and again["status"] == "cancelled"
    code, sent = send(run, "success@simulator.amazonses.com", "--json")
    code, out, _ = run("cancel", sent["emailId"], "--json")
    assert code == 1 and json.loads(out)["reason"].startswith("it was sent")
    code, _, err = run("cancel", "no-such-email")
    assert code == 2 and "no tracking item" in err
    code, result = send(run, "success@simulator.amazonses.com", "--at", "tomorrow", "--json")
    assert code == 1 and result["status"] == "rejected" and "sendAt must be an ISO 8601" in result["reason"]


def test_status_json_numbers_are_numbers(run: Run, stack: Target) -> None:
    code, result = send(run, "success@simulator.amazonses.com", "--json")
    assert code == 0
    # the feedback function records the Delivery event on its own time: let it finish first, or
    # the two reads of both_ways may see it half-applied (pendingEffects) and then applied
    from sesflow.cli.send import tracking_item

    from ..helpers import poll

    poll(
        lambda: (
            (i := tracking_item(stack, result["emailId"]) or {}).get("status") == "delivered"
            and not i.get("pendingEffects")
        ),
        timeout=30,
        what="the delivery recorded",
    )
    code, item = both_ways(run, "status", result["emailId"])
    assert code == 0 and item["status"] == "delivered"
    raw = stack.clients.client("dynamodb").get_item(
        TableName=stack.outputs["TrackingTableName"], Key={"emailId": {"S": result["emailId"]}}, ConsistentRead=True
    )["Item"]
    numeric = [name for name, value in raw.items() if "N" in value]
    assert "statusSequence" in numeric
    for name in numeric:
        assert type(item[name]) in (int, float), (name, item[name])
    assert type(item["statusSequence"]) is int
    code, _, err = run("--json", "status", "no-such-email")
    assert code == 2 and "no tracking item" in err


def test_suppression_commands_json_both_ways(run: Run) -> None:
    address = f"cli-{uuid.uuid4().hex[:8]}@example.org"
    code, out, _ = run("--json", "suppression", "add", address, "--topic", "news", "--reason", "test")
    assert code == 0 and json.loads(out)["added"] == address
    code, verdict = both_ways(run, "suppression", "check", address, "--topic", "news")
    assert code == 1 and verdict["suppressed"] is True and type(verdict["entries"][0]["hits"]) is int
    code, verdict = both_ways(run, "suppression", "check", address, "--topic", "transactional")
    assert code == 0 and verdict["suppressed"] is False
    code, rows = both_ways(run, "suppression", "list", address)
    assert code == 0 and [r["topic"] for r in rows] == ["news"]
    code, out, _ = run("suppression", "remove", address, "--topic", "news", "--reason", "done", "--json")
    assert code == 0 and json.loads(out)["removed"] == address
    code, _, err = run("--json", "suppression", "remove", address, "--topic", "news", "--reason", "again")
    assert code == 2 and "not suppressed" in err


def test_execution_commands_json_both_ways(run: Run) -> None:
    name = f"cli-{uuid.uuid4().hex[:12]}"
    code, out, _ = run("--json", "run", "SendStateMachine", "--input", "[1]", "--name", name)
    assert code == 0 and json.loads(out)["name"] == name
    code, report = both_ways(run, "history", name)
    assert code == 0 and report["name"] == name and type(report["historyEvents"]) is int
    # other executions may start or end between the two runs (earlier tests' schedules and
    # events): the two runs are compared on this test's own execution
    code, out, err = run("--json", "executions", "SendStateMachine", "--limit", "500")
    code_after, out_after, _ = run("executions", "SendStateMachine", "--limit", "500", "--json")
    rows, rows_after = json.loads(out), json.loads(out_after)
    assert code == code_after == 0, err
    assert [r for r in rows if r["name"] == name] == [r for r in rows_after if r["name"] == name] != []
    assert all(isinstance(r["startDate"], str) and "T" in r["startDate"] for r in rows)  # ISO 8601
    code, events = both_ways(run, "history", name, "--events")
    assert code == 0 and isinstance(events, list) and events[0]["type"] == "ExecutionStarted"


def test_invoke_outbox_local_status_and_doctor_json_both_ways(run: Run) -> None:
    code, result = both_ways(run, "invoke", "ValidateFunction", "-e", str(EVENTS / "fn-validate.json"))
    assert code in (0, 1) and set(result) == {"function", "functionError", "payload"}
    code, entries = both_ways(run, "outbox", "--last", "2")
    assert code == 0 and isinstance(entries, list)
    code, state = both_ways(run, "local", "status")
    assert code == 0 and state["running"] is True and type(state["pid"]) is int
    code, report = both_ways(run, "doctor")
    assert code == 0 and report["ok"] is True and {c["status"] for c in report["checks"]} <= {"pass", "warn"}


def test_campaign_start_wait_status_and_report(run: Run, tmp_path: Path) -> None:
    cid = f"cli{uuid.uuid4().hex[:10]}"
    recipients = tmp_path / "list.csv"
    recipients.write_text("email,name\n" + "".join(f"cli{i}@example.org,R{i}\n" for i in range(12)))
    data = '{"title": "T", "intro": "I", "articles": []}'
    code, out, err = run(
        "campaign", "start", "--template", "newsletter", "--recipients", str(recipients), "--campaign-id", cid,
        "--data", data, "--stages", "100", "--observe-seconds", "1", "--wait",
    )  # fmt: skip
    assert code == 0, (out, err)
    assert out.startswith(f"campaign {cid}: completed")
    assert "\r" not in err and err.rstrip().splitlines()[-1].startswith(f"campaign {cid}: completed, 12/12 (100%)")
    code, progress = both_ways(run, "campaign", "status", cid)
    assert code == 0 and progress["status"] == "completed"
    assert (progress["planned"], progress["done"]) == (12, 12) and type(progress["stages"][0]["sent"]) is int
    code, out, _ = run("--json", "campaign", "report", cid, "--out", str(tmp_path))
    assert code == 0 and json.loads(out)["totals"]["accepted"] == 12
    assert (tmp_path / f"{cid}-failures.csv").read_text().splitlines() == ["emailId,recipient,status,reason"]
    code, _, err = run("--json", "campaign", "pause", cid)
    assert code == 2 and "is completed" in err
