"""The local stack's patch of moto's model and router caches: the first requests of a burst
share one load and one router per service, instead of each building its own."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from ..helpers import poll
from .conftest import TRACKING, _tables


def _moto_then_patched(patch: Any, run: Any) -> list[Any]:
    """``run()`` in a fresh mock of AWS with moto as it is, then again after ``patch()``: a
    speed-up must give the same results (the caller restores what ``patch`` replaced)."""
    from moto import mock_aws

    results = []
    for patched in (False, True):
        if patched:
            patch()
        with mock_aws():
            results.append(run())
    return results


def test_a_burst_of_first_requests_loads_each_model_and_router_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core import responses, routing, utils

    from sesflow.local import shims

    loads: Counter[tuple[str, str]] = Counter()
    original_load = utils._load_service_model

    def counting_load(service_name: str, model_name: str) -> dict[str, Any]:
        loads[(service_name, model_name)] += 1
        return original_load(service_name, model_name)

    # restored after the test: the patch replaces both module attributes
    monkeypatch.setattr(responses, "get_service_router", responses.get_service_router)
    monkeypatch.setattr(utils, "_load_service_model", counting_load)
    utils.get_service_model.cache_clear()
    routing.get_service_router.cache_clear()
    shims._load_each_service_model_once()

    callers = 12
    start = threading.Barrier(callers)
    routers: list[Any] = []

    def first_request() -> None:
        start.wait()
        routers.append(responses.get_service_router("lambda"))

    threads = [threading.Thread(target=first_request) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(routers) == callers
    assert len({id(r) for r in routers}) == 1, "every caller gets the one router"
    assert loads[("lambda", "service-2")] == 1, loads
    assert "rest-json" in routers[0]._routers, "the protocol's router is built with it"
    utils.get_service_model.cache_clear()
    routing.get_service_router.cache_clear()


def _restored_after(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing import executors, validators

    cls = validators.UpdateExpressionValidator
    for owner, name in (
        (cls, "__init__"),
        (cls, "validate"),
        (executors.UpdateExpressionExecutor, "execute"),
        (ConditionExpressionParser, "_lex_condition_expression"),
    ):
        monkeypatch.setattr(owner, name, getattr(owner, name))


def _writes(ddb: Any, table: str) -> list[dict[str, Any]]:
    """The same few update expressions again and again, with different values: what the
    ledger and the tracking writes do."""
    claim = "SET sendState = :s, #f0 = if_not_exists(#f0, :f0), timeline = list_append(if_not_exists(timeline, :e), :t)"
    seen = []
    for i in range(6):
        key = {"emailId": {"S": f"e{i % 3}"}}
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression=claim,
            ExpressionAttributeNames={"#f0": "campaignId"},
            ExpressionAttributeValues={
                ":s": {"S": f"sending-{i}"},
                ":f0": {"S": f"c{i}"},
                ":e": {"L": []},
                ":t": {"L": [{"S": f"entry-{i}"}]},
            },
        )
        ddb.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="ADD eventKeys :k, opens :one",
            ExpressionAttributeValues={":k": {"SS": [f"k{i}"]}, ":one": {"N": "1"}},
        )
    for i in range(3):
        seen.append(ddb.get_item(TableName=table, Key={"emailId": {"S": f"e{i}"}}, ConsistentRead=True)["Item"])
    return seen


def test_lighter_dynamodb_writes_store_what_moto_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from sesflow.local import shims

    monkeypatch.setattr(UpdateExpressionParser, "make", UpdateExpressionParser.__dict__["make"])
    monkeypatch.setattr(validators, "deepcopy", validators.deepcopy)
    _restored_after(monkeypatch)  # the plain-expression path and the condition lexer it installs too

    def run() -> list[dict[str, Any]]:
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _tables(ddb)  # the template's tracking table (its key and indexes)
        return _writes(ddb, TRACKING)

    results = _moto_then_patched(shims._lighter_dynamodb_writes, run)
    assert results[0] == results[1]
    assert results[1][0]["sendState"] == {"S": "sending-3"}  # values of the last write, not the first
    assert results[1][0]["campaignId"] == {"S": "c0"}
    assert [e["S"] for e in results[1][0]["timeline"]["L"]] == ["entry-0", "entry-3"]
    expression = "SET a = :a"
    assert UpdateExpressionParser.make(expression) is UpdateExpressionParser.make(expression)


#: (update expression, names, values) against item "e0": good ones, and each shape error moto
#: raises (two SET clauses, overlapping paths, a key attribute updated), then errors that
#: depend on the item or the values (an unknown value, a type mismatch)
_CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("SET a = :a, #n = if_not_exists(#n, :b)", {"#n": "b"}, {":a": {"S": "1"}, ":b": {"N": "2"}}),
    ("SET a = :a, #n = if_not_exists(#n, :b)", {"#n": "c"}, {":a": {"S": "3"}, ":b": {"N": "4"}}),
    ("SET a = :a, #n = if_not_exists(#n, :b)", {"#n": "emailId"}, {":a": {"S": "5"}, ":b": {"S": "6"}}),
    ("SET a = :a, #n = if_not_exists(#n, :b)", {"#n": "a"}, {":a": {"S": "7"}, ":b": {"S": "8"}}),
    ("SET a = :a SET d = :a", {}, {":a": {"S": "9"}}),
    ("SET a.b = :a, a = :a", {}, {":a": {"S": "10"}}),
    ("ADD b :one", {}, {":one": {"N": "1"}}),
    ("ADD a :one", {}, {":one": {"N": "1"}}),
    ("SET a = :missing", {}, {":a": {"S": "11"}}),
    ("SET b = b + :one REMOVE c", {}, {":one": {"N": "1"}}),
]


def _outcomes(ddb: Any) -> list[Any]:
    seen: list[Any] = []
    for _ in range(3):  # a shape seen before, then again: the patched path skips its shape checks
        for expression, names, values in _CASES:
            try:
                ddb.update_item(
                    TableName=TRACKING,
                    Key={"emailId": {"S": "e0"}},
                    UpdateExpression=expression,
                    ExpressionAttributeValues=values,
                    **({"ExpressionAttributeNames": names} if names else {}),
                )
                seen.append("ok")
            except ddb.exceptions.ClientError as e:
                seen.append((e.response["Error"]["Code"], e.response["Error"]["Message"]))
            seen.append(ddb.get_item(TableName=TRACKING, Key={"emailId": {"S": "e0"}}).get("Item"))
    return seen


def test_expression_shape_checks_once_and_faster_traversal_give_moto_s_verdicts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    from moto.dynamodb.parsing import ast_nodes, validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from sesflow.local import shims

    monkeypatch.setattr(UpdateExpressionParser, "make", UpdateExpressionParser.__dict__["make"])
    monkeypatch.setattr(validators, "deepcopy", validators.deepcopy)
    _restored_after(monkeypatch)  # the plain-expression path and the condition lexer it installs too
    for name in ("__init__", "validate"):
        monkeypatch.setattr(validators.UpdateExpressionValidator, name, getattr(validators.Validator, name))
    monkeypatch.setattr(ast_nodes.DepthFirstTraverser, "traverse", ast_nodes.DepthFirstTraverser.traverse)

    def run() -> list[Any]:
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _tables(ddb)
        return _outcomes(ddb)

    def patch() -> None:
        shims._lighter_dynamodb_writes()
        shims._faster_expression_traversal()

    results = _moto_then_patched(patch, run)
    assert results[0] == results[1]
    errors = {o[0] for o in results[1] if isinstance(o, tuple)}
    assert errors == {"ValidationException"}, errors
    assert sum(1 for o in results[1] if o == "ok") == 3 * 4, "good ones pass every time"
    messages = [o[1] for o in results[1][: 2 * len(_CASES)] if isinstance(o, tuple)]
    assert any("key" in m.lower() for m in messages), messages  # the key attribute's update, refused
    assert any("overlap" in m.lower() or "conflict" in m.lower() for m in messages), messages


def test_copy_tree_is_a_deep_copy_of_a_parsed_expression() -> None:
    import copy

    from moto.dynamodb.parsing.ast_nodes import Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from sesflow.local.shims import _copy_tree

    def shape(n: Any) -> Any:
        if not isinstance(n, Node):
            return repr(n)
        assert all(c.parent is n for c in n.children or [] if isinstance(c, Node)), "children point at their parent"
        return (type(n).__name__, n.type, tuple(shape(c) for c in n.children or []))

    def nodes(n: Any) -> list[int]:
        return [id(n)] + [i for c in n.children or [] if isinstance(c, Node) for i in nodes(c)]

    for expression in (
        "SET a = :a, #n = if_not_exists(#n, :b)",
        "SET a.b[1] = list_append(if_not_exists(c, :e), :t) REMOVE d, e[2]",
        "ADD x :one, y :s DELETE z :q",
        "SET b = b + :one, c = c - :two",
    ):
        tree = UpdateExpressionParser.make(expression)
        copied = _copy_tree(tree, Node)
        assert shape(copied) == shape(copy.deepcopy(tree)), expression
        assert copied.parent is None
        assert not set(nodes(copied)) & set(nodes(tree)), "no node shared with the original"


def test_sqs_retention_check_without_rescanning_keeps_moto_s_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto.sqs.models import SQSBackend, sqs_backends

    from sesflow.local import shims

    monkeypatch.setattr(
        SQSBackend, "is_message_valid_based_on_retention_period", SQSBackend.is_message_valid_based_on_retention_period
    )

    def run() -> list[str]:
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        for i in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=f"m{i}")
        queue = sqs_backends["123456789012"]["us-east-1"].get_queue("q")
        for message in list(queue._messages)[3:]:  # sent 61 s ago: past the queue's retention
            message.sent_timestamp -= 61_000
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return sorted(m["Body"] for m in got)

    results = _moto_then_patched(shims._sqs_retention_without_rescanning, run)
    assert results[0] == results[1]
    assert results[1] == ["m0", "m1", "m2"], results  # moto stops at the first expired message


def test_express_slots_wait_lend_and_put_resuming_executions_first() -> None:
    """One slot: a second start waits; the holder lends its slot while it sleeps; coming back,
    it goes before a start that queued earlier."""
    from sesflow.local.shims import _Slots

    def until(condition: Any) -> None:
        poll(condition, timeout=10, interval=0.005, what="the slots' waiters")

    slots = _Slots(1)
    slots.acquire()  # A runs
    events = {name: threading.Event() for name in ("b", "b_done", "c")}

    def b() -> None:
        slots.acquire()
        events["b"].set()
        events["b_done"].wait(10)
        slots.release()

    def c() -> None:
        slots.acquire()
        events["c"].set()
        slots.release()

    threading.Thread(target=b, daemon=True).start()
    until(lambda: len(slots._starts._waiters) == 1)  # type: ignore[attr-defined]
    assert not events["b"].is_set(), "no slot free: B waits"

    class Env:
        sesflow_slot = True

    order: list[str] = []

    def nap() -> None:  # A sleeps: B runs on A's slot, C queues behind B
        events["b"].wait(10)
        order.append("b ran while A slept")
        threading.Thread(target=c, daemon=True).start()
        until(lambda: len(slots._starts._waiters) == 1)  # type: ignore[attr-defined]

    resumed = threading.Thread(target=slots.sleeping, args=(Env(), nap), daemon=True)
    resumed.start()
    until(lambda: slots._resuming == 1)  # A is back and waits for B's slot
    events["b_done"].set()
    resumed.join(10)
    assert order == ["b ran while A slept"]
    assert not events["c"].is_set(), "A came back first: C still waits"
    slots.release()  # A ends
    assert events["c"].wait(10)


def test_a_timed_out_execution_stays_timed_out_when_its_task_fails_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock times an EXPRESS execution out while a task is failing (a Retry cut short):
    moto's set_error used to replace the time-out, and the execution ended FAILED."""
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramRunning, ProgramTimedOut

    from sesflow.local import shims

    monkeypatch.setattr(Environment, "set_error", Environment.set_error)
    shims._timed_out_stays_timed_out()

    def environment() -> Any:
        env = object.__new__(Environment)
        env._state_mutex = threading.RLock()
        env._program_state = ProgramRunning()
        env._frames = []
        env.program_state_event = threading.Event()
        return env

    timed_out = environment()
    timed_out.set_timed_out()
    timed_out.set_error({"error": "SendInProgress", "cause": "another execution"})
    assert isinstance(timed_out._program_state, ProgramTimedOut)
    running = environment()
    running.set_error({"error": "SendInProgress", "cause": "another execution"})
    assert isinstance(running._program_state, ProgramError)
