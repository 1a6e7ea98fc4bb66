"""The embedded local AWS keeps the AWS semantics our code relies on, so that a race in
the emulator is never mistaken for one in our code (and the other way round)."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sesflow.target import Clients, Target

pytestmark = pytest.mark.local

PAIRS = 200


def _race(stack: Target, write: Any) -> list[int]:
    """Two writers, each with its own client, meet at a barrier before every key and
    write it at once; returns the number of successful writes per key."""
    barrier = threading.Barrier(2, timeout=30)
    prefix = f"race-{uuid.uuid4().hex[:8]}"

    def writer(who: str) -> list[bool]:
        clients = Clients(stack.clients.region, stack.state["endpoint"])
        ddb = clients.client("dynamodb")
        won = []
        for i in range(PAIRS):
            barrier.wait()
            try:
                write(ddb, stack.outputs["TrackingTableName"], f"{prefix}-{i}", who)
                won.append(True)
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ConditionalCheckFailedException", exc
                won.append(False)
        return won

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(writer, ("a", "b"))
    return [int(x) + int(y) for x, y in zip(a, b, strict=True)]


def test_concurrent_ledger_claims_have_exactly_one_winner(stack: Target) -> None:
    def claim(ddb: Any, table: str, key: str, who: str) -> None:
        ddb.update_item(
            TableName=table,
            Key={"emailId": {"S": key}},
            UpdateExpression="SET sendState = :s, sendOwner = :o",
            ConditionExpression="attribute_not_exists(sendState) OR sendState = :r",
            ExpressionAttributeValues={":s": {"S": "sending"}, ":o": {"S": who}, ":r": {"S": "retryable"}},
        )

    assert _race(stack, claim) == [1] * PAIRS


def test_a_duplicate_event_applied_twice_at_once_is_applied_once(stack: Target) -> None:
    """The feedback function's write: append to the timeline unless the event key is known."""

    def apply(ddb: Any, table: str, key: str, who: str) -> None:
        ddb.update_item(
            TableName=table,
            Key={"emailId": {"S": key}},
            UpdateExpression="SET timeline = list_append(if_not_exists(timeline, :e), :t) ADD eventKeys :ks",
            ConditionExpression="NOT contains(eventKeys, :k)",
            ExpressionAttributeValues={
                ":e": {"L": []},
                ":t": {"L": [{"S": "Bounce"}]},
                ":ks": {"SS": ["k1"]},
                ":k": {"S": "k1"},
            },
        )

    assert _race(stack, apply) == [1] * PAIRS


@pytest.fixture(scope="module")
def short_express_stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A stack whose EXPRESS limit is 3 s instead of 300 s (the same rule, scaled), with one
    running slot for EXPRESS executions instead of 128."""
    import os

    from ..conftest import start_stack, stop_stack

    sdir = tmp_path_factory.mktemp("short-express")
    os.environ["SESFLOW_LOCAL_EXPRESS_LIMIT_SECONDS"] = "3"
    os.environ["SESFLOW_LOCAL_EXPRESS_RUNNING"] = "1"
    try:
        target = start_stack(sdir)
    finally:
        os.environ.pop("SESFLOW_LOCAL_EXPRESS_LIMIT_SECONDS")
        os.environ.pop("SESFLOW_LOCAL_EXPRESS_RUNNING")
    yield target
    stop_stack(sdir, target)


def test_an_express_execution_past_the_limit_times_out(short_express_stack: Target) -> None:
    """Express executions end at their limit, whatever state they are in; the local stack
    enforces it on machines the template declares EXPRESS (the send machine by default)."""
    from sesflow import executions

    stack = short_express_stack
    assert stack.state["declaredWorkflowTypes"][stack.outputs["SendStateMachineArn"]] == "EXPRESS"
    # another execution holds the ledger: SendInProgress is retried for 2 + 3 + 4.5 s (no jitter)
    stack.clients.client("dynamodb").put_item(
        TableName=stack.outputs["TrackingTableName"],
        Item={"emailId": {"S": "slow-0001"}, "sendState": {"S": "sending"}, "sendOwner": {"S": "someone-else"}},
    )
    sfn = stack.clients.client("stepfunctions")
    arn = executions.start(
        sfn,
        stack.outputs["SendStateMachineArn"],
        {"emailId": "slow-0001", "template": "welcome", "to": "a@example.org", "data": {"name": "A", "product": "B"}},
    )
    assert executions.wait(sfn, arn, timeout=60) == "TIMED_OUT"


def test_an_express_execution_lends_its_slot_while_it_backs_off(short_express_stack: Target) -> None:
    """With one running slot (``SESFLOW_LOCAL_EXPRESS_RUNNING=1``), an execution waiting out a
    Retry's backoff lends its slot: another one starts and ends meanwhile."""
    from sesflow import executions

    stack = short_express_stack
    stack.clients.client("dynamodb").put_item(
        TableName=stack.outputs["TrackingTableName"],
        Item={"emailId": {"S": "slow-0002"}, "sendState": {"S": "sending"}, "sendOwner": {"S": "someone-else"}},
    )
    sfn = stack.clients.client("stepfunctions")
    machine = stack.outputs["SendStateMachineArn"]
    request = {"template": "welcome", "to": "a@example.org", "data": {"name": "A", "product": "B"}}
    first = executions.start(sfn, machine, {"emailId": "slow-0002", **request})
    second = executions.start(sfn, machine, {"emailId": "lent-0001", **request})
    assert executions.wait(sfn, second, timeout=60) == "SUCCEEDED"
    assert executions.wait(sfn, first, timeout=60) == "TIMED_OUT"
    second_events = sfn.get_execution_history(executionArn=second)["events"]
    first_events = sfn.get_execution_history(executionArn=first)["events"]
    assert second_events[0]["type"] == "ExecutionStarted"
    assert second_events[-1]["timestamp"] <= first_events[-1]["timestamp"], "the second ran within the first"


# ---------------------------------------------------------------- payload limits
def _machine(stack: Target, definition: dict[str, Any]) -> str:
    sfn = stack.clients.client("stepfunctions")
    return str(
        sfn.create_state_machine(
            name=f"limits-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/limits",
        )["stateMachineArn"]
    )


def _run(stack: Target, machine: str, payload: Any) -> dict[str, Any]:
    from sesflow import executions

    sfn = stack.clients.client("stepfunctions")
    arn = executions.start(sfn, machine, payload)
    executions.wait(sfn, arn, timeout=60)
    return dict(sfn.describe_execution(executionArn=arn))


CAUGHT = {"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]}


def test_a_state_output_over_256_kib_fails_and_states_all_does_not_catch_it(stack: Target) -> None:
    machine = _machine(
        stack,
        {
            "StartAt": "Double",
            "States": {
                "Double": {"Type": "Pass", "Parameters": {"a.$": "$.s", "b.$": "$.s"}, "Next": "Done", **CAUGHT},
                "Caught": {"Type": "Succeed"},
                "Done": {"Type": "Succeed"},
            },
        },
    )
    assert _run(stack, machine, {"s": "x" * 100_000})["status"] == "SUCCEEDED"  # 200 KB: within the limit
    desc = _run(stack, machine, {"s": "x" * 140_000})  # 280 KB
    assert desc["status"] == "FAILED" and desc["error"] == "States.DataLimitExceeded", desc


def test_map_results_over_256_kib_fail_even_when_discarded(stack: Target) -> None:
    machine = _machine(
        stack,
        {
            "StartAt": "Fan",
            "States": {
                "Fan": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "ResultPath": None,
                    "End": True,
                    **CAUGHT,
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "Big",
                        "States": {"Big": {"Type": "Pass", "Parameters": {"blob.$": "$"}, "End": True}},
                    },
                },
                "Caught": {"Type": "Succeed"},
            },
        },
    )
    assert _run(stack, machine, {"items": ["y" * 50_000] * 4})["status"] == "SUCCEEDED"  # 200 KB
    desc = _run(stack, machine, {"items": ["y" * 50_000] * 6})  # 300 KB of results
    assert desc["status"] == "FAILED" and desc["error"] == "States.DataLimitExceeded", desc


def test_lambda_refuses_requests_over_its_payload_limits(stack: Target) -> None:
    lam = stack.clients.client("lambda")
    name = stack.function_name("ValidateFunction")
    big = json.dumps({"blob": "z" * (6 * 1024 * 1024)}).encode()
    with pytest.raises(ClientError) as sync_err:
        lam.invoke(FunctionName=name, Payload=big)
    assert sync_err.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    with pytest.raises(ClientError) as async_err:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=json.dumps({"blob": "z" * 300_000}).encode())
    assert async_err.value.response["Error"]["Code"] == "RequestEntityTooLargeException"


def test_ses_refuses_a_message_over_40_mb(stack: Target) -> None:
    """SES v2's size limit (attachments included, after encoding): our MIME builder refuses
    such a message before the call; the local SES refuses it too, as SES does."""
    sesv2 = stack.clients.client("sesv2")
    raw = b"From: no-reply@example.com\r\nTo: success@simulator.amazonses.com\r\nSubject: big\r\n\r\n"
    raw += b"x" * (40 * 1024 * 1024 + 1 - len(raw))
    with pytest.raises(ClientError) as caught:
        sesv2.send_email(
            FromEmailAddress="no-reply@example.com",
            Destination={"ToAddresses": ["success@simulator.amazonses.com"]},
            Content={"Raw": {"Data": raw}},
        )
    assert caught.value.response["Error"]["Code"] == "MessageRejected"
