"""The embedded local AWS: lifecycle, deploy, CLI invoke/run against the real template."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from sesflow import cli
from sesflow.cfn_yaml import load_template
from sesflow.local import control, deploy
from sesflow.target import Target

from ..conftest import EVENTS, ROOT, start_stack, stop_stack

pytestmark = pytest.mark.local


def run_cli(capsys: pytest.CaptureFixture[str], target: Target, *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process against `target`'s state dir."""
    os.environ["SESFLOW_STATE_DIR"] = str(Path(target.state["outbox"]).parent)
    try:
        code = cli.main(list(argv))
    finally:
        os.environ.pop("SESFLOW_STATE_DIR", None)
    out, err = capsys.readouterr()
    return code, out, err


def test_up_and_down_leave_nothing_behind(tmp_path: Path) -> None:
    target = start_stack(tmp_path)
    sfn = target.clients.client("stepfunctions")
    names = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
    assert f"{target.stack_name}-send" in names
    # a second `up` reports the running one and starts nothing
    state, started = control.up(ROOT, port=0, sdir=tmp_path)
    assert not started and state["pid"] == target.state["pid"]
    stop_stack(tmp_path, target)
    assert control.status(ROOT, sdir=tmp_path) is None
    # the port is free again
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind (TIME_WAIT is fine)
        s.bind(("127.0.0.1", target.state["port"]))


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(control.LocalError, match=f"port {port} is already in use"):
            control.up(ROOT, port=port, sdir=tmp_path)
    assert not (tmp_path / "local.json").exists()


def test_every_template_resource_is_created(stack: Target) -> None:
    template = load_template(ROOT / "template.yaml")
    for logical_id, resource in template["Resources"].items():
        if "Condition" in resource:  # present or not by parameters (e.g. FeedbackRoute)
            continue
        assert logical_id in stack.resources, f"{logical_id} missing from the local stack"
        if resource["Type"] != "AWS::Lambda::Permission":  # moto keeps no id for permissions
            assert stack.resources[logical_id]["physicalId"], f"{logical_id} has no physical id"
    # outputs resolve to names, never to object reprs
    for key, value in stack.outputs.items():
        assert "object at 0x" not in value, key


def test_two_stacks_coexist_without_name_clash(stack: Target) -> None:
    from sesflow.local.server import local_parameters

    second = deploy.deploy(stack.clients, ROOT, "sesflow-second", local_parameters(stack.state["port"]))
    first_names = {r["physicalId"] for r in stack.resources.values()} - {""}
    second_names = {r["physicalId"] for r in second.resources.values()} - {""}
    assert first_names.isdisjoint(second_names), first_names & second_names
    assert second.outputs["EventBusName"] != stack.outputs["EventBusName"]
    stack.clients.client("cloudformation").delete_stack(StackName="sesflow-second")


def test_translator_rejection_names_resource_and_reason(tmp_path: Path) -> None:
    bad = (
        (ROOT / "template.yaml")
        .read_text()
        .replace("Handler: sesflow_handlers.", "Handler: 42\n      Events: {Broken: {Type: NoSuchEvent}}\n      #", 1)
    )
    (tmp_path / "template.yaml").write_text(bad)
    template = load_template(tmp_path / "template.yaml")
    prepared, _, _ = deploy.prepare(template, ROOT)
    with pytest.raises(deploy.TemplateError, match=r"Resource with id \[\w+Function\]"):
        deploy.translate(prepared, {}, "us-east-1")


@pytest.mark.parametrize("event_file", sorted(p.name for p in EVENTS.glob("fn-*.json")))
def test_invoke_every_function_with_its_event(
    stack: Target, capsys: pytest.CaptureFixture[str], event_file: str
) -> None:
    if event_file == "fn-campaign-plan.json":  # its recipients file must be in the campaigns bucket
        stack.clients.client("s3").put_object(
            Bucket=stack.outputs["CampaignsBucketName"],
            Key="samples/recipients.csv",
            Body=(EVENTS / "sample-recipients.csv").read_bytes(),
        )
    if event_file == "fn-sequence.json":  # its sequence (onboarding, version 1) must be deployed
        import yaml  # type: ignore[import-untyped]
        from sesflow_aws import sequences

        ddb, table = stack.clients.client("dynamodb"), stack.outputs["SequencesTableName"]
        if sequences.latest_version(ddb, table, "onboarding") is None:
            definition = yaml.safe_load((ROOT / "sequences" / "onboarding.yaml").read_text())
            sequences.deploy(ddb, stack.clients.client("s3"), table, stack.outputs["TemplatesBucketName"], definition)
    function = event_file.removeprefix("fn-").removesuffix(".json")
    logical_id = "".join(part.title() for part in function.split("-")) + "Function"
    code, out, err = run_cli(capsys, stack, "invoke", logical_id, "-e", str(EVENTS / event_file), "--json")
    assert code == 0, (out, err)
    assert json.loads(out)["functionError"] is None


def test_every_function_has_an_event_file(stack: Target) -> None:
    functions = [lid for lid, r in stack.resources.items() if r["type"] == "AWS::Lambda::Function"]
    for logical_id in functions:
        stem = logical_id.removesuffix("Function")
        kebab = "".join(f"-{c.lower()}" if c.isupper() else c for c in stem).lstrip("-")
        assert (EVENTS / f"fn-{kebab}.json").is_file(), f"events/fn-{kebab}.json missing for {logical_id}"


def test_invoke_unknown_function_or_bad_event_exits_2(
    stack: Target, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, stack, "invoke", "NoSuchFunction", "-e", "{}")
    assert code == 2 and "unknown AWS::Lambda::Function 'NoSuchFunction'" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    code, _, err = run_cli(capsys, stack, "invoke", "SendFunction", "-e", str(bad))
    assert code == 2 and "not valid JSON" in err
    code, _, err = run_cli(capsys, stack, "invoke", "SendFunction", "-e", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err


FAILING_ASL = {
    "StartAt": "Boom",
    "States": {"Boom": {"Type": "Fail", "Error": "Broken", "Cause": "this machine always fails"}},
}


def test_run_exits_nonzero_for_a_failing_machine(stack: Target, capsys: pytest.CaptureFixture[str]) -> None:
    arn = stack.clients.client("stepfunctions").create_state_machine(
        name="always-fails",
        definition=json.dumps(FAILING_ASL),
        roleArn="arn:aws:iam::123456789012:role/any",
    )["stateMachineArn"]
    code, out, _ = run_cli(capsys, stack, "run", arn, "--input", "{}", "--json")
    report = json.loads(out)
    assert code == 1
    assert report["status"] == "FAILED"
    assert report["error"] == "Broken"


def test_run_prints_a_state_table(stack: Target, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, stack, "run", "SendStateMachine", "--input", str(EVENTS / "send-invalid.json"))
    assert code == 0
    assert out.splitlines()[0].split() == ["state", "type", "status", "ms", "retries", "error", "/", "cause"]
    assert "ValidateRequest" in out and '"status": "rejected"' in out


def test_history_and_executions_list_the_run(stack: Target, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, stack, "run", "SendStateMachine", "--input", "[1]", "--name", "hist-1")
    assert code == 0
    code, out, _ = run_cli(capsys, stack, "history", "hist-1", "--json")
    assert code == 0 and json.loads(out)["name"] == "hist-1"
    code, out, _ = run_cli(capsys, stack, "executions", "SendStateMachine", "--json")
    assert code == 0 and any(e["name"] == "hist-1" for e in json.loads(out))
