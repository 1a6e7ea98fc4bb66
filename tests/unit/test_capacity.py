"""The DynamoDB capacity model (sesflow.local.capacity) and the local stack's meter of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sesflow.local import capacity

TABLE: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "emailId", "KeyType": "HASH"}],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "byMessageId",
            "KeySchema": [{"AttributeName": "messageId", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        },
        {
            "IndexName": "byRecipient",
            "KeySchema": [
                {"AttributeName": "recipient", "KeyType": "HASH"},
                {"AttributeName": "createdAt", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
        {
            "IndexName": "byStatus",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["note"]},
        },
    ],
}


def item(**attrs: Any) -> dict[str, Any]:
    return {k: v if isinstance(v, dict) else {"S": v} for k, v in attrs.items()}


BASE = item(emailId="e1", recipient="a@example.org", createdAt="2026-01-01")


# ------------------------------------------------------------------ sizes
def test_sizes_of_each_type() -> None:
    assert capacity.item_size(item(ab="héllo")) == 2 + 6  # UTF-8 bytes of name and value
    assert capacity.item_size({"n": {"N": "123"}}) == 1 + 3  # 3 digits: 2 bytes + 1
    assert capacity.item_size({"n": {"N": "-0.00120"}}) == 1 + 2  # digits "12"
    assert capacity.item_size({"n": {"N": "1e10"}}) == 1 + 2
    assert capacity.item_size({"b": {"B": b"\x00\x01\x02"}}) == 1 + 3
    assert capacity.item_size({"b": {"B": "AAEC"}}) == 1 + 3  # base64 counts as its raw bytes
    assert capacity.item_size({"t": {"BOOL": True}, "z": {"NULL": True}}) == 2 + 2
    assert capacity.item_size({"l": {"L": [{"S": "ab"}, {"N": "1"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert capacity.item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert capacity.item_size({"m": {"M": {}}}) == 1 + 3
    assert capacity.item_size({"s": {"SS": ["a", "bc"]}, "ns": {"NS": ["1", "22"]}}) == 1 + 3 + 2 + 4
    assert capacity.item_size(None) == 0
    with pytest.raises(ValueError):
        capacity.item_size({"x": {"Q": 1}})


def test_read_units() -> None:
    assert capacity.read_units(0, consistent=True) == 1.0  # nothing found still costs a read
    assert capacity.read_units(4096, consistent=True) == 1.0
    assert capacity.read_units(4097, consistent=True) == 2.0
    assert capacity.read_units(4097) == 1.0  # eventually consistent: half
    assert capacity.read_units(100) == 0.5
    assert capacity.read_units(8192, transactional=True) == 4.0


# ------------------------------------------------------------------ writes
def test_table_write_is_per_started_kb_of_the_larger_image() -> None:
    small, big = item(emailId="e1"), item(emailId="e1", body="x" * 1500)
    assert capacity.write_units(None, small, TABLE)[0] == 1.0
    assert capacity.write_units(small, big, TABLE)[0] == 2.0
    assert capacity.write_units(big, small, TABLE)[0] == 2.0  # the larger of before and after
    assert capacity.write_units(big, None, TABLE)[0] == 2.0  # delete: the item deleted
    assert capacity.write_units(None, None, TABLE)[0] == 1.0  # deleting nothing still costs 1
    assert capacity.write_units(None, small, TABLE, transactional=True)[0] == 2.0


def test_new_item_with_index_keys_writes_each_index_it_enters() -> None:
    _, indexes = capacity.write_units(None, BASE, TABLE)
    assert indexes == {"byRecipient": 1.0}  # no messageId, no status: sparse for the other two
    _, indexes = capacity.write_units(None, {**BASE, **item(messageId="m1", status="sent")}, TABLE)
    assert indexes == {"byRecipient": 1.0, "byMessageId": 1.0, "byStatus": 1.0}


def test_all_projection_is_written_on_any_change_keys_only_never() -> None:
    before = {**BASE, **item(messageId="m1")}
    after = {**before, **item(outcome="delivered")}
    _, indexes = capacity.write_units(before, after, TABLE)
    assert indexes == {"byRecipient": 1.0}  # KEYS_ONLY byMessageId: keys unchanged, nothing to write
    assert capacity.write_units(before, dict(before), TABLE)[1] == {}  # nothing changed: no index write


def test_include_projection_is_written_only_for_its_attributes() -> None:
    before = item(emailId="e1", status="sent")
    assert capacity.write_units(before, {**before, **item(other="x")}, TABLE)[1] == {}
    assert capacity.write_units(before, {**before, **item(note="x")}, TABLE)[1] == {"byStatus": 1.0}


def test_index_key_change_is_a_delete_and_a_put() -> None:
    before = {**BASE, **item(messageId="m1")}
    after = {**before, **item(messageId="m2")}
    assert capacity.write_units(before, after, TABLE)[1] == {"byMessageId": 2.0, "byRecipient": 1.0}


def test_gaining_or_losing_an_index_key_is_one_write() -> None:
    gained = {**BASE, **item(messageId="m1")}
    assert capacity.write_units(BASE, gained, TABLE)[1] == {"byMessageId": 1.0, "byRecipient": 1.0}
    assert capacity.write_units(gained, BASE, TABLE)[1] == {"byMessageId": 1.0, "byRecipient": 1.0}
    assert capacity.write_units(gained, None, TABLE)[1] == {"byMessageId": 1.0, "byRecipient": 1.0}  # delete


def test_sparse_index_item_lacking_a_key_attribute_is_never_written() -> None:
    half = item(emailId="e1", recipient="a@example.org")  # no createdAt: not in byRecipient
    assert capacity.write_units(None, half, TABLE)[1] == {}
    assert capacity.write_units(half, {**half, **item(x="y")}, TABLE)[1] == {}


def test_index_write_size_is_the_entry_size() -> None:
    big = {**BASE, **item(messageId="m1", body="x" * 3000)}
    _, indexes = capacity.write_units(None, big, TABLE)
    assert indexes == {"byRecipient": 3.0, "byMessageId": 1.0}  # ALL carries the body; KEYS_ONLY does not


def test_failed_condition_costs_the_existing_item() -> None:
    assert capacity.failed_write_units(None) == 1.0
    assert capacity.failed_write_units(item(emailId="e1", body="x" * 2100)) == 3.0
    assert capacity.failed_write_units(None, transactional=True) == 2.0


# ------------------------------------------------------------------ the local stack's meter
@pytest.fixture
def metered(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto in process (no server) with the local stack's meter installed, and one table."""
    from moto import mock_aws

    from sesflow.local import server

    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server.install_dynamodb_meter()
    server._dynamodb_stats(reset=True)
    try:
        with mock_aws():
            import boto3

            ddb = boto3.client("dynamodb", region_name="us-east-1")
            ddb.create_table(
                TableName="t",
                BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[
                    {"AttributeName": n, "AttributeType": "S"}
                    for n in ("emailId", "messageId", "recipient", "createdAt")
                ],
                KeySchema=TABLE["KeySchema"],
                GlobalSecondaryIndexes=TABLE["GlobalSecondaryIndexes"][:2],
            )
            yield ddb
    finally:
        server.uninstall_dynamodb_meter()
        server._dynamodb_stats(reset=True)


def test_meter_counts_what_each_request_would_bill(metered: Any, caplog: pytest.LogCaptureFixture) -> None:
    from botocore.exceptions import ClientError

    from sesflow.local import server

    ddb = metered
    ddb.put_item(TableName="t", Item=BASE)  # 1 + byRecipient 1
    ddb.update_item(  # ALL index rewritten, messageId enters byMessageId: 1 + 1 + 1
        TableName="t",
        Key={"emailId": {"S": "e1"}},
        UpdateExpression="SET messageId = :m",
        ExpressionAttributeValues={":m": {"S": "m1"}},
    )
    with pytest.raises(ClientError):  # failed condition: 1 WRU on the existing item
        ddb.put_item(TableName="t", Item=BASE, ConditionExpression="attribute_not_exists(emailId)")
    got = ddb.get_item(TableName="t", Key={"emailId": {"S": "e1"}}, ConsistentRead=True)  # 1 RRU
    assert got["Item"]["messageId"] == {"S": "m1"}  # responses unchanged
    ddb.batch_get_item(RequestItems={"t": {"Keys": [{"emailId": {"S": "e1"}}, {"emailId": {"S": "e9"}}]}})  # 2 x 0.5
    resp = ddb.query(  # one item read on the index, eventually consistent: 0.5
        TableName="t",
        IndexName="byRecipient",
        KeyConditionExpression="recipient = :r",
        FilterExpression="messageId = :x",
        ExpressionAttributeValues={":r": {"S": "a@example.org"}, ":x": {"S": "nope"}},
    )
    assert resp["Count"] == 0 and resp["ScannedCount"] == 1  # the filter still filters
    ddb.delete_item(TableName="t", Key={"emailId": {"S": "e1"}})  # 1 + both indexes 1
    stats = server._dynamodb_stats(reset=False)["t"]
    assert stats["wru"] == 4.0
    assert stats["indexWru"] == {"byRecipient": 3.0, "byMessageId": 2.0}
    assert stats["rru"] == 2.5
    assert not [r for r in caplog.records if "not metered" in r.getMessage()]


def test_meter_batch_and_transactional_writes(metered: Any, caplog: pytest.LogCaptureFixture) -> None:
    from botocore.exceptions import ClientError

    from sesflow.local import server

    ddb = metered
    ddb.batch_write_item(  # 2 x (1 + byRecipient 1)
        RequestItems={"t": [{"PutRequest": {"Item": {**BASE, **item(emailId=e)}}} for e in ("e1", "e2")]}
    )
    update = {
        "TableName": "t",
        "Key": {"emailId": {"S": "e1"}},
        "UpdateExpression": "SET outcome = :o",
        "ExpressionAttributeValues": {":o": {"S": "sent"}},
    }
    ddb.transact_write_items(TransactItems=[{"Update": update}])  # 2 (transactional) + byRecipient 1
    with pytest.raises(ClientError):  # cancelled: 2 on the existing item
        ddb.transact_write_items(
            TransactItems=[{"Update": {**update, "ConditionExpression": "attribute_not_exists(emailId)"}}]
        )
    stats = server._dynamodb_stats(reset=True)["t"]
    # every index of a table written is reported, those never written at 0
    assert stats == {"wru": 6.0, "rru": 0.0, "indexWru": {"byRecipient": 3.0, "byMessageId": 0.0}}
    assert server._dynamodb_stats(reset=False) == {}
    assert not [r for r in caplog.records if "not metered" in r.getMessage()]
