"""The CLI without a stack: the parser (global and local flags for every command, exit codes for
bad usage), the output module, DynamoDB numbers in JSON output, the campaign progress bar."""

from __future__ import annotations

import argparse
import ast
import io
import json
import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sesflow import cli
from sesflow.cli import app, campaign, inputs, output, send
from sesflow.cli.campaign import ProgressEstimator, ProgressPrinter, ProgressView, format_eta, render_bar, render_line
from sesflow.cli.output import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from sesflow.target import Target

ROOT = Path(__file__).resolve().parents[2]
CLI_DIR = ROOT / "sesflow" / "cli"

#: every leaf command with the arguments it needs; test_every_command_is_listed keeps it complete
COMMANDS: dict[str, list[str]] = {
    "local up": [],
    "local status": [],
    "local down": [],
    "invoke": ["SendFunction"],
    "run": ["SendStateMachine"],
    "executions": [],
    "history": ["some-execution"],
    "outbox": [],
    "send": ["--template", "welcome", "--to", "a@example.org"],
    "status": ["email-1"],
    "cancel": ["email-1"],
    "webhook add": ["https://hooks.example.org/x", "--events", "Email Status Changed"],
    "webhook list": [],
    "webhook remove": ["wh_0123456789ab"],
    "webhook test": ["wh_0123456789ab"],
    "webhook rotate-secret": ["wh_0123456789ab"],
    "webhook replay": [],
    "suppression list": [],
    "suppression add": ["a@example.org", "--reason", "r"],
    "suppression remove": ["a@example.org", "--reason", "r"],
    "suppression check": ["a@example.org"],
    "campaign start": ["--template", "newsletter", "--recipients", "list.csv"],
    "campaign status": ["c1"],
    "campaign pause": ["c1"],
    "campaign resume": ["c1"],
    "campaign cancel": ["c1"],
    "campaign approve": ["c1"],
    "campaign reject": ["c1"],
    "campaign pick-winner": ["c1", "B"],
    "sequence deploy": ["sequences/onboarding.yaml"],
    "sequence enroll": ["onboarding", "--to", "a@example.org"],
    "sequence list": ["onboarding"],
    "sequence status": ["onboarding", "k"],
    "sequence exit": ["onboarding", "k"],
    "campaign report": ["c1"],
    "doctor": [],
    "console": ["--port", "0"],
}


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[str]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [" ".join(prefix)]
    return [leaf for name, p in subs[0].choices.items() for leaf in leaf_commands(p, (*prefix, name))]


def parse(*argv: str) -> argparse.Namespace:
    return app.build_parser().parse_args(list(argv))


def without_func(ns: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(ns).items() if k != "func"}


# ---------------------------------------------------------------- parser


def test_every_command_is_listed() -> None:
    assert sorted(leaf_commands(app.build_parser())) == sorted(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_global_and_local_flags_mean_the_same(command: str) -> None:
    words, rest = command.split(), COMMANDS[command]
    flags = ["--json", "--stack", "sesflow-dev", "--region", "eu-west-1"]
    before, after = parse(*flags, *words, *rest), parse(*words, *rest, *flags)
    assert (before.json, before.stack, before.region) == (True, "sesflow-dev", "eu-west-1")
    assert without_func(before) == without_func(after) and before.func is after.func
    plain = parse(*words, *rest)
    assert (plain.json, plain.stack, plain.region) == (False, None, None)
    if len(words) == 2:  # between a command and its sub-command too
        between = parse(words[0], *flags, words[1], *rest)
        assert without_func(between) == without_func(before)


def test_the_flag_nearest_the_end_wins() -> None:
    args = parse("--stack", "a", "status", "--stack", "b", "e1")
    assert args.stack == "b"


def test_every_command_module_is_registered_explicitly() -> None:
    from sesflow.cli import console, doctor, invoke, local, sequence, suppression, webhook

    assert set(app.COMMANDS) == {local, invoke, send, suppression, campaign, sequence, webhook, doctor, console}
    assert cli.main is app.main


def test_entry_point_and_package_are_declared() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["sesflow"] == "sesflow.cli:main"
    assert "sesflow.cli" in pyproject["tool"]["setuptools"]["packages"]
    assert "sesflow_aws" in pyproject["tool"]["setuptools"]["packages"]
    assert pyproject["tool"]["setuptools"]["package-dir"]["sesflow_aws"] == "functions/sesflow_aws"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.append((node.module or "", [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in CLI_DIR.glob("*.py")))
def test_no_import_circle_and_no_private_names(module: str) -> None:
    for source, names in imports(CLI_DIR / module):
        assert not any(n.startswith("_") for n in names), f"{module} imports a private name from {source}"
        if module not in ("app.py", "__init__.py", "__main__.py"):
            assert source != "sesflow.cli.app" and "app" not in (names if source == "sesflow.cli" else []), module


def test_old_modules_are_gone() -> None:
    assert not list((ROOT / "sesflow").glob("cli_*.py")) and not (ROOT / "sesflow" / "cli.py").exists()


# ---------------------------------------------------------------- exit codes for bad usage


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["send"],
        ["send", "--to", "a@example.org"],
        ["executions", "--limit", "many"],
        ["campaign"],
        ["campaign", "start", "--template", "t", "--recipients", "x.csv", "--approval", "sometimes"],
        ["suppression", "add", "a@example.org"],
        ["status"],
        ["cancel"],
        ["doctor", "--bogus"],
        ["--json"],
    ],
)
def test_argparse_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == EXIT_USAGE
    assert "usage: sesflow" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Exit codes: 0 success; 1 it ran and failed" in out


@pytest.fixture
def no_stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No local stack running (an empty state dir) and no deployed stack named."""
    monkeypatch.setenv("SESFLOW_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SESFLOW_ROOT", str(ROOT))
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["send", "--template", "w", "--to", "a@example.org", "--data", "{not json"], "--data: not valid JSON"),
        (["send", "--template", "w", "--to", "a@example.org", "--data", "[1]"], "--data must be a JSON object"),
        (["send", "--template", "w", "--to", "a@example.org", "--tag", "novalue"], "expected NAME=VALUE"),
        (["invoke", "SendFunction", "-e", "@/no/such/file.json"], "cannot read"),
        (["campaign", "start", "--template", "t", "--recipients", "/no/such.csv"], "no such file"),
        (["suppression", "check", "not-an-address"], "address"),
        (["status", "e1"], "local stack is not running"),
        (["cancel", "e1"], "local stack is not running"),
        (["--json", "campaign", "status", "c1"], "local stack is not running"),
        (["local", "status", "--json"], None),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str], message: str | None, no_stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    if message is None:  # `local status` when nothing runs: it ran, the answer is "no" (exit 1)
        assert code == EXIT_FAILED and json.loads(out) == {"running": False}
        return
    assert code == EXIT_USAGE, (out, err)
    assert err.startswith("sesflow: ") and message in err and err.count("\n") == 1


def test_campaign_start_refuses_bad_ids_and_stages(no_stack: Path, tmp_path: Path) -> None:
    recipients = tmp_path / "list.csv"
    recipients.write_text("email\na@example.org\n")
    base = ["campaign", "start", "--template", "newsletter", "--recipients", str(recipients)]
    assert cli.main([*base, "--campaign-id", "x" * 61]) == EXIT_USAGE
    assert cli.main([*base, "--campaign-id", "ok", "--stages", "1,ten,100"]) == EXIT_USAGE


def test_aws_errors_exit_1(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from botocore.exceptions import ClientError

    def denied(args: argparse.Namespace) -> Target:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetItem")

    monkeypatch.setattr(inputs, "resolve_target", denied)
    assert cli.main(["status", "e1"]) == EXIT_FAILED
    assert "AccessDenied" in capsys.readouterr().err


# ---------------------------------------------------------------- output


def test_dumps_keeps_numbers_native() -> None:
    data = {
        "i": Decimal("3"),
        "f": Decimal("2.5"),
        "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "s": {"b", "a"},
        "raw": b"\x00\xff",
        "p": Path("/tmp/x"),
    }
    assert json.loads(output.dumps(data)) == {
        "i": 3,
        "f": 2.5,
        "at": "2026-01-02T03:04:05+00:00",
        "s": ["a", "b"],
        "raw": "AP8=",
        "p": "/tmp/x",
    }


def test_emit_text_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    output.emit(argparse.Namespace(json=False), {"a": 1}, "a is 1")
    assert capsys.readouterr().out == "a is 1\n"
    output.emit(argparse.Namespace(json=True), {"a": 1}, "a is 1")
    assert json.loads(capsys.readouterr().out) == {"a": 1}
    output.emit(argparse.Namespace(json=False), [1, 2])  # no text form: JSON
    assert json.loads(capsys.readouterr().out) == [1, 2]
    output.emit(argparse.Namespace(), {"a": 1}, "text")  # no --json attribute at all
    assert capsys.readouterr().out == "text\n"


def test_error_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    output.error(ValueError("broken"))
    assert capsys.readouterr() == ("", "sesflow: broken\n")


def test_exit_codes_are_the_documented_ones() -> None:
    assert (EXIT_OK, EXIT_FAILED, EXIT_USAGE) == (0, 1, 2)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("sent", 0),
        ("suppressed", 0),
        ("deferred", 0),
        ("scheduled", 0),
        ("failed", 1),
        ("rejected", 1),
        ("paused", 1),
        ("cancelled", 1),
        (None, 1),
    ],
)
def test_send_exit_codes(status: str | None, code: int) -> None:
    assert send.send_exit_code({"emailId": "e", "status": status}) == code


# ---------------------------------------------------------------- DynamoDB numbers in JSON (fake tables)


class FakeDynamo:
    """get_item, query and scan over raw items (attribute-value maps), as the low-level client answers."""

    def __init__(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        self.tables = tables

    def get_item(self, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        for item in self.tables.get(TableName, []):
            if all(item.get(k) == v for k, v in Key.items()):
                return {"Item": item}
        return {}

    def get_paginator(self, name: str) -> Any:
        fake = self

        class Paginator:
            def paginate(self, TableName: str, **kw: Any) -> list[dict[str, Any]]:
                items = fake.tables.get(TableName, [])
                if name == "query":
                    attr = kw["KeyConditionExpression"].split(" = ")[0]
                    value = next(iter(kw["ExpressionAttributeValues"].values()))
                    items = [i for i in items if i.get(attr) == value]
                return [{"Items": items}]

        return Paginator()


class FakeClients:
    region = "us-east-1"

    def __init__(self, ddb: FakeDynamo) -> None:
        self.ddb = ddb

    def client(self, service: str) -> Any:
        assert service == "dynamodb"
        return self.ddb


TRACKING = {
    "emailId": {"S": "e1"},
    "status": {"S": "delivered"},
    "statusSequence": {"N": "3"},
    "expiresAt": {"N": "1790000000"},
    "sendRound": {"N": "1"},
    "eventKeys": {"SS": ["k1", "k2"]},
    "timeline": {"L": [{"S": json.dumps({"event": "Send", "at": "2026-01-01T00:00:00Z"})}]},
}
CAMPAIGN = {
    "campaignId": {"S": "c1"},
    "status": {"S": "running"},
    "control": {"S": "run"},
    "plan": {
        "M": {
            "maxSendRate": {"N": "14"},
            "gate": {"M": {"observeSeconds": {"N": "1"}}},
            "counts": {"M": {"rows": {"N": "120"}, "valid": {"N": "120"}}},
            "stages": {
                "L": [
                    {"M": {"index": {"N": "0"}, "planned": {"N": "20"}, "batches": {"N": "1"}, "percent": {"N": "10"}}},
                    {
                        "M": {
                            "index": {"N": "1"},
                            "planned": {"N": "100"},
                            "batches": {"N": "2"},
                            "percent": {"N": "100"},
                        }
                    },
                ]
            },
        }
    },
}
COUNTERS = [
    {
        "emailId": {"S": "campaign#c1#stage#0"},
        "accepted": {"N": "19"},
        "failed": {"N": "1"},
        "firstSendAt": {"N": "1000.0"},
        "lastSendAt": {"N": "1002.0"},
    },
    {
        "emailId": {"S": "campaign#c1#stage#1"},
        "accepted": {"N": "50"},
        "firstSendAt": {"N": "1010.5"},
        "lastSendAt": {"N": "1015.5"},
    },
]
SUPPRESSION = [
    {"address": {"S": "a@example.org"}, "topic": {"S": "*"}, "reason": {"S": "bounce"}, "hits": {"N": "2"}},
    {"address": {"S": "a@example.org"}, "topic": {"S": "#removed:news"}, "reason": {"S": "old"}},
]


@pytest.fixture
def fake_stack(monkeypatch: pytest.MonkeyPatch) -> Target:
    ddb = FakeDynamo({"tracking": [TRACKING, *COUNTERS], "campaigns": [CAMPAIGN], "suppression": SUPPRESSION})
    outputs = {
        "TrackingTableName": "tracking",
        "CampaignsTableName": "campaigns",
        "SuppressionTableName": "suppression",
    }
    target = Target(FakeClients(ddb), "sesflow-test", outputs, {}, True)  # type: ignore[arg-type]
    monkeypatch.setattr(inputs, "resolve_target", lambda args: target)
    return target


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, Any]:
    """The command with --json before and after it: both outputs must be the same JSON."""
    code_before = cli.main(["--json", *argv])
    before = json.loads(capsys.readouterr().out)
    code_after = cli.main([*argv, "--json"])
    after = json.loads(capsys.readouterr().out)
    assert code_before == code_after
    return code_before, before, after


def test_status_json_numbers_are_numbers(fake_stack: Target, capsys: pytest.CaptureFixture[str]) -> None:
    code, before, after = run_json(capsys, "status", "e1")
    assert code == EXIT_OK and before == after
    assert before["statusSequence"] == 3 and before["expiresAt"] == 1790000000 and before["sendRound"] == 1
    assert "eventKeys" not in before and before["timeline"] == [{"event": "Send", "at": "2026-01-01T00:00:00Z"}]
    assert cli.main(["status", "e1"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("e1: delivered\n")


def test_status_of_an_unknown_email_exits_2(fake_stack: Target, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--json", "status", "nope"]) == EXIT_USAGE
    assert "no tracking item" in capsys.readouterr().err


def test_campaign_status_json(fake_stack: Target, capsys: pytest.CaptureFixture[str]) -> None:
    code, before, after = run_json(capsys, "campaign", "status", "c1")
    assert code == EXIT_OK and before == after
    assert (before["planned"], before["done"], before["maxSendRate"]) == (120, 70, 14)
    first, second = before["stages"]
    assert first == {**first, "planned": 20, "done": 20, "sent": 19, "failed": 1, "rate": 9.5, "etaSeconds": 0}
    assert second == {**second, "planned": 100, "done": 50, "sent": 50, "rate": 10.0, "etaSeconds": 5.0}
    assert all(type(v) is int for v in (first["planned"], first["sent"], before["counts"]["rows"]))
    assert cli.main(["campaign", "status", "c1"]) == EXIT_OK
    assert capsys.readouterr().out.startswith("campaign c1: running\n")


def test_suppression_json(fake_stack: Target, capsys: pytest.CaptureFixture[str]) -> None:
    code, before, after = run_json(capsys, "suppression", "check", "A@example.org")
    assert code == EXIT_FAILED and before == after  # 1: suppressed
    assert before["suppressed"] is True and before["entries"][0]["hits"] == 2
    code, before, _ = run_json(capsys, "suppression", "check", "b@example.org")
    assert code == EXIT_OK and before["suppressed"] is False
    code, before, after = run_json(capsys, "suppression", "list")
    assert code == EXIT_OK and before == after and [e["topic"] for e in before] == ["*"]


def test_tracking_item_is_plain(fake_stack: Target) -> None:
    item = send.tracking_item(fake_stack, "e1")
    assert item is not None and item["statusSequence"] == 3 and item["eventKeys"] == ["k1", "k2"]
    assert send.tracking_item(fake_stack, "nope") is None


# ---------------------------------------------------------------- the progress bar (pure)


def snapshot(
    done: int,
    rate: float,
    *,
    planned: int = 200,
    batches: int = 4,
    status: str = "running",
    control: str = "run",
    max_rate: float | None = 14.0,
    stages: int = 1,
) -> dict[str, Any]:
    rows = [
        {"stage": i, "planned": planned, "batches": batches, "done": done if i == stages - 1 else planned, "rate": rate}
        for i in range(stages)
    ]
    return {
        "campaignId": "c1",
        "status": status,
        "control": control,
        "planned": planned * stages,
        "done": sum(r["done"] for r in rows),
        "maxSendRate": max_rate,
        "observeSeconds": 30,
        "stages": rows,
    }


def test_the_count_moves_per_email_between_counter_updates() -> None:
    est = ProgressEstimator("c1")
    est.observe(100.0, snapshot(50, 10.0))
    assert est.view(100.0).done == 50
    assert est.view(102.0).done == 70  # 2 s at 10/s
    assert est.view(104.5).done == 95


def test_never_past_the_next_real_value() -> None:
    est = ProgressEstimator("c1")
    est.observe(0.0, snapshot(50, 10.0))  # batches of 50: the next update shows at most 100
    assert est.view(60.0).done == 100
    est = ProgressEstimator("c1")
    est.observe(0.0, snapshot(190, 10.0))  # and never past the stage's planned count
    assert est.view(60.0).done == 200


def test_a_batch_is_the_largest_update_seen() -> None:
    """120 planned in 3 batches are 50, 50, 20: after a 50 step the cap is 50 ahead, not the average 40."""
    est = ProgressEstimator("c1")
    est.observe(0.0, snapshot(0, 0.0, planned=120, batches=3))
    assert est.view(60.0).done == 0  # nothing measured yet
    est.observe(7.0, snapshot(50, 7.5, planned=120, batches=3))
    assert est.view(60.0).done == 100


def test_rate_is_capped_by_max_send_rate() -> None:
    est = ProgressEstimator("c1")
    est.observe(0.0, snapshot(50, 40.0, max_rate=5.0))
    view = est.view(2.0)
    assert view.done == 60 and view.rate == 5.0


def test_never_backwards_and_resumes_from_the_new_value() -> None:
    est = ProgressEstimator("c1")
    est.observe(0.0, snapshot(50, 10.0))
    assert est.view(4.0).done == 90
    est.observe(4.0, snapshot(80, 10.0))  # the batch counted fewer than interpolated
    assert est.view(4.0).done == 90  # held, not back to 80
    assert est.view(5.5).done == 95  # 80 + 15: moving again from the real value


def test_no_interpolation_when_paused_awaiting_or_unmeasured() -> None:
    for snap in (
        snapshot(50, 10.0, control="paused"),
        snapshot(50, 10.0, status="awaiting-approval"),
        snapshot(0, 0.0),
    ):
        est = ProgressEstimator("c1")
        est.observe(0.0, snap)
        assert est.view(3.0).done == snap["done"]
    est = ProgressEstimator("c1")
    est.observe(0.0, snapshot(0, 0.0))
    assert est.view(1.0).eta_seconds is None and est.view(1.0).rate is None
    est = ProgressEstimator("c1")
    est.observe(0.0, snapshot(50, 10.0, control="paused"))
    assert est.view(1.0).eta_seconds is None and est.view(1.0).rate == 10.0


def test_eta_from_the_measured_rate_and_the_gates_ahead() -> None:
    est = ProgressEstimator("c1")
    est.observe(0.0, snapshot(100, 10.0))
    assert est.view(0.0).eta_seconds == pytest.approx(10.0)  # 100 left at 10/s, last stage: no gate
    est = ProgressEstimator("c1")
    est.observe(0.0, snapshot(100, 10.0, stages=2))  # stage 2 of 2; stage 1 done
    view = est.view(0.0)
    assert (view.stage, view.stages, view.done, view.planned) == (2, 2, 300, 400)
    assert view.eta_seconds == pytest.approx(10.0)
    est = ProgressEstimator("c1")
    snap = snapshot(100, 10.0, stages=2)
    snap["stages"][0]["done"], snap["stages"][1]["done"], snap["done"] = 100, 0, 100  # sending stage 1 of 2
    est.observe(0.0, snap)
    assert est.view(0.0).eta_seconds == pytest.approx(300 / 10 + 30)  # one observe wait ahead


def test_planning_view() -> None:
    view = ProgressEstimator("c1").view(0.0)
    assert (view.status, view.done, view.planned, view.eta_seconds) == ("planning", 0, 0, None)
    assert "0/0" in render_bar(view) and render_line(view) == "campaign c1: planning, 0/0 (0%)"


def test_render_bar_for_a_terminal() -> None:
    view = ProgressView("c1", "running", 50, 200, rate=9.96, eta_seconds=75.2, stage=2, stages=3)
    bar = render_bar(view, width=20)
    assert bar.startswith("\r[#####...............] 50/200  25% running")
    assert "stage 2/3" in bar and "10.0/s" in bar and "ETA 1m15s" in bar and "\n" not in bar


def test_render_line_for_logs() -> None:
    view = ProgressView("c1", "running", 50, 200, rate=10.0, eta_seconds=15, stage=1, stages=3)
    assert render_line(view) == "campaign c1: running, 50/200 (25%), stage 1/3, 10.0/s, ETA 15s"
    done = ProgressView("c1", "completed", 200, 200, eta_seconds=0)
    assert render_line(done) == "campaign c1: completed, 200/200 (100%)"


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (0, "0s"), (59.4, "59s"), (60, "1m00s"), (3599, "59m59s"), (7260, "2h01m")]
)
def test_format_eta(seconds: float | None, text: str) -> None:
    assert format_eta(seconds) == text


def test_printer_without_a_terminal_prints_plain_lines() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(ProgressEstimator("c1"), out, tty=False, every=5.0)
    printer.observe(0.0, {"status": "planning", "planned": 0, "done": 0, "stages": []})
    printer.observe(0.5, snapshot(0, 0.0))  # status change: a line
    printer.observe(1.0, snapshot(50, 10.0))  # same status and stage, < 5 s: nothing
    printer.draw(3.0)
    printer.observe(5.6, snapshot(100, 10.0))  # 5 s since the last line: a line
    printer.observe(6.0, snapshot(200, 10.0, status="completed"))  # status change
    printer.finish(6.1)  # the same line again is not repeated
    text = out.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [
        "campaign c1: planning, 0/0 (0%)",
        "campaign c1: running, 0/200 (0%), stage 1/1",
        "campaign c1: running, 100/200 (50%), stage 1/1, 10.0/s, ETA 10s",
        "campaign c1: completed, 200/200 (100%)",
    ]


def test_printer_on_a_terminal_redraws_in_place() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(ProgressEstimator("c1"), out, tty=True)
    printer.observe(0.0, snapshot(50, 10.0))
    printer.draw(1.0)
    printer.finish(1.0)
    frames = out.getvalue()
    assert frames.count("\r") == 2 and frames.endswith("\n") and frames.count("\n") == 1
    assert " 50/200 " in frames.split("\r")[1] and " 60/200 " in frames.split("\r")[2]


def test_wait_for_prints_lines_when_stdout_is_not_a_terminal(
    fake_stack: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FakeSfn:
        calls = 0

        def describe_execution(self, executionArn: str) -> dict[str, str]:
            self.calls += 1
            return {"status": "RUNNING" if self.calls < 3 else "SUCCEEDED"}

    sfn = FakeSfn()
    clients = fake_stack.clients
    monkeypatch.setattr(clients, "client", lambda s: sfn if s == "stepfunctions" else clients.ddb)  # type: ignore[attr-defined]
    monkeypatch.setattr(campaign, "POLL_SECONDS", 0.01)
    monkeypatch.setattr("sys.stdout", io.StringIO())  # not a terminal
    err = io.StringIO()
    result = campaign.wait_for(fake_stack, "c1", "arn:x", show=True, stream=err)
    assert result["executionStatus"] == "SUCCEEDED" and result["done"] == 70
    assert "\r" not in err.getvalue()
    assert err.getvalue().splitlines()[0].startswith("campaign c1: running, 70/120 (58%), stage 2/2")
