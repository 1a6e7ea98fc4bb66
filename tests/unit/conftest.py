"""In-process AWS for the handler and adapter tests: moto's ``mock_aws`` with the resources of
template.yaml (same key schemas), the Globals environment set with ``monkeypatch`` (nothing
leaks from one test to the next), and every process-wide cache the functions keep emptied
(the per-credentials boto3 clients, compiled templates, the secrets providers).

Nothing here is autouse: a test that wants the stack asks for the ``aws`` fixture.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
TRACKING = "sesflow-test-tracking"
SUPPRESSION = "sesflow-test-suppression"
CAMPAIGNS = "sesflow-test-campaigns"
TEMPLATES_BUCKET = "sesflow-test-templates"
CAMPAIGNS_BUCKET = "sesflow-test-campaigns-bucket"
ATTACHMENTS_BUCKET = "sesflow-test-attachments-bucket"
BUS = "sesflow-test-events"
CONFIGURATION_SET = "sesflow-test-cs"
SCHEDULE_GROUP = "sesflow-test-schedules"
SCHEDULER_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/sesflow-test-scheduler"
SEND_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:sesflow-test-send"
UNSUBSCRIBE_URL = "https://unsubscribe.example.com/"
SECRET_CURRENT = "current-unsubscribe-key"
SECRET_PREVIOUS = "previous-unsubscribe-key"
TEMPLATES = ("welcome", "newsletter", "order-receipt")  # of the repository's templates/ (with their locale variants)


@dataclass
class LambdaContext:
    """What Powertools' ``inject_lambda_context`` and the batch sender read of a context."""

    remaining_ms: int = 60_000
    function_name: str = "sesflow-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:sesflow-test"
    aws_request_id: str = "request-1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A raw DynamoDB item as plain Python (native numbers, sets as sorted lists)."""
    from sesflow_aws import dynamo

    return dynamo.to_plain(item)


@dataclass
class Aws:
    """The moto-backed stack of one test, and ways to read what the functions left in it."""

    clients: dict[str, Any]
    env: dict[str, str]
    secret_arn: str
    _queue_url: str
    _events: list[dict[str, Any]] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return self.clients[service]

    # ------------------------------------------------------------ DynamoDB
    def item(self, email_id: str, table: str = TRACKING, raw: bool = False) -> dict[str, Any]:
        """The tracking item (``{}`` when absent), as plain Python; a campaign claim as readers
        see it, through its batch's result chunk (``raw``: as stored; ADR 0014)."""
        from sesflow_aws import campaign_flow

        ddb = self.clients["dynamodb"]
        resp = ddb.get_item(TableName=table, Key={"emailId": {"S": email_id}}, ConsistentRead=True)
        item = plain(resp.get("Item", {}))
        return item if raw or table != TRACKING or not item else campaign_flow.resolve(ddb, table, item)

    def put_item(self, email_id: str, **attrs: Any) -> None:
        from sesflow_aws import dynamo

        self.clients["dynamodb"].put_item(TableName=TRACKING, Item=dynamo.to_item({"emailId": email_id, **attrs}))

    def timeline(self, email_id: str) -> list[dict[str, Any]]:
        return [json.loads(entry) for entry in self.item(email_id).get("timeline", [])]

    def suppressions(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every suppression entry by (address, topic)."""
        items = self.clients["dynamodb"].scan(TableName=SUPPRESSION, ConsistentRead=True)["Items"]
        return {(i["address"]["S"], i["topic"]["S"]): plain(i) for i in items}

    def suppress(self, address: str, topic: str, reason: str = "test") -> None:
        self.clients["dynamodb"].put_item(
            TableName=SUPPRESSION,
            Item={"address": {"S": address}, "topic": {"S": topic}, "reason": {"S": reason}},
        )

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        resp = self.clients["dynamodb"].get_item(
            TableName=CAMPAIGNS, Key={"campaignId": {"S": campaign_id}}, ConsistentRead=True
        )
        return plain(resp.get("Item", {}))

    # ------------------------------------------------------------ SES, events, S3
    def sent(self) -> list[Any]:
        """Every message moto's SES accepted (``RawMessage``: source, destinations, raw_data)."""
        from moto.ses.models import ses_backends

        return list(ses_backends[ACCOUNT][REGION].sent_messages)

    def events(self, detail_type: str | None = None) -> list[dict[str, Any]]:
        """Every event put on the project bus so far (``detail`` parsed), in arrival order."""
        sqs = self.clients["sqs"]
        while True:
            msgs = sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                self._events.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=m["ReceiptHandle"])
        return [e for e in self._events if detail_type is None or e["detail-type"] == detail_type]

    def put_object(self, bucket: str, key: str, body: str | bytes) -> None:
        self.clients["s3"].put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)

    def get_json(self, bucket: str, key: str) -> Any:
        return json.loads(self.clients["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())

    def put_template(self, name: str, subject: str, html: str, **meta: Any) -> None:
        self.put_object(TEMPLATES_BUCKET, f"{name}/metadata.json", json.dumps({"subject": subject, **meta}))
        self.put_object(TEMPLATES_BUCKET, f"{name}/template.html", html)


def _tables(ddb: Any) -> None:
    """The three tables with template.yaml's key schemas and indexes."""
    s = "S"
    ddb.create_table(
        TableName=TRACKING,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": s} for n in ("emailId", "messageId", "createdAt", "campaignId")
        ],
        KeySchema=[{"AttributeName": "emailId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "byMessageId",
                "KeySchema": [{"AttributeName": "messageId", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
            {
                "IndexName": "byCampaign",
                "KeySchema": [
                    {"AttributeName": "campaignId", "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            },
        ],
    )
    ddb.create_table(
        TableName=SUPPRESSION,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": s} for n in ("address", "topic", "firstDay", "firstSeen")
        ],
        KeySchema=[{"AttributeName": "address", "KeyType": "HASH"}, {"AttributeName": "topic", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "bySince",
                "KeySchema": [
                    {"AttributeName": "firstDay", "KeyType": "HASH"},
                    {"AttributeName": "firstSeen", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    ddb.create_table(
        TableName=CAMPAIGNS,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "campaignId", "AttributeType": s}],
        KeySchema=[{"AttributeName": "campaignId", "KeyType": "HASH"}],
    )


def _capture_queue(events: Any, sqs: Any) -> str:
    """An SQS queue that receives every event of the project bus."""
    url: str = sqs.create_queue(QueueName="sesflow-test-capture")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="capture", EventBusName=BUS, EventPattern=json.dumps({"source": ["sesflow"]}))
    events.put_targets(Rule="capture", EventBusName=BUS, Targets=[{"Id": "q", "Arn": arn}])
    return url


@functools.cache
def _shared_session() -> Any:
    import boto3
    import moto  # noqa: F401  (first: its request hook is in every session created after it)

    return boto3.session.Session(region_name=REGION)


@functools.cache
def _test_clients() -> dict[str, Any]:
    """The tests' own clients (not the functions'): stateless, so made once; moto's hook in
    their session answers them inside whichever ``mock_aws`` is running."""
    session = _shared_session()
    services = ("dynamodb", "s3", "events", "sqs", "secretsmanager", "scheduler", "ses")
    return {
        name: session.client(name, aws_access_key_id="testing", aws_secret_access_key="testing") for name in services
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Aws]:
    """A fresh moto account with the stack's resources and the functions' environment."""
    from moto import mock_aws
    from sesflow_aws import secrets, settings, templates
    from sesflow_handlers import _common

    for name in settings.DEFAULTS:  # nothing from the shell running the tests
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "sesflow")
    monkeypatch.setattr(_common.metrics, "namespace", "sesflow-test")
    # process-wide caches: clients made outside this mock, templates and secrets of another test
    _common._client.cache_clear()
    monkeypatch.setattr(templates, "_cache", {})
    monkeypatch.setattr(secrets, "_providers", {})
    with mock_aws():
        import boto3

        # moto starts every test without a default session; one shared session keeps the
        # service models botocore loaded (~30 ms per client otherwise), nothing else
        boto3.DEFAULT_SESSION = _shared_session()
        clients = _test_clients()
        _tables(clients["dynamodb"])
        clients["s3"].create_bucket(Bucket=TEMPLATES_BUCKET)
        clients["s3"].put_bucket_versioning(Bucket=TEMPLATES_BUCKET, VersioningConfiguration={"Status": "Enabled"})
        clients["s3"].create_bucket(Bucket=CAMPAIGNS_BUCKET)
        clients["s3"].create_bucket(Bucket=ATTACHMENTS_BUCKET)
        base = ROOT / "templates"
        for path in sorted(p for name in TEMPLATES for p in (base / name).rglob("*") if p.is_file()):
            clients["s3"].put_object(
                Bucket=TEMPLATES_BUCKET, Key=path.relative_to(base).as_posix(), Body=path.read_bytes()
            )
        clients["events"].create_event_bus(Name=BUS)
        queue_url = _capture_queue(clients["events"], clients["sqs"])
        secret_arn = clients["secretsmanager"].create_secret(
            Name="sesflow-test-unsubscribe",
            SecretString=json.dumps({"current": SECRET_CURRENT, "previous": SECRET_PREVIOUS}),
        )["ARN"]
        clients["scheduler"].create_schedule_group(Name=SCHEDULE_GROUP)
        clients["ses"].verify_domain_identity(Domain="example.com")
        env = {
            "STAGE": "test",
            "TRACKING_TABLE": TRACKING,
            "SUPPRESSION_TABLE": SUPPRESSION,
            "TEMPLATES_BUCKET": TEMPLATES_BUCKET,
            "CONFIGURATION_SET": CONFIGURATION_SET,
            "SENDER_IDENTITY": "example.com",
            "DEFAULT_FROM_ADDRESS": "no-reply@example.com",
            "EVENT_BUS_NAME": BUS,
            "UNSUBSCRIBE_SECRET_ARN": secret_arn,
            "UNSUBSCRIBE_URL": UNSUBSCRIBE_URL,
            "SCHEDULER_ROLE_ARN": SCHEDULER_ROLE_ARN,
            "SCHEDULE_GROUP": SCHEDULE_GROUP,
            "CAMPAIGNS_TABLE": CAMPAIGNS,
            "CAMPAIGNS_BUCKET": CAMPAIGNS_BUCKET,
            "ATTACHMENTS_BUCKET": ATTACHMENTS_BUCKET,
            "PLAN_WORKDIR": str(tmp_path),
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield Aws(clients, env, secret_arn, queue_url)
    _common._client.cache_clear()  # these clients talked to this mock only


@pytest.fixture
def ctx() -> LambdaContext:
    return LambdaContext()


def ses_client_error(code: str, message: str, status: int) -> Exception:
    """What botocore raises for an SES error response."""
    from botocore.exceptions import ClientError

    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "SendEmail")


def normalised(**fields: Any) -> dict[str, Any]:
    """A send request as ValidateRequest hands it on (the send and defer steps' input)."""
    from sesflow_core import request as req

    raw = {"emailId": "e-1", "template": "welcome", "to": "Ada@Example.org", "data": {"name": "Ada", "product": "Acme"}}
    raw.update(fields)
    raw = {k: v for k, v in raw.items() if v is not None}
    return req.validate(raw, identity="example.com").to_dict()
