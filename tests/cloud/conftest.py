"""The real-account suite's fixtures: the deployed stack, a run id, cleanup, status events.

    SESFLOW_CLOUD_STACK=sesflow-dev AWS_REGION=eu-west-1 make test-cloud

Every test skips, with its reason, when ``SESFLOW_CLOUD_STACK`` is unset, when boto3 finds
no AWS credentials, or when the stack cannot be described. The region is
``SESFLOW_CLOUD_REGION``, else ``AWS_REGION``, else boto3's own default (``AWS_DEFAULT_REGION``,
the profile). Sends go to the SES mailbox simulator only; every address a test uses carries
the run id as a label (``bounce+<run>-<n>@simulator.amazonses.com``), so a rerun never meets
an earlier run's suppression entries, and every test removes what it created (suppression
entries, S3 objects, a still-running execution) in a finalizer, also when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sesflow.cli.send import tracking_item
from sesflow.client import send_email
from sesflow.target import DEFAULT_REGION, Target, TargetError, stack_target

from ..helpers import EventCapture, poll

STACK_ENV = "SESFLOW_CLOUD_STACK"
REGION_ENV = "SESFLOW_CLOUD_REGION"
SIMULATOR = "simulator.amazonses.com"
EVENTS = Path(__file__).resolve().parents[2] / "events"

#: SES feedback reaches the stack in seconds, sometimes minutes: poll that long, not often
FEEDBACK_TIMEOUT = 300.0
SEND_TIMEOUT = 300.0
INTERVAL = 2.0

WELCOME_DATA = {"name": "Cloud test", "product": "sesflow"}
#: the newsletter request of events/send-newsletter.json, without its recipient
NEWSLETTER: dict[str, Any] = {
    k: v for k, v in json.loads((EVENTS / "send-newsletter.json").read_text()).items() if k != "to"
}
#: what the suite sends and therefore needs in the stack's templates bucket
TEMPLATES = ("welcome", "newsletter")
REQUIRED_OUTPUTS = (
    "SendStateMachineArn",
    "CampaignStateMachineArn",
    "EventBusName",
    "TrackingTableName",
    "SuppressionTableName",
    "TemplatesBucketName",
    "CampaignsBucketName",
    "CampaignsTableName",
    "UnsubscribeUrl",
)


# ---------------------------------------------------------------- the deployed stack (or a skip)
def cloud_region() -> str | None:
    """``SESFLOW_CLOUD_REGION``, else ``AWS_REGION``, else boto3's default region (may be None)."""
    region = os.environ.get(REGION_ENV) or os.environ.get("AWS_REGION")
    if region:
        return region
    try:
        import boto3

        return boto3.session.Session().region_name
    except Exception:  # no boto3 or a broken profile: stack_target's default applies
        return None


def missing_credentials() -> str | None:
    """Why boto3 has no credentials to offer, or None when it has some."""
    try:
        import boto3

        credentials = boto3.session.Session().get_credentials()
    except Exception as exc:  # a broken profile, a missing SSO cache, ...
        return f"boto3 cannot load AWS credentials: {exc}"
    if credentials is None:
        return (
            "boto3 finds no AWS credentials (environment, shared credentials/config file, SSO, "
            "container or instance role)"
        )
    return None


@pytest.fixture(scope="session")
def cloud() -> Target:
    """The deployed stack named by ``SESFLOW_CLOUD_STACK``; the test skips without one."""
    stack = os.environ.get(STACK_ENV)
    if not stack:
        pytest.skip(f"{STACK_ENV} is not set: name a deployed sesflow stack to run the cloud tests")
    reason = missing_credentials()
    if reason:
        pytest.skip(f"{STACK_ENV}={stack}, but {reason}")
    region = cloud_region()
    try:
        target = stack_target(stack, region)
    except TargetError as exc:
        pytest.skip(f"cannot describe the stack {stack!r} in {region or DEFAULT_REGION}: {exc.__cause__ or exc}")
    missing = [o for o in REQUIRED_OUTPUTS if o not in target.outputs]
    if missing:
        pytest.fail(
            f"stack {stack!r} has no output {', '.join(missing)}: not (fully) deployed from this "
            "template.yaml? (sam deploy)",
            pytrace=False,
        )
    s3 = target.clients.client("s3")
    bucket = target.outputs["TemplatesBucketName"]
    for name in TEMPLATES:
        try:
            s3.head_object(Bucket=bucket, Key=f"{name}/metadata.json")
        except s3.exceptions.ClientError:
            pytest.fail(
                f"template {name!r} is not in the stack's templates bucket; upload them: "
                f"aws s3 sync templates/ s3://{bucket}/",
                pytrace=False,
            )
    return target


@pytest.fixture(scope="session")
def cloud_parameters(cloud: Target) -> dict[str, str]:
    """The stack's parameter values (``ComplaintSuppressionScope``, ``SyncAccountSuppressionList``...)."""
    stack = cloud.clients.client("cloudformation").describe_stacks(StackName=cloud.stack_name)["Stacks"][0]
    return {p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue", "")) for p in stack.get("Parameters", [])}


@pytest.fixture(scope="session")
def run_id() -> str:
    """Part of every address, email id and campaign id of this run."""
    return uuid.uuid4().hex[:8]


# ---------------------------------------------------------------- cleanup
@pytest.fixture
def cleanup() -> Iterator[contextlib.ExitStack]:
    """Register undo steps with ``cleanup.callback(fn, *args)``; they run after the test,
    last registered first, also when the test fails (and all of them, even if one fails)."""
    with contextlib.ExitStack() as stack:
        yield stack


def forget_address(target: Target, address: str, account_list: bool) -> None:
    """Every item of ``address`` in the stack's suppression table (entries, soft-bounce
    counters, removal notes) and, when the stack syncs it, its SES account-level entry."""
    ddb = target.clients.client("dynamodb")
    table = target.outputs["SuppressionTableName"]
    keys = [
        {"address": i["address"], "topic": i["topic"]}
        for page in ddb.get_paginator("query").paginate(
            TableName=table,
            KeyConditionExpression="address = :a",
            ConsistentRead=True,
            ExpressionAttributeValues={":a": {"S": address}},
            ProjectionExpression="address, topic",
        )
        for i in page["Items"]
    ]
    for key in keys:
        ddb.delete_item(TableName=table, Key=key)
    if account_list:
        sesv2 = target.clients.client("sesv2")
        with contextlib.suppress(sesv2.exceptions.NotFoundException):
            sesv2.delete_suppressed_destination(EmailAddress=address)


def delete_prefix(target: Target, bucket: str, prefix: str) -> None:
    s3 = target.clients.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if objects:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})


def stop_if_running(target: Target, execution_arn: str) -> None:
    sfn = target.clients.client("stepfunctions")
    if sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING":
        sfn.stop_execution(
            executionArn=execution_arn, error="CloudTestCleanup", cause="the cloud test that started it ended"
        )


@pytest.fixture
def simulator_address(
    cloud: Target, cloud_parameters: dict[str, str], run_id: str, cleanup: contextlib.ExitStack
) -> Callable[[str], str]:
    """``simulator_address("bounce")`` -> ``bounce+<run>-<n>@simulator.amazonses.com``, unique
    to this call; its suppression entries are deleted after the test."""
    account_list = cloud_parameters.get("SyncAccountSuppressionList") == "true"

    def make(kind: str) -> str:
        address = f"{kind}+{run_id}-{uuid.uuid4().hex[:6]}@{SIMULATOR}"
        cleanup.callback(forget_address, cloud, address, account_list)
        return address

    return make


# ---------------------------------------------------------------- status events
@pytest.fixture(scope="session")
def status_capture(cloud: Target) -> Iterator[EventCapture]:
    """Every ``Email Status Changed`` event of the stack's bus during the session, through
    an SQS queue and a rule that exist only for the session (deleted at its end)."""
    bus = cloud.outputs["EventBusName"]
    capture = EventCapture(cloud.clients, bus, {"source": ["sesflow"], "detail-type": ["Email Status Changed"]})
    sqs, events = cloud.clients.client("sqs"), cloud.clients.client("events")
    queue_url = capture._url  # EventCapture names the queue and the rule alike
    name = queue_url.rstrip("/").rsplit("/", 1)[-1]
    try:
        # in AWS, EventBridge may deliver to the queue only when the queue's policy allows it
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule_arn = events.describe_rule(Name=name, EventBusName=bus)["Arn"]
        sqs.set_queue_attributes(
            QueueUrl=queue_url,
            Attributes={
                "Policy": json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sqs:SendMessage",
                                "Resource": queue_arn,
                                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                            }
                        ],
                    }
                )
            },
        )
        yield capture
    finally:
        with contextlib.ExitStack() as undo:  # every step, even if one fails
            undo.callback(sqs.delete_queue, QueueUrl=queue_url)
            undo.callback(events.delete_rule, Name=name, EventBusName=bus)
            undo.callback(events.remove_targets, Rule=name, EventBusName=bus, Ids=["q"])


def status_events(
    capture: EventCapture, email_id: str, until: Callable[[set[str]], bool], timeout: float = FEEDBACK_TIMEOUT
) -> list[dict[str, Any]]:
    """The status events of one email, once ``until(their statuses)`` holds."""

    def found() -> list[dict[str, Any]]:
        events = capture.matching(lambda e: e["detail"]["emailId"] == email_id)
        return events if until({e["detail"]["status"] for e in events}) else []

    result: list[dict[str, Any]] = poll(found, timeout, INTERVAL, what=f"status events of {email_id}")
    return result


# ---------------------------------------------------------------- sending and waiting
def send(
    target: Target,
    to: str,
    template: str = "welcome",
    data: dict[str, Any] | None = None,
    topic: str | None = None,
    email_id: str | None = None,
) -> dict[str, Any]:
    """One send through the stack's send machine: ``{emailId, status, messageId, reason}``."""
    return send_email(
        template,
        to,
        data=WELCOME_DATA if data is None else data,
        topic=topic,
        email_id=email_id or f"cloud-{uuid.uuid4().hex}",
        state_machine_arn=target.outputs["SendStateMachineArn"],
        sfn_client=target.clients.client("stepfunctions"),
        timeout=SEND_TIMEOUT,
    )


def wait_for_item(
    target: Target,
    email_id: str,
    predicate: Callable[[dict[str, Any]], Any],
    what: str,
    timeout: float = FEEDBACK_TIMEOUT,
) -> dict[str, Any]:
    """Poll the email's tracking item until ``predicate(item)``; fail with the last item seen."""
    last: dict[str, dict[str, Any] | None] = {"item": None}

    def ready() -> dict[str, Any] | None:
        item = last["item"] = tracking_item(target, email_id)
        return item if item is not None and predicate(item) else None

    try:
        found = poll(ready, timeout, INTERVAL, what=f"{email_id}: {what}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last tracking item: {last['item']!r}") from None
    assert found is not None
    return found
