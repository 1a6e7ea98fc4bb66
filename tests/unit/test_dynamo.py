"""sesflow_aws.dynamo: items to plain Python and back, and a BatchGetItem that finishes or says why not."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from sesflow_aws import dynamo
from sesflow_aws.dynamo import BatchGetIncomplete, batch_get, to_item, to_plain

# ---------------------------------------------------------------- to_plain


def test_numbers_are_native_never_decimal() -> None:
    item: dict[str, dict[str, Any]] = {
        "count": {"N": "3"},
        "rate": {"N": "2.5"},
        "neg": {"N": "-7"},
        "big": {"N": "12345678901234567890"},
        "whole": {"N": "4.0"},
        "sci": {"N": "1E+2"},
        "at": {"N": "1732394022.125"},
    }
    plain = to_plain(item)
    assert plain == {
        "at": 1732394022.125,
        "big": 12345678901234567890,
        "count": 3,
        "neg": -7,
        "rate": 2.5,
        "sci": 100,
        "whole": 4,
    }
    assert [type(plain[k]) for k in ("count", "rate", "whole", "sci")] == [int, float, int, int]
    assert json.loads(json.dumps(plain)) == plain


def test_every_type_and_nesting() -> None:
    item: dict[str, dict[str, Any]] = {
        "s": {"S": "x"},
        "b": {"B": b"\x00\x01"},
        "t": {"BOOL": True},
        "n": {"NULL": True},
        "m": {"M": {"inner": {"N": "1"}, "list": {"L": [{"N": "1.5"}, {"S": "y"}, {"M": {}}]}}},
        "ss": {"SS": ["b", "a", "c"]},
        "ns": {"NS": ["10", "2", "3.5"]},
        "bs": {"BS": [b"z", b"a"]},
    }
    assert to_plain(item) == {
        "b": b"\x00\x01",
        "bs": [b"a", b"z"],
        "m": {"inner": 1, "list": [1.5, "y", {}]},
        "n": None,
        "ns": [2, 3.5, 10],
        "s": "x",
        "ss": ["a", "b", "c"],
        "t": True,
    }


def test_attributes_are_sorted_by_name() -> None:
    assert list(to_plain({"z": {"S": "1"}, "a": {"S": "2"}, "m": {"S": "3"}})) == ["a", "m", "z"]


@pytest.mark.parametrize("bad", [{"X": "1"}, {"S": "a", "N": "1"}, {"N": "NaN"}, {"N": "abc"}, {"N": "Infinity"}])
def test_malformed_values_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        dynamo.from_value(bad)


# ---------------------------------------------------------------- to_item


def test_floats_and_decimals_are_safe() -> None:
    item = to_item({"f": 0.1, "d": Decimal("1.50"), "i": 3, "big": 10**30, "tiny": 1e-7, "neg": -2.5})
    assert item == {
        "f": {"N": "0.1"},
        "d": {"N": "1.50"},
        "i": {"N": "3"},
        "big": {"N": str(10**30)},
        "tiny": {"N": "1E-7"},
        "neg": {"N": "-2.5"},
    }


def test_bool_is_not_a_number_and_none_is_null() -> None:
    assert to_item({"t": True, "f": False, "n": None}) == {
        "t": {"BOOL": True},
        "f": {"BOOL": False},
        "n": {"NULL": True},
    }


def test_sets_lists_maps_and_binary() -> None:
    item = to_item(
        {
            "ss": {"b", "a"},
            "ns": frozenset({3, 1.5}),
            "bs": {b"y", b"x"},
            "l": [1, "a", (2,)],
            "m": {"k": {"deep": [None]}},
            "b": bytearray(b"\x01"),
        }
    )
    assert item == {
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1.5", "3"]},
        "bs": {"BS": [b"x", b"y"]},
        "l": {"L": [{"N": "1"}, {"S": "a"}, {"L": [{"N": "2"}]}]},
        "m": {"M": {"k": {"M": {"deep": {"L": [{"NULL": True}]}}}}},
        "b": {"B": b"\x01"},
    }


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (Decimal("NaN"), ValueError),
        (set(), ValueError),
        ({"a", 1}, TypeError),
        ({True, False}, TypeError),
        (object(), TypeError),
    ],
)
def test_what_dynamodb_would_refuse_is_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        to_item({"v": value})


def test_non_string_attribute_names_are_refused() -> None:
    with pytest.raises(TypeError):
        to_item({1: "x"})  # type: ignore[dict-item]


def test_round_trip() -> None:
    data = {
        "a": 1,
        "b": 2.25,
        "c": "x",
        "d": [1, {"e": None, "f": False}],
        "g": {"h": ["i"]},
        "j": b"k",
        "ss": ["a", "b"],
        "ns": [1, 2.5],
    }
    item = to_item({**data, "ss": set(data["ss"]), "ns": set(data["ns"])})  # type: ignore[call-overload]
    assert to_plain(item) == data
    # and a DynamoDB item survives plain -> item -> plain
    assert to_plain(to_item(to_plain(item))) == data


# ---------------------------------------------------------------- batch_get


class FakeDynamo:
    """BatchGetItem over a dict; leaves the first ``unprocessed[i]`` keys of request i unprocessed."""

    def __init__(self, table: str, rows: dict[str, dict[str, Any]], unprocessed: list[int] | None = None) -> None:
        self.table, self.rows = table, rows
        self.unprocessed = list(unprocessed or [])
        self.requests: list[dict[str, Any]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(RequestItems)
        spec = RequestItems[self.table]
        keys = spec["Keys"]
        assert len(keys) <= 100, "BatchGetItem takes at most 100 keys"
        ids = [k["id"]["S"] for k in keys]
        assert len(set(ids)) == len(ids), "BatchGetItem refuses duplicate keys"
        held = self.unprocessed.pop(0) if self.unprocessed else 0
        done, left = keys[held:], keys[:held]
        found = [to_item(self.rows[k["id"]["S"]]) for k in done if k["id"]["S"] in self.rows]
        resp: dict[str, Any] = {"Responses": {self.table: found}, "UnprocessedKeys": {}}
        if left:
            resp["UnprocessedKeys"] = {self.table: {"Keys": left, **{k: v for k, v in spec.items() if k != "Keys"}}}
        return resp


def keys(n: int, prefix: str = "k") -> list[dict[str, dict[str, str]]]:
    return [{"id": {"S": f"{prefix}{i}"}} for i in range(n)]


def test_chunks_of_100_and_missing_keys_are_absent() -> None:
    rows = {f"k{i}": {"id": f"k{i}", "n": i} for i in range(0, 250, 2)}
    ddb = FakeDynamo("t", rows)
    items = batch_get(ddb, "t", keys(250))
    assert [len(r["t"]["Keys"]) for r in ddb.requests] == [100, 100, 50]
    assert sorted(to_plain(i)["n"] for i in items) == list(range(0, 250, 2))


def test_duplicate_keys_are_asked_once() -> None:
    ddb = FakeDynamo("t", {"k1": {"id": "k1"}})
    items = batch_get(ddb, "t", [*keys(2), *keys(2)])
    assert len(ddb.requests) == 1 and len(ddb.requests[0]["t"]["Keys"]) == 2 and len(items) == 1


def test_unprocessed_keys_are_retried_with_growing_jittered_backoff() -> None:
    rows = {f"k{i}": {"id": f"k{i}"} for i in range(30)}
    ddb = FakeDynamo("t", rows, unprocessed=[20, 10, 5])
    sleeps: list[float] = []
    items = batch_get(ddb, "t", keys(30), sleep=sleeps.append, jitter=lambda: 1.0, base_delay=0.1, max_delay=0.3)
    assert len(items) == 30 and len(ddb.requests) == 4
    assert [len(r["t"]["Keys"]) for r in ddb.requests] == [30, 20, 10, 5]
    assert sleeps == [0.1, 0.2, 0.3]  # doubling, capped at max_delay


def test_backoff_is_full_jitter() -> None:
    assert dynamo.backoff_delay(3, 0.05, 2.0, jitter=lambda: 0.5) == pytest.approx(0.2)
    assert dynamo.backoff_delay(10, 0.05, 2.0, jitter=lambda: 0.5) == pytest.approx(1.0)
    assert dynamo.backoff_delay(0, 0.05, 2.0, jitter=lambda: 0.0) == 0.0


def test_gives_up_after_the_allowed_attempts_naming_what_is_left() -> None:
    ddb = FakeDynamo("t", {f"k{i}": {"id": f"k{i}"} for i in range(10)}, unprocessed=[10, 10, 10, 10, 10])
    sleeps: list[float] = []
    with pytest.raises(BatchGetIncomplete) as exc:
        batch_get(ddb, "t", keys(10), attempts=3, sleep=sleeps.append, jitter=lambda: 1.0)
    assert len(ddb.requests) == 3 and len(sleeps) == 2  # no sleep after the last attempt
    assert exc.value.table == "t" and len(exc.value.unprocessed) == 10 and exc.value.attempts == 3
    assert "10 keys still unprocessed after 3" in str(exc.value)


def test_projection_names_are_aliased() -> None:
    ddb = FakeDynamo("t", {"k0": {"id": "k0"}})
    batch_get(ddb, "t", keys(1), ["id", "status"])
    batch_get(ddb, "t", keys(1), "id, status")
    for request in ddb.requests:
        spec = request["t"]
        assert spec["ProjectionExpression"] == "#p0, #p1"
        assert spec["ExpressionAttributeNames"] == {"#p0": "id", "#p1": "status"}


def test_against_moto() -> None:
    """The shapes are the service's: a real client (moto) takes the items, keys and projection."""
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(150):
            ddb.put_item(
                TableName="t",
                Item=to_item({"id": f"k{i}", "status": "sent", "rate": i / 4, "tags": {"a", "b"}, "extra": "x"}),
            )
        items = [to_plain(i) for i in batch_get(ddb, "t", keys(160), ["id", "status", "rate", "tags"])]
    assert len(items) == 150
    assert sorted(items, key=lambda i: int(i["id"][1:]))[5] == {
        "id": "k5",
        "rate": 1.25,
        "status": "sent",
        "tags": ["a", "b"],
    }
