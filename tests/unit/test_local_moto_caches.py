"""The local stack's patch of moto's model and router caches: the first requests of a burst
share one load and one router per service, instead of each building its own."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from .conftest import TRACKING, _tables


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
    from moto import mock_aws
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    from sesflow.local import shims

    monkeypatch.setattr(UpdateExpressionParser, "make", UpdateExpressionParser.__dict__["make"])
    monkeypatch.setattr(validators, "deepcopy", validators.deepcopy)
    results = []
    for patched in (False, True):
        if patched:
            shims._lighter_dynamodb_writes()
        with mock_aws():
            ddb = boto3.client("dynamodb", region_name="us-east-1")
            _tables(ddb)  # the template's tracking table (its key and indexes)
            results.append(_writes(ddb, TRACKING))
    assert results[0] == results[1]
    assert results[1][0]["sendState"] == {"S": "sending-3"}  # values of the last write, not the first
    assert results[1][0]["campaignId"] == {"S": "c0"}
    assert [e["S"] for e in results[1][0]["timeline"]["L"]] == ["entry-0", "entry-3"]
    expression = "SET a = :a"
    assert UpdateExpressionParser.make(expression) is UpdateExpressionParser.make(expression)
