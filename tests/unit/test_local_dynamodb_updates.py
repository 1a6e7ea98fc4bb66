"""Plain update expressions applied without moto's passes (sesflow/local/dynamodb_updates.py):
over a corpus of good and bad writes, every outcome (the stored item, or moto's error code
and message) is the one moto gives without the patch, and the plain ones did skip the passes."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import TRACKING, _tables

N1 = {"N": "1"}


def _moto_originals() -> dict[tuple[Any, str], Any]:
    """moto's own methods and functions that the local stack's DynamoDB shims replace, read
    when this module is collected (before any test installs a shim)."""
    from moto.dynamodb.comparisons import ConditionExpressionParser
    from moto.dynamodb.parsing import ast_nodes, executors, validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    cls = validators.UpdateExpressionValidator
    return {
        (UpdateExpressionParser, "make"): UpdateExpressionParser.__dict__["make"],
        (validators, "deepcopy"): validators.deepcopy,
        (cls, "__init__"): cls.__dict__.get("__init__", validators.Validator.__init__),
        (cls, "validate"): cls.__dict__.get("validate", validators.Validator.validate),
        (executors.UpdateExpressionExecutor, "execute"): executors.UpdateExpressionExecutor.execute,
        (ast_nodes.DepthFirstTraverser, "traverse"): ast_nodes.DepthFirstTraverser.traverse,
        (ConditionExpressionParser, "_lex_condition_expression"): ConditionExpressionParser._lex_condition_expression,
    }


_MOTO = _moto_originals()


def _moto_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every shim off (put back after the test, whatever was installed before it)."""
    for (owner, name), original in _MOTO.items():
        monkeypatch.setattr(owner, name, original)
    from moto.dynamodb.comparisons import ConditionExpressionParser

    assert ConditionExpressionParser._lex_condition_expression.__module__ == "moto.dynamodb.comparisons"
    assert _MOTO[(ConditionExpressionParser, "_lex_condition_expression")].__module__ == "moto.dynamodb.comparisons"


#: (update expression, names, values), each applied in turn to item "e0" and to the absent "e1"
_CORPUS: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    # in the subset: SET, if_not_exists, REMOVE, ADD of numbers, placeholders, any case of keyword
    ("SET sendState = :s, sendOwner = :o", {}, {":s": {"S": "sending"}, ":o": {"S": "x"}}),
    (
        "SET #f0 = if_not_exists(#f0, :f0), #f1 = if_not_exists(#f1, :f1)",
        {"#f0": "topic", "#f1": "stage"},
        {":f0": {"S": "news"}, ":f1": {"N": "2"}},
    ),
    ("SET copied = if_not_exists(sendOwner, :d)", {}, {":d": {"S": "default"}}),
    ("SET later = if_not_exists(nothing, :d)", {}, {":d": {"S": "default"}}),
    ("ADD opens :one, clicks :one", {}, {":one": N1}),
    ("ADD opens :one SET updatedAt = :now REMOVE later", {}, {":one": N1, ":now": {"S": "t"}}),
    ("REMOVE copied, #l", {"#l": "later"}, {}),
    ("set lowered = :v remove nothing", {}, {":v": {"S": "v"}}),
    ("SET m = :m, l = :l, b = :b", {}, {":m": {"M": {"k": {"S": "v"}}}, ":l": {"L": [N1]}, ":b": {"BOOL": True}}),
    ("SET #mid = :mid", {"#mid": "messageId"}, {":mid": {"S": "m-1"}}),
    ("SET #mid = :n", {"#mid": "messageId"}, {":n": N1}),  # a key type by placeholder: moto lets it pass
    ("SET   spacedOut=:v ,otherOne = if_not_exists( spacedOut ,:w )", {}, {":v": {"S": "1"}, ":w": {"S": "2"}}),
    ("SET #c = :e", {"#c": "campaignId"}, {":e": {"S": ""}}),  # an empty key string by placeholder: moto lets it pass
    ("ADD #c :one", {"#c": "createdAt"}, {":one": N1}),  # ADD to an index key: not checked by moto
    # in the subset's grammar, refused by moto: each must give moto's error
    ("SET messageId = :n", {}, {":n": N1}),  # a key attribute's type
    ("SET campaignId = :e", {}, {":e": {"S": ""}}),  # an empty key string
    ("SET emailId = :v", {}, {":v": {"S": "other"}}),  # the table's key
    ("SET a = if_not_exists(emailId, :v)", {}, {":v": {"S": "v"}}),  # the key, read
    ("SET messageId = if_not_exists(opens, :s)", {}, {":s": {"S": "m"}}),  # a number copied into a string key
    ("REMOVE emailId", {}, {}),
    ("SET a = :v, a = :w", {}, {":v": {"S": "1"}, ":w": {"S": "2"}}),  # twice
    ("SET a = :v, #a = :w", {"#a": "a"}, {":v": {"S": "1"}, ":w": {"S": "2"}}),
    ("SET a = :v REMOVE a", {}, {":v": {"S": "1"}}),
    ("SET a = :v SET b = :v", {}, {":v": {"S": "1"}}),
    ("SET a = :missing", {}, {":v": {"S": "1"}}),
    ("SET a = if_not_exists(#undefined, :v)", {}, {":v": {"S": "1"}}),
    ("SET #n = :v", {"#n": "status"}, {":v": {"S": "ok"}}),  # a reserved word behind a placeholder: fine
    ("SET status = :v", {}, {":v": {"S": "ok"}}),  # a reserved word
    ("SET a = :v, counter = if_not_exists(counter, :v)", {}, {":v": {"S": "1"}}),  # one, read
    ("ADD sendState :one", {}, {":one": N1}),  # ADD to a string
    ("ADD nums :s", {}, {":s": {"S": "x"}}),  # ADD of a string
    # outside the subset: moto's passes, as before
    ("ADD tags :t", {}, {":t": {"SS": ["a"]}}),
    ("SET tally = if_not_exists(tally, :z) + :one", {}, {":z": {"N": "0"}, ":one": N1}),
    ("SET m.k = :v", {}, {":v": {"S": "deep"}}),
    ("SET l[0] = :v", {}, {":v": {"S": "first"}}),
    ("SET gates = list_append(if_not_exists(gates, :e), :d)", {}, {":e": {"L": []}, ":d": {"L": [N1]}}),
    ("DELETE tags :t", {}, {":t": {"SS": ["a"]}}),
]


def _outcomes(ddb: Any) -> list[Any]:
    seen: list[Any] = []
    ddb.put_item(TableName=TRACKING, Item={"emailId": {"S": "e0"}, "status": {"S": "queued"}, "opens": {"N": "2"}})
    for _ in range(2):  # the second round: plans and shapes seen before
        for expression, names, values in _CORPUS:
            for email_id in ("e0", f"new-{len(seen)}"):
                try:
                    ddb.update_item(
                        TableName=TRACKING,
                        Key={"emailId": {"S": email_id}},
                        UpdateExpression=expression,
                        ReturnValues="ALL_NEW",
                        **({"ExpressionAttributeValues": values} if values else {}),
                        **({"ExpressionAttributeNames": names} if names else {}),
                    )
                    seen.append((expression, "ok"))
                except ddb.exceptions.ClientError as e:
                    seen.append((expression, e.response["Error"]["Code"], e.response["Error"]["Message"]))
                got = ddb.get_item(TableName=TRACKING, Key={"emailId": {"S": email_id}}, ConsistentRead=True)
                seen.append(got.get("Item"))
    return seen


def test_plain_updates_give_moto_s_outcomes_and_skip_its_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from sesflow.local import dynamodb_updates, shims

    _moto_as_is(monkeypatch)

    def run() -> list[Any]:
        with mock_aws():
            ddb = boto3.client("dynamodb", region_name="us-east-1")
            _tables(ddb)
            return _outcomes(ddb)

    moto_as_is = run()
    shims._lighter_dynamodb_writes()
    shims._faster_expression_traversal()
    applied: list[str] = []
    apply = dynamodb_updates.PlainUpdate.apply
    monkeypatch.setattr(
        dynamodb_updates.PlainUpdate, "apply", lambda self, item: (applied.append("x"), apply(self, item))[1]
    )
    patched = run()
    assert patched == moto_as_is
    # every corpus entry was tried on both items, twice; the plain ones in the subset skipped the passes
    oks = sum(1 for o in patched if isinstance(o, tuple) and o[1] == "ok")
    errors = {o[2] for o in patched if isinstance(o, tuple) and len(o) == 3}
    assert len(errors) >= 6, errors  # key type, empty key, key updated, overlap, undefined, reserved...
    # per round: the first 14 and the reserved word by '#n' on both items; on the new item only,
    # ADD to its absent sendState and the string key copied from its absent number
    assert len(applied) == (15 * 2 + 2) * 2 < oks, (len(applied), oks)

    monkeypatch.setattr(dynamodb_updates, "ENABLED", False)  # the switch: moto's passes for all
    applied.clear()
    assert run() == moto_as_is
    assert not applied


@pytest.mark.parametrize(
    "expression",
    [
        "SET a = :a",
        "SET a = :a, #b = if_not_exists(#b, :b) REMOVE c, #d ADD e :e",
        "add e :e set a = :a",
    ],
)
def test_the_subset_is_recognised(expression: str) -> None:
    from sesflow.local.dynamodb_updates import compile_plan

    assert compile_plan(expression) is not None


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "SET a = :a SET b = :b",
        "SET a.b = :a",
        "SET a[0] = :a",
        "SET a = b",
        "SET a = :a + :b",
        "SET a = list_append(a, :l)",
        "SET a = if_not_exists(a, :a) + :b",
        "ADD s :a, t",
        "DELETE s :a",
        "REMOVE a[1]",
        "SET a = :a,",
        "SET a = :a REMOVE",
        "SET a = :a; REMOVE b",
    ],
)
def test_everything_else_goes_to_moto(expression: str) -> None:
    from sesflow.local.dynamodb_updates import compile_plan

    assert compile_plan(expression) is None


#: conditions on item "e0" (status "queued", opens 2): true, false, refused
_CONDITIONS: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("attribute_not_exists(sendState) OR sendState = :r", {}, {":r": {"S": "retryable"}}),
    ("#s = :q AND opens >= :two", {"#s": "status"}, {":q": {"S": "queued"}, ":two": {"N": "2"}}),
    ("#s <> :q", {"#s": "status"}, {":q": {"S": "queued"}}),
    ("#s <> :q", {"#s": "status"}, {":q": {"S": "sent"}}),  # the same text, another value: true
    ("begins_with(#s, :p) AND NOT attribute_exists(gone)", {"#s": "status"}, {":p": {"S": "qu"}}),
    ("opens BETWEEN :a AND :b OR #s IN (:x, :y)", {"#s": "status"}, {":a": N1, ":b": N1, ":x": N1, ":y": N1}),
    ("status = :q", {}, {":q": {"S": "queued"}}),  # a reserved word
]


def test_conditions_lexed_once_give_moto_s_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    from sesflow.local import dynamodb_updates

    _moto_as_is(monkeypatch)

    def run() -> list[Any]:
        seen: list[Any] = []
        with mock_aws():
            ddb = boto3.client("dynamodb", region_name="us-east-1")
            _tables(ddb)
            ddb.put_item(
                TableName=TRACKING, Item={"emailId": {"S": "e0"}, "status": {"S": "queued"}, "opens": {"N": "2"}}
            )
            for _ in range(2):
                for i, (condition, names, values) in enumerate(_CONDITIONS):
                    try:
                        ddb.update_item(
                            TableName=TRACKING,
                            Key={"emailId": {"S": "e0"}},
                            UpdateExpression="SET #t = :t",
                            ConditionExpression=condition,
                            ExpressionAttributeNames={**names, "#t": f"t{i}"},
                            ExpressionAttributeValues={**values, ":t": N1},
                        )
                        seen.append("ok")
                    except ddb.exceptions.ClientError as e:
                        seen.append((e.response["Error"]["Code"], e.response["Error"]["Message"]))
            seen.append(ddb.get_item(TableName=TRACKING, Key={"emailId": {"S": "e0"}})["Item"])
        return seen

    moto_as_is = run()
    dynamodb_updates.lex_conditions_once()
    assert run() == moto_as_is
    assert moto_as_is.count("ok") == 2 * 4, moto_as_is
    assert any(o[0] == "ConditionalCheckFailedException" for o in moto_as_is if isinstance(o, tuple))
    assert any(o[0] == "ValidationException" for o in moto_as_is if isinstance(o, tuple))
