"""The local IAM evaluator (sesflow/local/iam.py), without a server: matching, evaluation,
conditions, request resources, AccessDenied shapes; the runtime's credentials overlay and the
handlers' per-credentials client cache."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from sesflow.local import iam
from sesflow.local import lambda_runtime as rt
from sesflow.local.iam import Decision, Statement, evaluate, parse_policy

ACCOUNT, REGION = "123456789012", "us-east-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/stack-TrackingTable-ABC"
ROLE_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/stack-SendFunctionRole-X/stack-SendFunction-Y"


def policy(*statements: dict[str, Any]) -> list[Statement]:
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


# ---------------------------------------------------------------- matching
@pytest.mark.parametrize(
    ("pattern", "action", "hit"),
    [
        ("dynamodb:GetItem", "dynamodb:GetItem", True),
        ("dynamodb:getitem", "dynamodb:GetItem", True),  # actions are case-insensitive
        ("dynamodb:Get*", "dynamodb:GetItem", True),
        ("dynamodb:Get*", "dynamodb:UpdateItem", False),
        ("*", "ses:SendEmail", True),
        ("s3:?etObject", "s3:GetObject", True),
        ("dynamodb:GetItem", "dynamodb:GetItems", False),
    ],
)
def test_action_patterns(pattern: str, action: str, hit: bool) -> None:
    assert iam.action_matches(pattern, action) is hit


@pytest.mark.parametrize(
    ("pattern", "arn", "hit"),
    [
        (TABLE, TABLE, True),
        ("*", TABLE, True),
        (TABLE, TABLE + "/index/byMessageId", False),  # an index is its own resource
        (TABLE + "/index/*", TABLE + "/index/byMessageId", True),
        (f"arn:aws:dynamodb:*:{ACCOUNT}:table/stack-*", TABLE, True),
        # SAM's LambdaInvokePolicy: the resource part's * spans ':' (qualifiers)
        (
            "arn:aws:lambda:us-east-1:123456789012:function:fn*",
            "arn:aws:lambda:us-east-1:123456789012:function:fn:live",
            True,
        ),
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/welcome/template.json", True),
        ("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket", False),
        ("arn:aws:s3:::bucket", "arn:aws:s3:::Bucket", False),  # resources are case-sensitive
        # a wildcard in one of the first five segments stays in that segment
        ("arn:aws:ses:*:identity/x", "arn:aws:ses:us-east-1:123456789012:identity/x", False),
    ],
)
def test_resource_patterns(pattern: str, arn: str, hit: bool) -> None:
    assert iam.resource_matches(pattern, arn) is hit


# ---------------------------------------------------------------- documents
def test_policy_documents_in_every_form_moto_keeps_them() -> None:
    doc = {"Statement": [allow("dynamodb:GetItem", TABLE)]}
    as_json = json.dumps(doc)
    from urllib.parse import quote

    for form in (doc, as_json, as_json.encode(), quote(as_json)):
        [st] = parse_policy(form)
        assert st.effect == "Allow" and st.actions == ("dynamodb:GetItem",) and st.resources == (TABLE,)
    # one statement without a list, a single action string
    assert parse_policy({"Statement": allow("s3:GetObject")})[0].actions == ("s3:GetObject",)


def test_no_value_left_in_a_resource_list_is_ignored() -> None:
    """moto's CloudFormation turns ``!If [c, x, !Ref AWS::NoValue]`` into None in a list."""
    ses = policy(allow("ses:SendEmail", ["arn:aws:ses:us-east-1:123456789012:identity/example.com", None]))
    assert evaluate([ses], "ses:SendEmail", "arn:aws:ses:us-east-1:123456789012:identity/example.com") is Decision.ALLOW
    assert (
        evaluate([ses], "ses:SendEmail", "arn:aws:ses:us-east-1:123456789012:identity/other.com")
        is Decision.IMPLICIT_DENY
    )


# ---------------------------------------------------------------- evaluation
def test_allow_implicit_and_explicit_deny() -> None:
    send = policy(allow(["dynamodb:UpdateItem", "dynamodb:GetItem"], TABLE))
    assert evaluate([send], "dynamodb:GetItem", TABLE) is Decision.ALLOW
    assert evaluate([send], "dynamodb:PutItem", TABLE) is Decision.IMPLICIT_DENY
    assert evaluate([send], "dynamodb:GetItem", TABLE.replace("Tracking", "Suppression")) is Decision.IMPLICIT_DENY
    assert evaluate([], "dynamodb:GetItem", TABLE) is Decision.IMPLICIT_DENY
    deny = policy({"Effect": "Deny", "Action": "dynamodb:*", "Resource": "*"})
    assert evaluate([send, deny], "dynamodb:GetItem", TABLE) is Decision.EXPLICIT_DENY  # deny wins, any order
    assert evaluate([deny, send], "dynamodb:GetItem", TABLE) is Decision.EXPLICIT_DENY


def test_not_action_and_not_resource() -> None:
    everything_but_delete = policy({"Effect": "Allow", "NotAction": "dynamodb:Delete*", "Resource": TABLE})
    assert evaluate([everything_but_delete], "dynamodb:GetItem", TABLE) is Decision.ALLOW
    assert evaluate([everything_but_delete], "dynamodb:DeleteItem", TABLE) is Decision.IMPLICIT_DENY
    not_that_table = policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "NotResource": TABLE})
    assert evaluate([not_that_table], "dynamodb:GetItem", TABLE) is Decision.IMPLICIT_DENY
    assert evaluate([not_that_table], "dynamodb:GetItem", TABLE + "2") is Decision.ALLOW


def test_an_unmodelled_resource_leaves_the_action_to_decide() -> None:
    scoped = policy(allow("logs:PutLogEvents", "arn:aws:logs:us-east-1:123456789012:log-group:x:*"))
    assert evaluate([scoped], "logs:PutLogEvents", None) is Decision.ALLOW
    assert evaluate([scoped], "logs:DeleteLogGroup", None) is Decision.IMPLICIT_DENY
    # actions that take no resource are checked against "*": an ARN-scoped grant does not cover them
    account = policy(allow("ses:GetAccount", "arn:aws:ses:us-east-1:123456789012:identity/x"))
    assert evaluate([account], "ses:GetAccount", "*") is Decision.IMPLICIT_DENY


# ---------------------------------------------------------------- conditions
CONTEXT = {
    "aws:PrincipalAccount": ACCOUNT,
    "aws:PrincipalArn": "arn:aws:iam::123456789012:role/stack-SendRole",
    "aws:RequestedRegion": REGION,
    "aws:SecureTransport": "false",
}


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}, True),
        ({"StringEquals": {"aws:PrincipalAccount": ["111111111111", ACCOUNT]}}, True),
        ({"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}}, False),
        ({"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/stack-*"}}, True),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/other-*"}}, False),
        ({"ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/stack-*"}}, True),
        ({"Bool": {"aws:SecureTransport": "false"}}, True),
        ({"Bool": {"aws:SecureTransport": True}}, False),
        # a key the request does not carry: false, except negated operators, IfExists and Null
        ({"StringEquals": {"aws:SourceAccount": ACCOUNT}}, False),
        ({"StringNotEquals": {"aws:SourceAccount": ACCOUNT}}, True),
        ({"StringEqualsIfExists": {"aws:SourceAccount": "x"}}, True),
        ({"StringEqualsIfExists": {"aws:PrincipalAccount": "x"}}, False),
        ({"Null": {"aws:SourceAccount": "true"}}, True),
        ({"Null": {"aws:PrincipalAccount": "true"}}, False),
        # several entries: all must hold
        ({"StringEquals": {"aws:PrincipalAccount": ACCOUNT, "aws:RequestedRegion": "eu-west-1"}}, False),
        # unsupported operators never match
        ({"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}, False),
    ],
)
def test_conditions(condition: dict[str, Any], holds: bool) -> None:
    st = policy(allow("dynamodb:GetItem", TABLE, Condition=condition))
    expected = Decision.ALLOW if holds else Decision.IMPLICIT_DENY
    assert evaluate([st], "dynamodb:GetItem", TABLE, CONTEXT) is expected


def test_a_deny_whose_condition_does_not_hold_does_not_apply() -> None:
    grants = policy(
        allow("dynamodb:GetItem", TABLE),
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:RequestedRegion": REGION}},
        },
    )
    assert evaluate([grants], "dynamodb:GetItem", TABLE, CONTEXT) is Decision.ALLOW
    assert (
        evaluate([grants], "dynamodb:GetItem", TABLE, {**CONTEXT, "aws:RequestedRegion": "eu-west-1"})
        is Decision.EXPLICIT_DENY
    )


# ---------------------------------------------------------------- requests -> (action, resource)
def test_iam_action_names_differ_from_some_operation_names() -> None:
    assert iam.iam_action("lambda", "Invoke") == "lambda:InvokeFunction"
    assert iam.iam_action("sqs", "SendMessageBatch") == "sqs:SendMessage"
    assert iam.iam_action("monitoring", "PutMetricData") == "cloudwatch:PutMetricData"
    assert iam.iam_action("dynamodb", "UpdateItem") == "dynamodb:UpdateItem"


def test_dynamodb_resources() -> None:
    def targets(op: str, body: dict[str, Any]) -> list[tuple[str, str | None]]:
        return iam._dynamodb(op, body, REGION, ACCOUNT)

    base = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
    assert targets("GetItem", {"TableName": "T"}) == [("dynamodb:GetItem", base + "T")]
    assert targets("Query", {"TableName": "T", "IndexName": "byMessageId"}) == [
        ("dynamodb:Query", base + "T/index/byMessageId")
    ]
    assert targets("GetItem", {"TableName": base + "T"}) == [("dynamodb:GetItem", base + "T")]  # ARN as name
    assert targets("BatchGetItem", {"RequestItems": {"A": {}, "B": {}}}) == [
        ("dynamodb:BatchGetItem", base + "A"),
        ("dynamodb:BatchGetItem", base + "B"),
    ]
    assert targets(
        "TransactWriteItems",
        {
            "TransactItems": [
                {"Put": {"TableName": "A"}},
                {"Update": {"TableName": "B"}},
                {"ConditionCheck": {"TableName": "A"}},
            ]
        },
    ) == [
        ("dynamodb:PutItem", base + "A"),
        ("dynamodb:UpdateItem", base + "B"),
        ("dynamodb:ConditionCheckItem", base + "A"),
    ]
    assert targets("ListTables", {}) == [("dynamodb:ListTables", "*")]


def test_eventbridge_and_step_functions_resources() -> None:
    assert iam._events("PutEvents", {"Entries": [{"EventBusName": "bus"}, {}]}, REGION, ACCOUNT) == [
        ("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/bus"),
        ("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"),
    ]
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:m"
    assert iam._states("StartExecution", {"stateMachineArn": machine}) == [("states:StartExecution", machine)]
    assert iam._states("SendTaskSuccess", {"taskToken": "t"}) == [("states:SendTaskSuccess", "*")]


# ---------------------------------------------------------------- denials
def test_denial_message_has_aws_wording() -> None:
    msg = iam.denial_message(ROLE_SESSION, "dynamodb:UpdateItem", TABLE, Decision.IMPLICIT_DENY)
    assert msg == (
        f"User: {ROLE_SESSION} is not authorized to perform: dynamodb:UpdateItem on resource: {TABLE} "
        "because no identity-based policy allows the dynamodb:UpdateItem action"
    )
    assert iam.denial_message(ROLE_SESSION, "ses:GetAccount", "*", Decision.EXPLICIT_DENY) == (
        f"User: {ROLE_SESSION} is not authorized to perform: ses:GetAccount "
        "with an explicit deny in an identity-based policy"
    )
    assert 'on resource: "arn:aws:s3:::b/k" because' in iam.denial_message(
        ROLE_SESSION, "s3:GetObject", "arn:aws:s3:::b/k", Decision.IMPLICIT_DENY, quote_resource=True
    )


@pytest.mark.parametrize(
    ("service", "path", "status", "code"),
    [
        ("dynamodb", "/", 400, "com.amazon.coral.service#AccessDeniedException"),
        ("states", "/", 400, "AccessDeniedException"),
        ("events", "/", 400, "AccessDeniedException"),
        ("secretsmanager", "/", 400, "AccessDeniedException"),
        ("ses", "/v2/email/outbound-emails", 403, "AccessDeniedException"),
        ("lambda", "/2015-03-31/functions/f/invocations", 403, "AccessDeniedException"),
        ("sqs", "/", 403, "com.amazonaws.sqs#AccessDenied"),
        ("sns", "/", 403, "AuthorizationError"),
        ("ses", "/", 403, "AccessDenied"),  # SES v1 is a query (XML) service
    ],
)
def test_each_service_denies_in_its_own_shape(service: str, path: str, status: int, code: str) -> None:
    error = iam._denied_response(service, "User: x is not authorized", path)
    assert error.code == status
    body = str(error.description)
    if body.startswith("{"):
        assert json.loads(body)["__type"] == code
    else:
        assert f"<Code>{code}</Code>" in body


def test_the_switch() -> None:
    import os

    saved = os.environ.get(iam.ENV_SWITCH)
    try:
        for value, on in (("off", False), ("OFF", False), ("0", False), ("on", True), ("", True)):
            os.environ[iam.ENV_SWITCH] = value
            assert iam.enabled() is on, value
    finally:
        if saved is None:
            os.environ.pop(iam.ENV_SWITCH, None)
        else:
            os.environ[iam.ENV_SWITCH] = saved


# ---------------------------------------------------------------- the runtime and the handlers' clients
def test_role_credentials_are_the_invocations_and_override_the_functions_variables(tmp_path: Path) -> None:
    (tmp_path / "creds_fn.py").write_text(
        "import os\ndef handler(e, c):\n"
        "    return [os.environ.get(k) for k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN')]\n"
    )
    spec = rt.FunctionSpec(
        "fn",
        "arn:aws:lambda:us-east-1:123456789012:function:fn",
        tmp_path,
        "creds_fn.handler",
        {"AWS_ACCESS_KEY_ID": "from-config"},
        2.0,
        128,
        credentials={"AWS_ACCESS_KEY_ID": "ASIAROLE", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"},
    )
    assert rt.invoke(spec, {}).payload == ["ASIAROLE", "s", "t"]


def test_the_handlers_client_cache_keeps_one_client_per_credentials(tmp_path: Path) -> None:
    """Two functions with different roles in one process never share a client."""
    from sesflow_handlers import _common

    (tmp_path / "client_fn.py").write_text(
        "from sesflow_handlers._common import client\n"
        "def handler(e, c):\n"
        "    first = client('dynamodb')\n"
        "    assert client('dynamodb') is first\n"
        "    return [id(first), first._request_signer._credentials.access_key]\n"
    )
    results: dict[str, Any] = {}

    def run(key: str) -> None:
        spec = rt.FunctionSpec(
            f"fn-{key}",
            "arn:aws:lambda:us-east-1:123456789012:function:fn",
            tmp_path,
            "client_fn.handler",
            {"AWS_DEFAULT_REGION": "us-east-1"},
            5.0,
            128,
            credentials={"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t"},
        )
        results[key] = rt.invoke(spec, {}).payload

    threads = [threading.Thread(target=run, args=(k,)) for k in ("ASIAONE", "ASIATWO")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, list) for r in results.values()), results
    assert results["ASIAONE"][1] == "ASIAONE" and results["ASIATWO"][1] == "ASIATWO", results
    assert results["ASIAONE"][0] != results["ASIATWO"][0]
    _common._client.cache_clear()
