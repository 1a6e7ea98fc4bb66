"""The local stack's direct dispatch (``server._direct``): an AWS request served by moto's
handler without Flask answers exactly as the whole WSGI app does. The same calls (successes,
client errors of each protocol, HEAD, a missing route) run twice on fresh moto backends,
through the WSGI app and through the direct path; every answer's status, body and header
names must be the same, request ids and clocks aside."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

ENDPOINT = "http://127.0.0.1:4599"
#: what differs between two runs of the same calls: request ids, clocks, generated ids
VOLATILE = re.compile(
    rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    rb"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)?"
    rb"|\b1[0-9]{9}(\.[0-9]+)?\b"
    rb"|[A-Za-z0-9]{52}"  # moto's S3 request ids
    rb"|\"ReceiptHandle\": \"[^\"]*"
    rb"|<RoleId>[^<]*"
    rb"|(RequestId|requestId|HostId)(>|\":\s*\")[^<\"]*",
    re.IGNORECASE,
)
VOLATILE_HEADERS = {
    "date",
    "x-amzn-requestid",
    "x-amz-request-id",
    "x-amz-id-2",
    "x-amz-crc32",
    "last-modified",
    "etag",
}
#: the one difference: moto's Flask app adds CORS headers (flask-cors) to every answer; AWS
#: sends none to an SDK request, and the direct path sends none
FLASK_ONLY = ("access-control-",)


def _calls(client: Callable[[str], Any]) -> None:
    """The services the stack uses, each with a success and a client error of its protocol."""

    def attempt(call: Callable[[], Any]) -> None:
        try:
            call()
        except ClientError:
            pass

    ddb = client("dynamodb")
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="t", Item={"k": {"S": "a"}, "n": {"N": "1"}})
    ddb.update_item(
        TableName="t",
        Key={"k": {"S": "a"}},
        UpdateExpression="ADD n :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )
    attempt(
        lambda: ddb.update_item(
            TableName="t",
            Key={"k": {"S": "a"}},
            UpdateExpression="SET s = :s",
            ConditionExpression="attribute_not_exists(n)",
            ExpressionAttributeValues={":s": {"S": "x"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    )
    attempt(lambda: ddb.get_item(TableName="missing", Key={"k": {"S": "a"}}))
    attempt(
        lambda: ddb.update_item(
            TableName="t",
            Key={"k": {"S": "a"}},
            UpdateExpression="SET k = :s",
            ExpressionAttributeValues={":s": {"S": "x"}},
        )
    )
    ddb.query(TableName="t", KeyConditionExpression="k = :k", ExpressionAttributeValues={":k": {"S": "a"}})

    s3 = client("s3")
    s3.create_bucket(Bucket="bucket-b")
    s3.put_object(Bucket="bucket-b", Key="dir/x.json", Body=b'{"a": 1}')
    s3.get_object(Bucket="bucket-b", Key="dir/x.json")["Body"].read()
    attempt(lambda: s3.get_object(Bucket="bucket-b", Key="nope"))
    attempt(lambda: s3.head_object(Bucket="bucket-b", Key="nope"))
    attempt(lambda: s3.head_bucket(Bucket="no-such-bucket"))  # an error answer without its body
    s3.put_object(Bucket="bucket-b", Key="gone", Body=b"x")
    s3.delete_object(Bucket="bucket-b", Key="gone")  # 204
    s3.list_objects_v2(Bucket="bucket-b", Prefix="dir/")

    sqs = client("sqs")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    attempt(lambda: sqs.get_queue_url(QueueName="none"))

    events = client("events")
    events.create_event_bus(Name="bus")
    events.put_events(Entries=[{"EventBusName": "bus", "Source": "s", "DetailType": "d", "Detail": "{}"}])
    attempt(lambda: events.describe_rule(Name="none", EventBusName="bus"))

    lam = client("lambda")
    lam.list_functions()
    attempt(lambda: lam.get_function(FunctionName="none"))
    attempt(lambda: lam.invoke(FunctionName="none", Payload=b"{}"))

    iam = client("iam")
    role = iam.create_role(
        RoleName="r", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )
    attempt(lambda: iam.get_role(RoleName="none"))

    sfn = client("stepfunctions")
    sfn.list_state_machines()
    definition = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
    sfn.create_state_machine(name="m", definition=definition, roleArn=role["Role"]["Arn"])
    attempt(lambda: sfn.describe_execution(executionArn="arn:aws:states:us-east-1:123456789012:execution:m:none"))

    sns = client("sns")
    sns.create_topic(Name="topic")
    attempt(lambda: sns.get_topic_attributes(TopicArn="arn:aws:sns:us-east-1:123456789012:none"))

    secrets = client("secretsmanager")
    secrets.create_secret(Name="s", SecretString="v")
    secrets.get_secret_value(SecretId="s")
    attempt(lambda: secrets.get_secret_value(SecretId="none"))

    ses = client("sesv2")
    ses.create_email_identity(EmailIdentity="example.org")
    attempt(lambda: ses.get_email_identity(EmailIdentity="none.example"))

    client("cloudwatch").put_metric_alarm(
        AlarmName="a",
        MetricName="m",
        Namespace="n",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    attempt(lambda: client("scheduler").get_schedule(Name="none"))


def _answers(direct: bool) -> list[tuple[str, int, bytes, list[str]]]:
    from moto import mock_aws
    from moto.moto_api._internal import mock_random
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from sesflow.local import server
    from sesflow.local.lambda_workers import RawResponse, request_parts

    app = server.FunctionUrls(DomainDispatcherApplication(create_backend_app), "us-east-1")
    answer = server._answerer(app, ENDPOINT)
    seen: list[tuple[str, int, bytes, list[str]]] = []

    def before_send(request: Any, **_: Any) -> Any:
        parts = request_parts(request, ENDPOINT)
        assert parts is not None
        status, headers, content = answer(*parts)
        names = sorted(
            k.lower() for k in headers if k.lower() not in VOLATILE_HEADERS and not k.lower().startswith(FLASK_ONLY)
        )
        seen.append((f"{parts[0]} {parts[1][len(ENDPOINT) :]}", status, VOLATILE.sub(b"~", content), names))
        return AWSResponse(parts[1], status, headers, RawResponse(content))

    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    session.events.register("before-send", before_send)
    saved = server.DIRECT_DISPATCH
    server.DIRECT_DISPATCH = direct
    try:
        with mock_aws():
            mock_random.seed(7)  # the same generated ids in both runs
            _calls(lambda name: session.client(name, endpoint_url=ENDPOINT))  # type: ignore[call-overload]
    finally:
        server.DIRECT_DISPATCH = saved
    return seen


def test_the_direct_path_answers_as_the_wsgi_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from sesflow.local import server

    served: list[bool] = []
    direct = server._direct

    def counted(functions: Any, environ: dict[str, Any]) -> Any:
        result = direct(functions, environ)
        served.append(result is not None)
        return result

    monkeypatch.setattr(server, "_direct", counted)
    through_flask = _answers(direct=False)
    assert served == []  # the switch off: never asked
    through_direct = _answers(direct=True)
    assert len(through_direct) == len(through_flask) > 30
    for flask_answer, direct_answer in zip(through_flask, through_direct, strict=True):
        assert direct_answer == flask_answer
    assert all(served) and len(served) == len(through_direct)  # every call took the direct path
    assert {status for _, status, _, _ in through_direct} >= {200, 204, 400, 404}
