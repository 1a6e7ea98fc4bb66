"""IAM on the local stack (sesflow/local/iam.py): every function and state machine acts with its
own role from the template, and a call the template does not grant fails as in AWS.

(a) a normal send on the shared stack: every request of the functions and of the machine is
    evaluated against its role, and allowed;
(b) on a stack of its own, one permission removed from a role at a time (``put_role_policy``
    on the running stack): the function's or the machine's call fails with AccessDenied;
(c) a function calling what its role does not grant fails, another role in the same process
    may (the handlers' client cache does not leak keys between functions);
(d) ``SESFLOW_LOCAL_IAM=off`` turns enforcement off.
"""

from __future__ import annotations

import ast
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sesflow import executions
from sesflow.local.deploy import ARTIFACTS_BUCKET
from sesflow.local.ses import outbox_entries
from sesflow.target import Target

from ..conftest import ROOT, start_stack, stop_stack
from ..helpers import events_delivered, local_stats, poll

pytestmark = pytest.mark.local

WELCOME = {"template": "welcome", "to": "success@simulator.amazonses.com", "data": {"name": "Ada", "product": "Acme"}}
PROBE_DIR = "tests/local/iam_probe"  # relative to the root, as CodeUri folders are


def run(stack: Target, request: dict[str, Any]) -> executions.ExecutionReport:
    sfn = stack.clients.client("stepfunctions")
    arn = executions.start(sfn, stack.outputs["SendStateMachineArn"], request, None)
    executions.wait(sfn, arn, timeout=120)
    return executions.report(sfn, arn)


def function_role(stack: Target, logical_id: str) -> str:
    config = stack.clients.client("lambda").get_function(FunctionName=stack.function_name(logical_id))
    return str(config["Configuration"]["Role"])


def machine_role(stack: Target) -> str:
    sfn = stack.clients.client("stepfunctions")
    return str(sfn.describe_state_machine(stateMachineArn=stack.outputs["SendStateMachineArn"])["roleArn"])


def name_of(role_arn: str) -> str:
    return role_arn.rsplit("/", 1)[-1]


def table_arn(stack: Target, output: str) -> str:
    return f"arn:aws:dynamodb:{stack.clients.region}:123456789012:table/{stack.outputs[output]}"


def _document(raw: Any) -> dict[str, Any]:
    """A role policy as moto returns it: a dict, JSON, or (for CloudFormation-created inline
    policies) the Python repr of a dict."""
    if isinstance(raw, dict):
        return raw
    try:
        doc: dict[str, Any] = json.loads(raw)
    except json.JSONDecodeError:
        doc = ast.literal_eval(raw)
    return doc


def _putable(doc: dict[str, Any]) -> str:
    """moto's PutRolePolicy wants a Version and no ``None`` left by ``AWS::NoValue``."""
    doc = {**doc, "Version": "2012-10-17"}
    for st in doc["Statement"]:
        if isinstance(st.get("Resource"), list):
            st["Resource"] = [r for r in st["Resource"] if r is not None]
    return json.dumps(doc)


@contextmanager
def without(stack: Target, role_arn: str, action: str) -> Iterator[None]:
    """The role loses ``action`` (from every statement of its inline policies) on the running
    stack, and gets it back afterwards."""
    iam = stack.clients.client("iam")
    role = name_of(role_arn)
    saved: dict[str, dict[str, Any]] = {}
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = _document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        statements = []
        for st in doc["Statement"]:
            actions = [st["Action"]] if isinstance(st["Action"], str) else list(st["Action"])
            if action in actions:
                actions.remove(action)
                saved[name] = doc
            if actions:
                statements.append({**st, "Action": actions})
        if name in saved and statements:
            iam.put_role_policy(
                RoleName=role, PolicyName=name, PolicyDocument=_putable({**doc, "Statement": statements})
            )
        elif name in saved:  # nothing left of it
            iam.delete_role_policy(RoleName=role, PolicyName=name)
    assert saved, f"{role} has no {action} to remove"
    try:
        yield
    finally:
        for name, doc in saved.items():
            iam.put_role_policy(RoleName=role, PolicyName=name, PolicyDocument=_putable(doc))


# ---------------------------------------------------------------- (a) the shared stack
def test_a_send_is_authorised_role_by_role(stack: Target) -> None:
    endpoint = stack.state["endpoint"]
    before = local_stats(endpoint)["iam"]
    assert before["mode"] == "enforced"
    rep = run(stack, WELCOME | {"emailId": f"iam-{uuid.uuid4().hex[:8]}"})
    assert rep.status == "SUCCEEDED" and rep.output["status"] == "sent", rep.output
    events_delivered(endpoint)  # the feedback function's invocations for this send too
    after = local_stats(endpoint)["iam"]

    def grew(role_arn: str, action: str) -> bool:
        key = f"{name_of(role_arn)} {action}"
        return after["allowed"].get(key, 0) > before["allowed"].get(key, 0)

    machine = machine_role(stack)
    expected = [
        (machine, "lambda:InvokeFunction"),
        (machine, "dynamodb:Query"),
        (machine, "dynamodb:UpdateItem"),
        (machine, "events:PutEvents"),
        (function_role(stack, "ValidateFunction"), "dynamodb:UpdateItem"),
        # (the send function's s3:GetObject is not listed: templates are cached per process)
        (function_role(stack, "SendFunction"), "dynamodb:UpdateItem"),
        (function_role(stack, "SendFunction"), "ses:SendEmail"),
    ]
    missing = [f"{name_of(r)} {a}" for r, a in expected if not grew(r, a)]
    assert not missing, f"not evaluated as the role: {missing}"
    denied = {k: n for k, n in after["denied"].items() if n > before["denied"].get(k, 0)}
    assert denied == {}, f"the template does not grant: {denied}"


# ---------------------------------------------------------------- (b) a stack of its own
@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """A stack whose roles the tests change (the shared one stays as the template says)."""
    sdir = tmp_path_factory.mktemp("sesflow-iam")
    target = start_stack(sdir)
    yield target
    stop_stack(sdir, target)


def sent_messages(stack: Target, email_id: str) -> int:
    return sum(1 for m in outbox_entries(Path(stack.state["outbox"])) if m["tags"].get("emailId") == email_id)


def test_without_its_update_item_the_send_function_cannot_take_the_ledger(own: Target) -> None:
    """SendFunction's one DynamoDB action is the ledger's UpdateItem (a refused claim returns the
    holder, so it reads nothing): without it the send fails before SES and nothing goes out."""
    role, email_id = function_role(own, "SendFunction"), f"iam-led-{uuid.uuid4().hex[:8]}"
    with without(own, role, "dynamodb:UpdateItem"):
        first = run(own, WELCOME | {"emailId": email_id})
    [send] = [s for s in first.states if s.name == "SendEmail"]
    assert send.error == "ClientError"
    assert (
        f"User: arn:aws:sts::123456789012:assumed-role/{name_of(role)}/{own.function_name('SendFunction')} "
        f"is not authorized to perform: dynamodb:UpdateItem on resource: {table_arn(own, 'TrackingTableName')} "
        "because no identity-based policy allows the dynamodb:UpdateItem action"
    ) in send.cause
    assert first.output["status"] == "failed" and first.output["reason"] == "internal error: ClientError"
    assert sent_messages(own, email_id) == 0
    # the permission back: a new request with the same emailId sends it, once
    second = run(own, WELCOME | {"emailId": email_id})
    assert second.output["status"] == "sent", second.output
    assert sent_messages(own, email_id) == 1


def test_without_its_query_the_machine_cannot_check_the_suppression_list(own: Target) -> None:
    """A direct integration (aws-sdk:dynamodb:query) runs as the state machine's role."""
    role = machine_role(own)
    with without(own, role, "dynamodb:Query"):
        rep = run(own, WELCOME | {"emailId": f"iam-q-{uuid.uuid4().hex[:8]}"})
    [check] = [s for s in rep.states if s.name == "CheckSuppression"]
    # AWS SDK integrations name unmodelled errors after the SDK's service exception, as AWS does
    assert check.error == "DynamoDb.DynamoDbException", check.cause
    assert (
        f"User: arn:aws:sts::123456789012:assumed-role/{name_of(role)}/" in check.cause
        and f"is not authorized to perform: dynamodb:Query on resource: {table_arn(own, 'SuppressionTableName')} "
        "because no identity-based policy allows the dynamodb:Query action"
        in check.cause
    ), check.cause
    assert "InternalFailure" in [s.name for s in rep.states] and rep.output["status"] == "failed"


def test_without_start_execution_an_email_requested_event_is_dead_lettered(own: Target) -> None:
    """EventBridge starts the send machine with the rule target's role."""
    events, sqs = own.clients.client("events"), own.clients.client("sqs")
    bus = own.outputs["EventBusName"]
    [target] = [
        t
        for r in events.list_rules(EventBusName=bus)["Rules"]
        for t in events.list_targets_by_rule(Rule=r["Name"], EventBusName=bus)["Targets"]
        if t["Arn"] == own.outputs["SendStateMachineArn"]
    ]
    email_id = f"iam-eb-{uuid.uuid4().hex[:8]}"
    with without(own, target["RoleArn"], "states:StartExecution"):
        events.put_events(
            Entries=[
                {
                    "EventBusName": bus,
                    "Source": "tests",
                    "DetailType": "Email Requested",
                    "Detail": json.dumps(WELCOME | {"emailId": email_id}),
                }
            ]
        )
        events_delivered(own.state["endpoint"])
    queue = own.outputs["EmailRequestsDeadLetterQueueUrl"]

    def dead_lettered() -> list[dict[str, Any]]:
        msgs = sqs.receive_message(
            QueueUrl=queue, MessageAttributeNames=["All"], MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        return [m for m in msgs if json.loads(m["Body"]).get("emailId") == email_id]

    [msg] = poll(dead_lettered, 15, what="the event in the requests dead-letter queue")
    error = msg["MessageAttributes"]["ERROR_MESSAGE"]["StringValue"]
    assert "AccessDeniedException" in error and "states:StartExecution" in error, error


# ---------------------------------------------------------------- (c) functions calling outside their role
def _probe(stack: Target, role_arn: str, env: dict[str, str] | None = None) -> str:
    """A function running tests/local/iam_probe with ``role_arn``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("LOCAL.txt", "code runs in-process\n")
    stack.clients.client("s3").put_object(Bucket=ARTIFACTS_BUCKET, Key=PROBE_DIR, Body=buf.getvalue())
    assert (ROOT / PROBE_DIR / "iam_probe_handler.py").is_file()
    name = f"iam-probe-{uuid.uuid4().hex[:8]}"
    stack.clients.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.13",
        Role=role_arn,
        Handler="iam_probe_handler.handler",
        Code={"S3Bucket": ARTIFACTS_BUCKET, "S3Key": PROBE_DIR},
        Timeout=15,
        Environment={"Variables": env or {}},
    )
    return name


def _invoke(stack: Target, function: str, event: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    resp = stack.clients.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return resp.get("FunctionError"), json.loads(resp["Payload"].read())


def test_a_function_cannot_write_a_table_its_role_does_not_grant(own: Target) -> None:
    """ValidateFunction's role may update the tracking table only; FeedbackFunction's may
    update the suppression list. Both run in one process, alternately."""
    validate_role, feedback_role = function_role(own, "ValidateFunction"), function_role(own, "FeedbackFunction")
    as_validate, as_feedback = _probe(own, validate_role), _probe(own, feedback_role)
    suppression = own.outputs["SuppressionTableName"]
    entry = {"table": suppression, "key": {"address": {"S": "probe@example.org"}, "topic": {"S": "*"}}}
    for _ in range(2):  # alternately: a cached client never carries the other function's keys
        error, payload = _invoke(own, as_validate, entry)
        assert error == "Unhandled" and payload["errorType"] == "ClientError", payload
        assert (
            f"(AccessDeniedException) when calling the UpdateItem operation: User: arn:aws:sts::123456789012:"
            f"assumed-role/{name_of(validate_role)}/{as_validate} is not authorized to perform: "
            f"dynamodb:UpdateItem on resource: {table_arn(own, 'SuppressionTableName')} because no "
            "identity-based policy allows the dynamodb:UpdateItem action"
        ) in payload["errorMessage"]
        error, payload = _invoke(own, as_feedback, entry)
        assert error is None, payload
        assert payload["identity"] == f"arn:aws:sts::123456789012:assumed-role/{name_of(feedback_role)}/{as_feedback}"
    # what the role grants, it may do
    error, payload = _invoke(
        own,
        as_validate,
        {"table": own.outputs["TrackingTableName"], "key": {"emailId": {"S": f"probe-{uuid.uuid4().hex[:6]}"}}},
    )
    assert error is None and payload["identity"].endswith(f"/{name_of(validate_role)}/{as_validate}"), payload
    item = own.clients.client("dynamodb").get_item(TableName=suppression, Key=entry["key"])["Item"]
    assert item["probedBy"]["S"].endswith(f"/{as_feedback}")


# ---------------------------------------------------------------- (d) the switch
def test_iam_off_gives_every_function_full_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESFLOW_LOCAL_IAM", "off")
    target = start_stack(tmp_path)
    try:
        assert local_stats(target.state["endpoint"])["iam"]["mode"] == "off"
        probe = _probe(target, function_role(target, "ValidateFunction"))
        error, payload = _invoke(
            target,
            probe,
            {
                "table": target.outputs["SuppressionTableName"],
                "key": {"address": {"S": "off@example.org"}, "topic": {"S": "*"}},
            },
        )
        assert error is None, payload
        assert payload["identity"].startswith("arn:aws:") and "assumed-role" not in payload["identity"]
    finally:
        stop_stack(tmp_path, target)
