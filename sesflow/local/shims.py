"""Every place where the embedded local AWS departs from moto's defaults, in one module.

The template, the ASL files and the handlers are the ones deployed to AWS. What the
emulator lacks is filled in here, and only here:

=====================================  ====================================================
gap in moto 5.2.5                      what the local runtime does
=====================================  ====================================================
Lambda runs handlers only in Docker    ``LambdaFunction.invoke`` runs the handler in a worker
                                       process (:mod:`sesflow.local.lambda_workers`) or, when
                                       all are busy or a Lambda fault rule is set, in a thread
                                       (:mod:`sesflow.local.lambda_runtime`)
CFN has no ``AWS::SES::*`` types       ``ConfigurationSet`` and ``EmailIdentity`` models
CFN has no SecretsManager::Secret      ``Secret`` model (GenerateSecretString honoured)
CFN has no SES event destinations      ``ConfigurationSetEventDestination`` model; the local
                                       SES publishes events to them (mailbox simulator)
CFN has no Lambda::Url, no function    ``Url`` model; ``/_sesflow/lambda-url/<function>/`` (server.py)
URL endpoint                           on the local endpoint invokes the function with a
                                       function-URL (payload 2.0) event
CFN has no CloudWatch::Alarm           ``Alarm`` model (PutMetricAlarm)
CFN has no SQS::QueuePolicy,           accepted and ignored (they grant AWS services'
SNS::TopicPolicy                       principals, which never call the local stack)
``Ref`` of an EventBus is no name      ``EventBus.physical_resource_id`` is its name
CFN state machines ignore              ``DefinitionSubstitutions`` applied, machines
``DefinitionSubstitutions`` and land   created in the executing (parser) backend; every
in the non-executing backend           machine runs as STANDARD (no EXPRESS history and no
                                       ``StartSyncExecution`` in the local interpreter);
                                       the declared type is kept in :data:`DECLARED_TYPES`
EventBridge rules cannot target        rule targets ``lambda`` and ``states`` are delivered
Lambda or Step Functions               with the target's retry policy and dead-letter queue
                                       (delivery failures only, as in AWS)
Asynchronous invocations (Event        :class:`_AsyncInvocations`: queued and accepted at
type, EventBridge, SNS) run at once    once; a function error is retried
and their errors are lost              ``MaximumRetryAttempts`` times (default 2), then the
                                       invocation record goes to the on-failure destination
                                       (``AWS::Lambda::EventInvokeConfig`` model) or is
                                       dropped; retry delays are scaled down (AWS: ~1, ~2 min)
DynamoDB requests are not atomic       every DynamoDB request is served under one lock
under concurrency (two conditional     (:func:`_serialize_dynamodb`): a conditional write
writes can both succeed)               has exactly one winner, as in DynamoDB
CFN has no Scheduler::ScheduleGroup;   ``ScheduleGroup`` model; :class:`_Clock` fires due
schedules never fire                   one-time ``at(...)`` schedules (Step Functions and
                                       Lambda targets) and deletes them
                                       (``ActionAfterCompletion: DELETE``)
EXPRESS machines run as STANDARD,      :class:`_Clock` times out executions of machines
unbounded                              declared EXPRESS after 300 s (Express's limit;
                                       ``SESFLOW_LOCAL_EXPRESS_LIMIT_SECONDS`` overrides)
Every execution runs at once, in one   :func:`_admit_express_executions`: at most 128
process (AWS: each on machines of its  executions of machines declared EXPRESS run at once
own): a burst makes every task slow    (``SESFLOW_LOCAL_EXPRESS_RUNNING``); the next ones
until its timeouts fire                wait to start, with an empty history, their clock
                                       running; a sleeping one (Retry backoff, Wait) lends
                                       its slot
moto enforces IAM for all callers or   :mod:`sesflow.local.iam`: each function, state
none, checks ARNs only for SQS/IAM/    machine and EventBridge target acts with its role;
STS, cannot read CloudFormation        requests signed by a role are evaluated (actions,
roles' inline policies                 ARNs, conditions); other keys keep full access
A Distributed Map's ResultWriter       :func:`_result_writer_reads_the_map_input`
reads its paths from the last child;   (paths read the Map state's input, as in AWS);
failed children never fail the Map     :func:`_check_tolerated_failures`: past
(ToleratedFailurePercentage ignored)   ``ToleratedFailurePercentage`` the Map fails with
                                       ``States.ExceedToleratedFailureThreshold``
No payload limits: state data and      :func:`_enforce_payload_limits`: a state result or
Map results of any size, Lambda         output over 256 KiB fails with
payloads of any size                    ``States.DataLimitExceeded``, which ``States.ALL``
                                       does not catch (as in AWS); Lambda requests over
                                       6 MB (256 KiB asynchronous) are refused with
                                       ``RequestEntityTooLargeException``
SES v2 ignores configuration sets,     :mod:`sesflow.local.ses`: outbox ``.eml`` files,
tags, sending rate; has no pause,      ``TooManyRequestsException`` above the set rate,
GetAccount                             configuration-set and account pause, GetAccount
An in-process handler that timed out   :mod:`sesflow.local.lambda_runtime`: an ended
runs on (a thread cannot be stopped)   invocation's further AWS calls raise
                                       ``InvocationEnded`` (AWS freezes the sandbox)
No fault injection                     :mod:`sesflow.local.faults`, a seeded fault plan
                                       (``POST /_sesflow/faults``, off by default): SES
                                       SendEmail throttled, 5xx, accepted-then-failed
                                       (:mod:`.ses`); Lambda invocations crash
                                       (``Runtime.ExitError``) or time out around an AWS
                                       call (``lambda_runtime.CALL_HOOK``); DynamoDB
                                       throttled in bursts (:func:`_dynamodb_fault`);
                                       EventBridge deliveries duplicated and delayed
                                       (:meth:`_TargetDelivery.submit`); one-time schedules
                                       fired twice (:class:`_Clock`)
=====================================  ====================================================

Speed only, nothing an AWS client can observe: :func:`_parse_each_definition_once` (ASL and
JSONPath), :func:`_lighter_dynamodb_writes` (update expressions parsed once, their shape
checked once, their trees copied by hand), :func:`_faster_expression_traversal`,
:func:`_index_executions`, :func:`_load_each_service_model_once` (moto's models and routers,
once per service), :func:`_dispatch_without_rescanning_moto`,
:func:`_sqs_retention_without_rescanning`; and in ``server.py`` the
collector's thresholds (``_collect_less_often``).
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaFunction
from moto.cloudformation import parsing as cfn_parsing
from moto.core.common_models import CloudFormationModel
from moto.events.models import EventBus, Rule
from moto.stepfunctions.models import StateMachine
from moto.stepfunctions.responses import get_backend as get_sfn_backend

from . import faults, lambda_runtime, ses
from . import iam as local_iam

log = logging.getLogger("sesflow.local")

#: state machine ARN -> the workflow type the template declared (STANDARD or EXPRESS)
DECLARED_TYPES: dict[str, str] = {}

#: where function code lives: S3 key of the artifact -> folder on disk
_CODE_ROOT: dict[str, Path] = {}


def set_project_root(root: Path, artifacts_bucket: str) -> None:
    _CODE_ROOT["root"] = root
    _CODE_ROOT["bucket"] = Path(artifacts_bucket)


# ---------------------------------------------------------------- Lambda in-process
def function_spec(fn: LambdaFunction) -> lambda_runtime.FunctionSpec:
    code = fn.code or {}
    key = code.get("S3Key")
    if not key or "root" not in _CODE_ROOT:
        raise RuntimeError(
            f"Function {fn.function_name} has no local code location (S3Key); deploy it with `sesflow local up`"
        )
    return lambda_runtime.FunctionSpec(
        function_name=fn.function_name,
        function_arn=fn.function_arn,
        code_dir=(_CODE_ROOT["root"] / key).resolve(),
        handler=fn.handler,
        environment={k: str(v) for k, v in (fn.environment_vars or {}).items()},
        timeout=float(fn.timeout or 3),
        memory_mb=int(fn.memory_size or 128),
        credentials=local_iam.function_credentials(fn.role, fn.function_name),
    )


def _invoke_in_process(self: LambdaFunction, body: Any, request_headers: Any, response_headers: Any) -> bytes:
    asynchronous = (request_headers or {}).get("X-Amz-Invocation-Type") == "Event"
    _check_lambda_request(body, asynchronous)
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    event = json.loads(body) if body else {}
    if asynchronous:
        assert ASYNC is not None
        ASYNC.submit(self, event)
        return b""
    result = lambda_runtime.invoke(function_spec(self), event)
    if result.failed:
        response_headers["x-amz-function-error"] = "Unhandled"
        log.info("lambda %s failed: %s", self.function_name, result.error_type)
    response_headers["x-amz-executed-version"] = "$LATEST"
    return result.payload_bytes()


# ---------------------------------------------------------------- CloudFormation: missing types
class _LocalResource(CloudFormationModel):
    """A resource type moto's CloudFormation lacks; each one is made by a function below."""

    TYPE = "Custom::SesflowLocalResource"
    NAME_PROPERTY = ""
    create_fn: Any = None

    def __init__(self, physical_id: str, attributes: dict[str, str]) -> None:
        self._id = physical_id
        self._attributes = attributes

    @classmethod
    def cloudformation_type(cls) -> str:  # type: ignore[override]
        return cls.TYPE

    @classmethod
    def cloudformation_name_type(cls) -> str:  # type: ignore[override]
        return cls.NAME_PROPERTY

    @property
    def physical_resource_id(self) -> str:
        return self._id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return True

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self._attributes.get(attribute_name, self._id)

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> _LocalResource:
        created = cls.create_fn(resource_name, cloudformation_json.get("Properties", {}), account_id, region_name)
        physical_id, attributes = created if isinstance(created, tuple) else (created, {})
        return cls(physical_id, attributes)

    @classmethod
    def delete_from_cloudformation_json(  # type: ignore[override]
        cls, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
    ) -> None:
        return None


#: CloudFormation type -> model, registered with moto's CloudFormation by :func:`install`
LOCAL_TYPES: dict[str, type[_LocalResource]] = {}


def _local_type(type_name: str, name_property: str = "") -> Any:
    def register(fn: Any) -> Any:
        LOCAL_TYPES[type_name] = type(
            f"_Local_{type_name.replace('::', '_')}",
            (_LocalResource,),
            {"TYPE": type_name, "NAME_PROPERTY": name_property, "create_fn": staticmethod(fn)},
        )
        return fn

    return register


@_local_type("AWS::SES::ConfigurationSet", "Name")
def _configuration_set(name: str, props: dict[str, Any], account: str, region: str) -> str:
    from moto.sesv2.models import sesv2_backends

    sesv2_backends[account][region].create_configuration_set(
        configuration_set_name=name,
        tracking_options=props.get("TrackingOptions", {}),
        delivery_options=props.get("DeliveryOptions", {}),
        reputation_options=props.get("ReputationOptions", {}),
        sending_options=props.get("SendingOptions", {}),
        tags=props.get("Tags", []),
        suppression_options=props.get("SuppressionOptions", {}),
        vdm_options=props.get("VdmOptions", {}),
    )
    return name


@_local_type("AWS::SES::EmailIdentity", "EmailIdentity")
def _email_identity(name: str, props: dict[str, Any], account: str, region: str) -> str:
    ses.verify_identity(account, region, name)
    return name


@_local_type("AWS::SES::ConfigurationSetEventDestination")
def _event_destination(name: str, props: dict[str, Any], account: str, region: str) -> str:
    dest = props["EventDestination"]
    ses.add_event_destination(props["ConfigurationSetName"], dest)
    return f"{props['ConfigurationSetName']}|{dest.get('Name', name)}"


@_local_type("AWS::SecretsManager::Secret", "Name")
def _secret(name: str, props: dict[str, Any], account: str, region: str) -> str:
    import secrets as pysecrets

    from moto.secretsmanager.models import secretsmanager_backends

    value = props.get("SecretString")
    gen = props.get("GenerateSecretString")
    if value is None and gen is not None:
        generated = pysecrets.token_urlsafe(int(gen.get("PasswordLength", 32)))
        if gen.get("SecretStringTemplate") and gen.get("GenerateStringKey"):
            doc = json.loads(gen["SecretStringTemplate"])
            doc[gen["GenerateStringKey"]] = generated
            value = json.dumps(doc)
        else:
            value = generated
    result = secretsmanager_backends[account][region].create_secret(
        name=name,
        secret_string=value,
        secret_binary=None,
        description=props.get("Description"),
        tags=props.get("Tags", []),
        kms_key_id=None,
        client_request_token=None,
        replica_regions=[],
        force_overwrite=False,
    )
    return str(json.loads(result)["ARN"])


@_local_type("AWS::Lambda::Url")
def _function_url(name: str, props: dict[str, Any], account: str, region: str) -> tuple[str, dict[str, str]]:
    target = str(props["TargetFunctionArn"])
    function = target.rsplit(":", 1)[-1] if target.startswith("arn:") else target
    url = f"http://127.0.0.1:{os.environ['MOTO_PORT']}/_sesflow/lambda-url/{function}/"
    return url, {"FunctionUrl": url, "FunctionArn": target}


@_local_type("AWS::CloudWatch::Alarm", "AlarmName")
def _alarm(name: str, props: dict[str, Any], account: str, region: str) -> str:
    props = {k: v for k, v in props.items() if k != "AlarmName"}
    for key in ("Threshold",):
        if key in props:
            props[key] = float(props[key])
    for key in ("EvaluationPeriods", "DatapointsToAlarm", "Period"):
        if key in props:
            props[key] = int(props[key])
    for metric in props.get("Metrics", []):
        if "MetricStat" in metric:
            metric["MetricStat"]["Period"] = int(metric["MetricStat"]["Period"])
        if "ReturnData" in metric:
            metric["ReturnData"] = str(metric["ReturnData"]).lower() == "true"
    ses.local_client("cloudwatch", region).put_metric_alarm(AlarmName=name, **props)
    return name


@_local_type("AWS::Lambda::EventInvokeConfig")
def _event_invoke_config(name: str, props: dict[str, Any], account: str, region: str) -> str:
    from moto.awslambda.models import lambda_backends

    config: dict[str, Any] = {k: props[k] for k in ("DestinationConfig",) if k in props}
    for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if key in props:
            config[key] = int(props[key])
    function = str(props["FunctionName"])
    lambda_backends[account][region].put_function_event_invoke_config(function, config)
    return f"{function}|{props.get('Qualifier', '$LATEST')}"


@_local_type("AWS::Scheduler::ScheduleGroup", "Name")
def _schedule_group(name: str, props: dict[str, Any], account: str, region: str) -> tuple[str, dict[str, str]]:
    from moto.scheduler.models import scheduler_backends

    group = scheduler_backends[account][region].create_schedule_group(name=name, tags=[])
    return name, {"Arn": group.arn}


@_local_type("AWS::SQS::QueuePolicy")
def _queue_policy(name: str, props: dict[str, Any], account: str, region: str) -> str:
    return name  # resource policies of AWS services' principals: nothing calls locally as them


@_local_type("AWS::SNS::TopicPolicy")
def _topic_policy(name: str, props: dict[str, Any], account: str, region: str) -> str:
    return name  # as above


# ---------------------------------------------------------------- CloudFormation: SFN
def apply_substitutions(definition: str, substitutions: dict[str, Any]) -> str:
    """Replace ``${Name}`` placeholders as CloudFormation's DefinitionSubstitutions does."""
    for key, value in (substitutions or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    return definition


def _create_state_machine(
    cls: type[StateMachine],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> StateMachine:
    props = cloudformation_json["Properties"]
    name = props.get("StateMachineName", resource_name)
    definition = apply_substitutions(props.get("DefinitionString", ""), props.get("DefinitionSubstitutions", {}))
    backend = get_sfn_backend(account_id, region_name)
    machine = backend.create_state_machine(
        name,
        definition,
        props.get("RoleArn", ""),
        tags=[{"key": t["Key"], "value": t["Value"]} for t in props.get("Tags", [])],
        loggingConfiguration=props.get("LoggingConfiguration"),
        tracingConfiguration=props.get("TracingConfiguration"),
        sm_type="STANDARD",
    )
    DECLARED_TYPES[machine.arn] = str(props.get("StateMachineType", "STANDARD"))
    return machine


def _delete_state_machine(
    cls: type[StateMachine],
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
) -> None:
    backend = get_sfn_backend(account_id, region_name)
    for machine in list(backend.state_machines):
        if resource_name in (machine.arn, machine.name):
            backend.delete_state_machine(machine.arn)


# ---------------------------------------------------------------- EventBridge targets
class _TargetDelivery:
    """Deliver events to Lambda and Step Functions targets off the request thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[dict[str, Any], dict[str, Any]]] = queue.Queue()
        self._pending = 0
        self._lock = threading.Condition()
        self._later: list[tuple[float, int, dict[str, Any], dict[str, Any]]] = []
        self._seq = itertools.count()
        for i in range(4):
            threading.Thread(target=self._run, name=f"events-delivery-{i}", daemon=True).start()
        threading.Thread(target=self._release_later, name="events-delivery-later", daemon=True).start()

    def submit(self, target: dict[str, Any], event: dict[str, Any], detail_type: str = "") -> None:
        delays = faults.delivery_delays(str(target["Arn"]), detail_type)
        with self._lock:
            self._pending += len(delays)
            for delay in delays:
                if delay <= 0:
                    self._queue.put((target, event))
                else:  # due later: events overtake each other (fault plan)
                    heapq.heappush(self._later, (time.monotonic() + delay, next(self._seq), target, event))
                    self._lock.notify_all()

    def _release_later(self) -> None:
        """Move delayed deliveries to the queue when due."""
        while True:
            with self._lock:
                while not self._later or self._later[0][0] > time.monotonic():
                    self._lock.wait(None if not self._later else self._later[0][0] - time.monotonic())
                _, _, target, event = heapq.heappop(self._later)
            self._queue.put((target, event))

    @property
    def pending(self) -> int:
        """Events submitted and not yet delivered (or dead-lettered)."""
        with self._lock:
            return self._pending

    def idle(self, timeout: float = 30.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            target, event = self._queue.get()
            try:
                self._deliver(target, event)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._lock.notify_all()

    def _deliver(self, target: dict[str, Any], event: dict[str, Any]) -> None:
        arn: str = target["Arn"]
        region = arn.split(":")[3]
        attempts = 1 + int(target.get("RetryPolicy", {}).get("MaximumRetryAttempts", 2))
        error = ""
        for _ in range(max(1, attempts)):
            try:
                if ":lambda:" in arn:
                    # EventBridge invokes asynchronously: delivery succeeds once Lambda has
                    # queued the event; the function's errors are Lambda's to retry (they never
                    # reach this rule's dead-letter queue)
                    from moto.awslambda.models import lambda_backends

                    account = arn.split(":")[4]
                    fn = lambda_backends[account][region].get_function(arn)
                    assert ASYNC is not None
                    ASYNC.submit(fn, json.loads(json.dumps(event)))
                elif ":states:" in arn:
                    import uuid

                    local_iam.client_as(target.get("RoleArn"), "stepfunctions", region).start_execution(
                        stateMachineArn=arn, name=str(uuid.uuid4()), input=json.dumps(event)
                    )
                return
            except Exception as exc:
                error = str(exc)
        dlq = target.get("DeadLetterConfig", {}).get("Arn")
        log.warning("event delivery to %s failed after %d attempts", arn, attempts)
        if dlq:
            ses.local_client("sqs", dlq.split(":")[3]).send_message(
                QueueUrl=ses.queue_url_from_arn(dlq),
                MessageBody=json.dumps(event),
                MessageAttributes={
                    "ERROR_MESSAGE": {"DataType": "String", "StringValue": error[:1000] or "?"},
                    "RULE_ARN": {"DataType": "String", "StringValue": arn},
                },
            )


DELIVERY: _TargetDelivery | None = None

#: seconds before the 1st and 2nd retry of a failed asynchronous invocation (AWS waits about
#: one and two minutes; the local stack keeps the count and the order, not the minutes)
ASYNC_RETRY_DELAYS = (0.2, 0.5)


class _AsyncInvocations:
    """Lambda's asynchronous invocation: an internal queue, retries, on-failure destination."""

    def __init__(self, workers: int = 4) -> None:
        self._heap: list[tuple[float, int, Any, Any, int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._pending = 0
        for i in range(workers):
            threading.Thread(target=self._run, name=f"lambda-async-{i}", daemon=True).start()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    def submit(self, fn: LambdaFunction, event: Any) -> None:
        with self._cond:
            self._pending += 1
            self._push(fn, event, 1, 0.0)

    def _push(self, fn: LambdaFunction, event: Any, attempt: int, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn, event, attempt))
        self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic()))
                _, _, fn, event, attempt = heapq.heappop(self._heap)
            try:
                result = lambda_runtime.invoke(function_spec(fn), event)
            except Exception as exc:  # no code location etc.: a failed attempt too
                result = lambda_runtime.InvokeResult(
                    {"errorType": type(exc).__name__, "errorMessage": str(exc)}, error_type=type(exc).__name__
                )
            config = fn.event_invoke_config[0].config if fn.event_invoke_config else {}
            retries = int(config.get("MaximumRetryAttempts", 2))
            with self._cond:
                if result.failed and attempt <= retries:
                    delay = ASYNC_RETRY_DELAYS[min(attempt, len(ASYNC_RETRY_DELAYS)) - 1]
                    self._push(fn, event, attempt + 1, delay)
                    continue
            try:
                if result.failed:
                    self._on_failure(fn, config, event, result, attempt)
            finally:
                with self._cond:
                    self._pending -= 1

    @staticmethod
    def _on_failure(
        fn: LambdaFunction, config: dict[str, Any], event: Any, result: lambda_runtime.InvokeResult, attempts: int
    ) -> None:
        destination = config.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if not destination:
            log.warning(
                "async invocation of %s failed %d times and has no on-failure destination: dropped",
                fn.function_name,
                attempts,
            )
            return
        record = {
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{fn.function_arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": result.payload,
        }
        region = destination.split(":")[3]
        body = json.dumps(record, default=str)
        if ":sqs:" in destination:
            ses.local_client("sqs", region).send_message(QueueUrl=ses.queue_url_from_arn(destination), MessageBody=body)
        elif ":sns:" in destination:
            ses.local_client("sns", region).publish(TopicArn=destination, Message=body)
        elif ":events:" in destination:
            ses.local_client("events", region).put_events(
                Entries=[
                    {
                        "EventBusName": destination,
                        "Source": "lambda",
                        "DetailType": "Lambda Function Invocation Result - Failure",
                        "Detail": body,
                    }
                ]
            )
        else:
            log.warning("on-failure destination %s of %s is not supported locally", destination, fn.function_name)


ASYNC: _AsyncInvocations | None = None


def _send_sns_message(
    self: Any, function_name: str, message: str, subject: str | None = None, qualifier: str | None = None
) -> None:
    """SNS invokes Lambda asynchronously (the same queue, retries and destination)."""
    event = {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSource": "aws:sns",
                "EventSubscriptionArn": "arn:aws:sns:local",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": str(uuid.uuid4()),
                    "Message": message,
                    "Subject": subject,
                    "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                    "TopicArn": "arn:aws:sns:local",
                    "SignatureVersion": "1",
                    "MessageAttributes": {},
                },
            }
        ]
    }
    fn = self._lambdas.get_function_by_name_or_arn_with_qualifier(function_name, qualifier)
    assert ASYNC is not None
    ASYNC.submit(fn, event)


# ---------------------------------------------------------------- SQS event sources
class _SqsPollers:
    """Lambda's SQS poller, one thread per event source mapping: receive (SQS's own delays,
    visibility timeouts and redrive apply), invoke the function synchronously, delete what
    succeeded — all of the batch, or (``ReportBatchItemFailures``) all but the reported items;
    a function error deletes nothing (the batch comes back after its visibility timeout).
    moto's own mapping invokes once, when a message is sent, and never again: no delayed
    message, no retry, no partial failure would ever run."""

    def __init__(self) -> None:
        self._busy = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    def start(self, esm: Any) -> None:
        threading.Thread(target=self._run, args=(esm,), name=f"sqs-poller-{esm.uuid[:8]}", daemon=True).start()

    @staticmethod
    def _record(message: dict[str, Any], arn: str) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": arn.split(":")[3],
        }

    def _run(self, esm: Any) -> None:
        from moto.awslambda.models import lambda_backends

        arn = str(esm.event_source_arn)
        sqs = ses.local_client("sqs", esm.region)
        url = ses.queue_url_from_arn(arn)
        partial = "ReportBatchItemFailures" in (esm.function_response_types or [])
        while True:
            try:
                fn = lambda_backends[esm.account_id][esm.region].get_function(esm.function_arn)
                if str(esm.enabled).lower() == "false":
                    time.sleep(1)
                    continue
                messages = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(10, int(esm.batch_size or 10)),
                    WaitTimeSeconds=1,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception as exc:  # the queue or the function is gone (stack deleted)
                log.info("sqs poller for %s stops: %s", arn, exc)
                return
            if not messages:
                continue
            with self._lock:
                self._busy += 1
            try:
                event = {"Records": [self._record(m, arn) for m in messages]}
                result = lambda_runtime.invoke(function_spec(fn), event)
                if result.failed:
                    continue
                payload = result.payload if isinstance(result.payload, dict) else {}
                failed = (
                    {str(f.get("itemIdentifier")) for f in payload.get("batchItemFailures") or []} if partial else set()
                )
                done = [
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                    if m["MessageId"] not in failed
                ]
                if done:
                    sqs.delete_message_batch(QueueUrl=url, Entries=done)
            finally:
                with self._lock:
                    self._busy -= 1


POLLERS: _SqsPollers | None = None
_ORIGINAL_CREATE_ESM: Any = None


def _create_event_source_mapping(self: Any, spec: dict[str, Any]) -> Any:
    esm = _ORIGINAL_CREATE_ESM(self, spec)
    if ":sqs:" in str(esm.event_source_arn):
        from moto.sqs.models import sqs_backends

        for q in sqs_backends[self.account_id][self.region_name].queues.values():
            if q.queue_arn == esm.event_source_arn:
                q.lambda_event_source_mappings.pop(esm.function_arn, None)  # ours polls instead
        assert POLLERS is not None
        POLLERS.start(esm)
    return esm


def _send_to_targets(self: Rule, original_event: dict[str, Any], transform_input: bool = True) -> None:
    if not self.event_pattern.matches_event(original_event):
        return
    handled = [t for t in self.targets if ":lambda:" in t["Arn"] or ":states:" in t["Arn"]]
    others = [t for t in self.targets if t not in handled]
    assert DELIVERY is not None
    for target in handled:
        event = original_event
        if target.get("Input"):
            event = json.loads(target["Input"])
        elif target.get("InputPath"):
            event = _json_path(original_event, target["InputPath"])
        DELIVERY.submit(target, event, str(original_event.get("detail-type", "")))
    if others:
        saved = self.targets
        self.targets = others
        try:
            _ORIGINAL_SEND_TO_TARGETS(self, original_event, transform_input)
        finally:
            self.targets = saved


_ORIGINAL_SEND_TO_TARGETS = Rule.send_to_targets


def _json_path(doc: Any, path: str) -> Any:
    """The dotted subset of JSONPath that EventBridge ``InputPath`` uses (``$.detail``)."""
    for part in [p for p in path.lstrip("$").split(".") if p]:
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


# ---------------------------------------------------------------- time: schedules, Express limit
EXPRESS_LIMIT_SECONDS = 300.0


class _Clock:
    """What AWS does as time passes, which moto does not: fire due one-time schedules of
    EventBridge Scheduler, and time out EXPRESS executions past Express's limit."""

    def __init__(self, tick: float = 0.1) -> None:
        self.tick = tick
        self.express_limit = float(os.environ.get("SESFLOW_LOCAL_EXPRESS_LIMIT_SECONDS", EXPRESS_LIMIT_SECONDS))
        #: per machine: the index of its oldest execution that may still run (executions are
        #: appended in start order; every tick looks from there on, not at all of them)
        self._oldest_running: dict[str, int] = {}
        threading.Thread(target=self._run, name="local-clock", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            for job in (self._fire_schedules, self._time_out_express):
                try:
                    job()
                except Exception:  # the clock must keep ticking
                    log.exception("local clock: %s failed", job.__name__)

    @staticmethod
    def _due(expression: str, now: float) -> bool:
        import calendar

        if not expression.startswith("at(") or not expression.endswith(")"):
            return False  # rate() and cron() schedules are not used by the stack
        at = calendar.timegm(time.strptime(expression[3:-1], "%Y-%m-%dT%H:%M:%S"))
        return at <= now

    def _fire_schedules(self) -> None:
        from moto.scheduler.models import scheduler_backends

        now = time.time()
        for _account, regions in list(scheduler_backends.items()):
            for region, backend in list(regions.items()):
                for group in list(backend.schedule_groups.values()):
                    for schedule in list(group.schedules.values()):
                        if (
                            schedule.state != "ENABLED"
                            or getattr(schedule, "_sesflow_fired", False)
                            or not self._due(schedule.schedule_expression, now)
                        ):
                            continue
                        schedule._sesflow_fired = True
                        for _ in range(faults.schedule_copies(str(schedule.target["Arn"]))):
                            self._invoke_target(region, schedule.target)
                        if schedule.action_after_completion == "DELETE":
                            group.schedules.pop(schedule.name, None)

    @staticmethod
    def _invoke_target(region: str, target: dict[str, Any]) -> None:
        arn = str(target["Arn"])
        if ":states:" in arn and ":stateMachine:" in arn:
            ses.local_client("stepfunctions", region).start_execution(
                stateMachineArn=arn, name=str(uuid.uuid4()), input=target.get("Input") or "{}"
            )
        elif ":lambda:" in arn:
            ses.local_client("lambda", region).invoke(
                FunctionName=arn, InvocationType="Event", Payload=(target.get("Input") or "{}").encode()
            )
        else:
            log.warning("schedule target %s is not supported locally", arn)

    def _time_out_express(self) -> None:
        import datetime

        from moto.stepfunctions.parser.api import ExecutionStatus
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        express = {arn for arn, kind in DECLARED_TYPES.items() if kind == "EXPRESS"}
        if not express:
            return
        now = datetime.datetime.now(tz=datetime.UTC)
        for _, regions in list(stepfunctions_parser_backends.items()):
            for _, backend in list(regions.items()):
                for machine in list(backend.state_machines):
                    if machine.arn not in express:
                        continue
                    runs = list(machine.executions)
                    start = self._oldest_running.get(machine.arn, 0)
                    if start > len(runs):
                        start = 0
                    while start < len(runs) and runs[start].exec_status != ExecutionStatus.RUNNING:
                        start += 1
                    self._oldest_running[machine.arn] = start
                    for ex in runs[start:]:
                        if ex.exec_status != ExecutionStatus.RUNNING or ex.exec_worker is None:
                            continue
                        if ex.exec_worker.env is None:  # waiting to run (_admit_express_executions)
                            continue  # timed out on the first tick after it starts: its clock runs
                        if (now - ex.start_date).total_seconds() > self.express_limit:
                            log.warning(
                                "EXPRESS execution %s ran past %.0f s: timed out", ex.exec_arn, self.express_limit
                            )
                            ex.exec_worker.env.set_timed_out()
                            ex.exec_status, ex.stop_date = ExecutionStatus.TIMED_OUT, now


CLOCK: _Clock | None = None

#: EXPRESS executions that run at once; more wait to start (``SESFLOW_LOCAL_EXPRESS_RUNNING``)
EXPRESS_RUNNING = 128


class _Slots:
    """Running slots for EXPRESS executions. An execution gives its slot back while it sleeps
    (a Retry's backoff, a Wait state) and takes one again before it goes on; one that goes on
    comes before those that have not started, so started work finishes first."""

    def __init__(self, slots: int) -> None:
        lock = threading.Lock()
        self._free = slots
        self._resuming = 0
        self._starts = threading.Condition(lock)
        self._resumes = threading.Condition(lock)

    def acquire(self, resuming: bool = False) -> None:
        with self._starts:
            if resuming:
                self._resuming += 1
                while self._free == 0:
                    self._resumes.wait()
                self._resuming -= 1
            else:
                while self._free == 0 or self._resuming:
                    self._starts.wait()
            self._free -= 1
            self._wake_next()

    def release(self) -> None:
        with self._starts:
            self._free += 1
            self._wake_next()

    def _wake_next(self) -> None:
        if self._free > 0:
            (self._resumes if self._resuming else self._starts).notify()

    def sleeping(self, env: Any, sleep: Any, *args: Any) -> Any:
        """``sleep(*args)`` without the slot of ``env``'s execution, if it holds one (the
        program runs in a thread of its own: the slot goes with its environment)."""
        if not getattr(env, "sesflow_slot", False):
            return sleep(*args)
        self.release()
        try:
            return sleep(*args)
        finally:
            self.acquire(resuming=True)


def _timed_out_stays_timed_out() -> None:
    """The clock ends an EXPRESS execution past its limit with ``set_timed_out`` (the program
    state every frame sees). moto's ``set_error`` replaces whatever state the program is in,
    while ``set_ended`` and ``set_stop`` leave an ended one alone, so a task that failed as the
    limit passed (a Retry cut short) turned the execution ``FAILED``: in AWS the time-out is
    final. Checked under the environment's own re-entrant lock, as moto's setters are."""
    from moto.stepfunctions.parser.asl.eval.environment import Environment
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramTimedOut

    set_error = Environment.set_error

    def set_error_unless_timed_out(self: Any, error: Any) -> None:
        with self._state_mutex:
            if not isinstance(self._program_state, ProgramTimedOut):
                set_error(self, error)

    Environment.set_error = set_error_unless_timed_out  # type: ignore[method-assign]


def _admit_express_executions() -> None:
    """AWS runs every Express execution at once, each state on machines of its own. Here they
    share one process: a burst of 600 executions all running made each one's task take many
    times its CPU (the interpreter shares out the process), until Lambda and task timeouts
    fired and their retries added more of the same (seen: 164 of a 300-email burst failed
    once moto answered requests faster). So at most ``EXPRESS_RUNNING`` executions of machines
    declared EXPRESS run (:class:`_Slots`); the next ones wait before their first event
    (first come, first served). An execution that sleeps (Retry backoff, Wait) lends its slot
    meanwhile. The clock of one that waits runs (the 300 s limit counts from the start, a
    stricter reading than AWS's); its history is empty, as moto shows an execution not yet
    started. STANDARD executions (the campaign parent and its Map children, which run inside
    it) take no slot, so nothing waits on a held execution."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    slots = _Slots(int(os.environ.get("SESFLOW_LOCAL_EXPRESS_RUNNING", EXPRESS_RUNNING)))
    logic = ExecutionWorker._execution_logic

    environment = ExecutionWorker._get_evaluation_environment

    def express(worker: Any) -> bool:
        return DECLARED_TYPES.get(worker._evaluation_details.state_machine_details.arn) == "EXPRESS"

    def admitted(self: Any) -> None:
        if not express(self):
            logic(self)
            return
        slots.acquire()
        try:
            logic(self)
        finally:
            slots.release()

    def environment_with_slot(self: Any) -> Any:
        env = environment(self)
        env.sesflow_slot = express(self)
        return env

    lending = threading.local()  # the environment whose retrier sleeps on this thread

    class _Time:  # the retrier's ``time``: its only use is ``time.sleep(interval)``
        @staticmethod
        def sleep(seconds: float) -> None:
            slots.sleeping(getattr(lending, "env", None), time.sleep, seconds)

    retrier_body = retrier_decl.RetrierDecl._eval_body

    def retrier_lending(self: Any, env: Any) -> None:
        lending.env = env
        try:
            retrier_body(self, env)
        finally:
            lending.env = None

    wait_interval = WaitFunction._wait_interval

    def wait_without_slot(self: Any, env: Any, wait_seconds: int) -> None:
        slots.sleeping(env, wait_interval, self, env, wait_seconds)

    ExecutionWorker._execution_logic = admitted  # type: ignore[method-assign]
    ExecutionWorker._get_evaluation_environment = environment_with_slot  # type: ignore[method-assign]
    retrier_decl.time = _Time  # type: ignore[assignment]
    retrier_decl.RetrierDecl._eval_body = retrier_lending  # type: ignore[method-assign]
    WaitFunction._wait_interval = wait_without_slot  # type: ignore[method-assign]


# ---------------------------------------------------------------- payload limits
STATE_PAYLOAD_LIMIT = 256 * 1024  # bytes of UTF-8 JSON: state input/output, task and Map results
LAMBDA_SYNC_REQUEST_LIMIT = 6 * 1024 * 1024
LAMBDA_ASYNC_REQUEST_LIMIT = 256 * 1024


def _payload_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _states_failure(env: Any, error: Any, event_type: Any, cause: str) -> Exception:
    """A ``States.*`` failure raised inside moto's interpreter (its history records it)."""
    from moto.stepfunctions.parser.api import TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    details = EventDetails(taskFailedEventDetails=TaskFailedEventDetails(error=error.to_name(), cause=cause))
    return FailureEventException(
        failure_event=FailureEvent(
            env=env, error_name=StatesErrorName(typ=error), event_type=event_type, event_details=details
        )
    )


def _enforce_payload_limits() -> None:
    """Step Functions' 256 KiB limit on every state's result and output, and its rule that
    ``States.ALL`` does not catch ``States.DataLimitExceeded`` (a terminal error)."""
    from moto.stepfunctions.parser.api import HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import ErrorEqualsDecl
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.common.path.result_path import ResultPath

    limit_error = StatesErrorNameType.StatesStatesDataLimitExceeded

    def check(env: Any, value: Any, what: str) -> None:
        size = _payload_size(value)
        if size <= STATE_PAYLOAD_LIMIT:
            return
        cause = (
            f"The state/task '{env.next_state_name}' returned a {what} with a size exceeding the maximum "
            f"number of bytes service limit ({size} > {STATE_PAYLOAD_LIMIT})."
        )
        raise _states_failure(env, limit_error, HistoryEventType.TaskFailed, cause)

    original_result_path = ResultPath._eval_body

    def result_path(self: ResultPath, env: Any) -> None:
        if env.stack:
            check(env, env.stack[-1], "result")  # a task's result, a Map's results (even when discarded)
        original_result_path(self, env)
        check(env, env.stack[-1], "output")

    ResultPath._eval_body = result_path  # type: ignore[method-assign]

    original_error_equals = ErrorEqualsDecl._eval_body

    def error_equals(self: ErrorEqualsDecl, env: Any) -> None:
        error_name = env.stack[-1]
        if (
            ErrorEqualsDecl._STATE_ALL_ERROR in self.error_names
            and isinstance(error_name, StatesErrorName)
            and error_name.typ == limit_error
        ):
            env.stack.pop()
            env.stack.append(False)  # terminal: only an explicit States.DataLimitExceeded matches
            return
        original_error_equals(self, env)

    ErrorEqualsDecl._eval_body = error_equals  # type: ignore[method-assign]


def _check_tolerated_failures(env: Any, run: Any) -> None:
    """A Distributed Map run fails with ``States.ExceedToleratedFailureThreshold`` when more
    children failed than ``ToleratedFailurePercentage``/``Count`` allow (0 by default), as in
    AWS; moto counts the failures and lets the Map succeed."""
    from moto.stepfunctions.parser.api import HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )

    total = run.item_counter.total.get()
    failed = run.item_counter.failed.get() + run.item_counter.timed_out.get()
    if not total or not failed:
        return
    percentage = float(run.tolerated_failure_percentage or 0)
    count = run.tolerated_failure_count
    if failed <= (count or 0) or 100.0 * failed / total <= percentage:
        return
    error = StatesErrorNameType.StatesExceedToleratedFailureThreshold
    cause = f"The specified tolerated failure threshold was exceeded ({failed} of {total} items failed)"
    raise _states_failure(env, error, HistoryEventType.MapRunFailed, cause)


def _result_writer_reads_the_map_input() -> None:
    """A Distributed Map's ``ResultWriter`` parameters are paths into the Map state's input
    (AWS); moto evaluates them after the iteration, against whatever input the last child
    left, so ``$.bucket`` is not found. Evaluate them against the Map's own input."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.result_writer_decl import (
        ResultWriter,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap

    original_execution = StateMap._eval_execution
    original_writer = ResultWriter._eval_body

    def eval_execution(self: StateMap, env: Any) -> None:
        env._sesflow_map_input = env.states.get_input()
        runs_before = len(env.map_run_record_pool_manager.get_all())
        original_execution(self, env)
        runs = env.map_run_record_pool_manager.get_all()
        if len(runs) > runs_before:
            _check_tolerated_failures(env, runs[-1])

    def eval_writer(self: ResultWriter, env: Any) -> None:
        map_input = getattr(env, "_sesflow_map_input", None)
        if map_input is None:
            return original_writer(self, env)
        env.stack.append(map_input)  # the paths read the top of the stack
        self.parargs.eval(env=env)
        parameters = env.stack.pop()
        env.stack.pop()
        env.stack.append(parameters)  # above the results, as the S3 writer expects
        self.resource_eval.eval_resource(env=env)
        return None

    StateMap._eval_execution = eval_execution  # type: ignore[method-assign]
    ResultWriter._eval_body = eval_writer  # type: ignore[method-assign]


def _check_lambda_request(body: Any, asynchronous: bool) -> None:
    from moto.core.exceptions import JsonRESTError

    size = len(body.encode() if isinstance(body, str) else body or b"")
    limit = LAMBDA_ASYNC_REQUEST_LIMIT if asynchronous else LAMBDA_SYNC_REQUEST_LIMIT
    if size > limit:
        kind = "Event" if asynchronous else "RequestResponse"
        error = JsonRESTError(
            "RequestEntityTooLargeException",
            f"{size} byte payload is too large for the {kind} invocation type (limit {limit} bytes)",
        )
        error.code = 413
        raise error


# ---------------------------------------------------------------- DynamoDB atomicity
_DYNAMODB_LOCK = threading.Lock()


def _serialize_dynamodb() -> None:
    """Serve DynamoDB requests one at a time.

    moto reads an item, evaluates the condition and writes it back without a lock, so two
    concurrent conditional writes on one item can both succeed (about 1 in 40 tries). In
    DynamoDB each item write is atomic: exactly one of them wins. The Step Functions
    interpreter's direct integrations reach DynamoDB over HTTP too, so one lock around
    the handler covers every caller.
    """
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        throttled = _dynamodb_fault(self)
        if throttled is not None:
            return throttled
        with _DYNAMODB_LOCK:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def _dynamodb_fault(handler: Any) -> Any:
    """A DynamoDB request throttled by the fault plan (:mod:`sesflow.local.faults`): the
    response DynamoDB gives, else None."""
    if not faults.active():
        return None
    from moto.dynamodb.exceptions import ERROR_TYPE_PREFIX, DynamodbException

    target = handler.headers.get("X-Amz-Target") or ""
    operation = target.rsplit(".", 1)[-1]
    try:
        body = json.loads(handler.body or "{}")
    except (TypeError, ValueError):
        body = {}
    tables = [body["TableName"]] if body.get("TableName") else sorted(body.get("RequestItems") or {})
    key = json.dumps(body.get("Key"), sort_keys=True)[:200] if body.get("Key") else ""
    caller = "local"
    auth = handler.headers.get("Authorization") or ""
    if "Credential=" in auth:
        principal = local_iam.principal_for_key(auth.split("Credential=", 1)[1].split("/", 1)[0])
        if principal is not None:
            caller = f"{principal.role_name}/{principal.session_name}"
    if not faults.dynamodb_request(operation, tables, caller, key):
        return None
    code, message = faults.DYNAMODB_THROTTLED
    error = DynamodbException(ERROR_TYPE_PREFIX + code, message)
    headers = {**dict(error.get_headers() or []), "status": str(error.code), "x-amzn-RequestId": str(uuid.uuid4())}
    return error.code, headers, error.description


# ---------------------------------------------------------------- moto's own hot spots
def _dispatch_without_rescanning_moto() -> None:
    """Two lookups moto repeats on every request, with answers that cannot change while the
    stack runs: its host routing lists moto's package directory (``listdir`` and an ``isdir``
    per entry: about a tenth of the local stack's CPU while a campaign sends), and its
    dispatcher lists a handler class's methods with ``inspect.getmembers`` to see whether the
    action is one. The directory listing is kept once; the method names are kept per class
    (taken at a class's first request, after ``install`` wrapped what it wraps; wrapping keeps
    the names). The host routing itself is moto's, unchanged."""
    import functools

    from moto import backends
    from moto.core import responses

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
    names = responses.method_names_from_class

    @functools.cache
    def method_names_from_class(clazz: object) -> frozenset[str]:
        return frozenset(names(clazz))

    responses.method_names_from_class = method_names_from_class  # type: ignore[assignment]


def _sqs_retention_without_rescanning() -> None:
    """moto's ReceiveMessage checks each message it returns against the queue's retention
    period by building every queue attribute three times, and two of them
    (``ApproximateNumberOfMessages...``) scan all the queue's messages: receiving from a queue
    of n messages cost O(n) per message returned. While a burst of single sends ran, the
    local SQS pollers took about half of the stack's CPU this way (py-spy). The same check
    with the queue's retention period read directly (the value ``attributes`` reports)."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention_period = self.get_queue(queue_name).message_retention_period
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())

    SQSBackend.is_message_valid_based_on_retention_period = (  # type: ignore[method-assign]
        is_message_valid_based_on_retention_period
    )


def _load_each_service_model_once() -> None:
    """moto reads a service's botocore model (a directory scan and a large JSON file) and builds
    its URL router (a werkzeug map of every operation) the first time a request of that service
    needs them, cached without a lock: the first requests of a burst each load the same model
    and build the same router. Seen: once moto's routing answered faster, a burst's 600 first
    Lambda invokes did this at once, every caller timed out and retried, and the stack never
    recovered (thousands of threads); on the stack as it is, a 300-email burst spends ~10 % less
    CPU. One load and one router per service; the others wait for it."""
    from moto.core import responses, utils
    from moto.core.routing import NotFound

    lock = threading.RLock()
    original_load = utils._load_service_model
    loaded: dict[tuple[str, str], dict[str, Any]] = {}

    def load(service_name: str, model_name: str) -> dict[str, Any]:
        with lock:
            key = (service_name, model_name)
            if key not in loaded:
                loaded[key] = original_load(service_name, model_name)
            return loaded[key]

    original_router = responses.get_service_router
    routers: dict[str, Any] = {}

    def get_service_router(service_name: str) -> Any:
        router = routers.get(service_name)
        if router is not None:
            return router
        with lock:
            if service_name not in routers:
                router = original_router(service_name)
                try:  # its protocol's router too: built on first match, unlocked as well
                    router._get_router(router._service_model.protocol)
                except (NotFound, NotImplementedError):
                    pass
                routers[service_name] = router
            return routers[service_name]

    utils._load_service_model = load
    responses.get_service_router = get_service_router  # type: ignore[assignment]


def _lighter_dynamodb_writes() -> None:
    """moto parses a write's update expression twice per request (the handler, then the
    backend) and its validator deep-copies the parsed tree before it changes it: for the
    ledger's claim of a campaign email, one ``UpdateItem`` with a dozen ``if_not_exists``
    clauses, two parses and a copy were about a fifth of the local stack's CPU while a campaign
    sends (the generic ``copy.deepcopy`` of a tree costs 1.6 parses of it). The same few strings
    come again and again, so each is parsed once and that tree is kept unchanged: the handler
    only reads it (``find_clauses``), and where the validator would copy it, it gets a copy of
    the kept tree's nodes (``_copy_tree``: 0.1 ms for the claim's 101 nodes, against 0.8 ms for
    ``copy.deepcopy`` and 0.5 ms for a parse). Any other tree is still deep-copied."""
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import Node
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    parse = UpdateExpressionParser.make  # the classmethod, bound
    kept: dict[str, Any] = {}
    source: dict[int, tuple[Any, str]] = {}  # id -> (tree, string): the tree held, so its id stays its own
    lock = threading.Lock()

    def make(expression: str) -> Any:
        tree = kept.get(expression)
        if tree is None:
            tree = parse(expression)
            with lock:
                if len(kept) >= 2048:  # not ours to keep: a fresh tree, copied as before
                    return tree
                tree = kept.setdefault(expression, tree)
                source[id(tree)] = (tree, expression)
        return tree

    def deepcopy(value: Any, memo: Any = None) -> Any:
        held = source.get(id(value))
        if held is not None and held[0] is value:
            return _copy_tree(value, Node)
        return copy.deepcopy(value, memo)

    UpdateExpressionParser.make = staticmethod(make)  # type: ignore[method-assign,assignment]
    validators.deepcopy = deepcopy  # type: ignore[attr-defined]
    _check_each_expression_shape_once(source)
    from . import dynamodb_updates

    dynamodb_updates.install(source)  # plain expressions skip the passes altogether
    dynamodb_updates.lex_conditions_once()


_PLAIN = (str, int, float, bool, type(None))


def _copy_tree(node: Any, node_class: type, parent: Any = None) -> Any:
    """A copy of a parsed expression tree, as ``copy.deepcopy`` makes it: a moto expression
    node holds ``type`` (a string), ``children`` and ``parent`` (``Node.__init__``). Each node
    is new, with its parent the new parent; strings and numbers are shared (they cannot
    change), anything else is deep-copied. Written by hand because the generic copy (memo,
    reduce protocol per object) costs eight times as much."""
    new = object.__new__(type(node))
    fields = node.__dict__.copy()
    if len(fields) != 3:  # more than type, children, parent: copy what else it holds
        fields.update({k: _copy_leaf(v) for k, v in fields.items() if k not in ("type", "children", "parent")})
    children = node.children
    if children is not None:
        fields["children"] = [
            c if type(c) is str else _copy_tree(c, node_class, new) if _is_node(c, node_class) else _copy_leaf(c)
            for c in children
        ]
    fields["parent"] = parent
    new.__dict__ = fields
    return new


_NODE_CLASSES: dict[type, bool] = {}


def _is_node(value: Any, node_class: type) -> bool:
    """``isinstance(value, node_class)``, kept per class: moto's ``Node`` is an ABC, whose
    checks cost a call into ``__instancecheck__`` each."""
    known = _NODE_CLASSES.get(type(value))
    if known is None:
        known = _NODE_CLASSES[type(value)] = isinstance(value, node_class)
    return known


def _copy_leaf(value: Any) -> Any:
    return value if isinstance(value, _PLAIN) else copy.deepcopy(value)


#: how many (expression, names, table keys) whose shape passed moto's checks are remembered
_SHAPES_KEPT = 4096


def _check_each_expression_shape_once(source: dict[int, tuple[Any, str]]) -> None:
    """The first three of the ten passes moto's validator makes over an update expression check
    its shape only: one clause of each kind (``ActionCountValidator``, which is quadratic in the
    expression's actions), no overlapping paths, no key attribute updated. Their verdict is a
    function of the expression string, its ``ExpressionAttributeNames`` and the table's key
    attributes, nothing else, so once an expression of a kept tree (``_lighter_dynamodb_writes``)
    passed them with the same names on a table with the same keys, its later validations run
    the seven passes that read the item and the values. One that failed is checked again
    every time (it raises again, with moto's own error). The campaign's claim (a dozen
    ``if_not_exists``) went from 9.9 to 6.3 ms in moto with this (3.6 with the tree copy and the
    traversal below)."""
    from moto.dynamodb.parsing import validators

    cls = validators.UpdateExpressionValidator
    shape_checks = ("ActionCountValidator", "OverlappingPathsValidator", "UpdateHashRangeKeyValidator")
    init, validate = cls.__init__, cls.validate
    passed: set[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]] = set()

    def __init__(self: Any, expression: Any, expression_attribute_names: Any, *args: Any, **kwargs: Any) -> None:
        init(self, expression, expression_attribute_names, *args, **kwargs)
        held = source.get(id(expression))
        self.sesflow_shape = None
        if held is not None and held[0] is expression:
            names = tuple(sorted((expression_attribute_names or {}).items()))
            self.sesflow_shape = (held[1], names, tuple(self.table.table_key_attrs))

    def validate_once(self: Any) -> Any:
        shape = self.sesflow_shape
        first = tuple(type(p).__name__ for p in self.processors[: len(shape_checks)])
        if shape is None or shape not in passed or first != shape_checks:  # a moto that checks otherwise: all
            node = validate(self)  # every pass; raises as moto does
            if shape is not None and len(passed) < _SHAPES_KEPT:
                passed.add(shape)
            return node
        node = self.node_to_validate
        for processor in self.processors[len(shape_checks) :]:
            node = processor.traverse(node)
        return node

    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.validate = validate_once  # type: ignore[method-assign]


def _processor_for(traverser: Any, cls: type) -> Any:
    """The function a moto expression pass applies to nodes of ``cls`` (None: it skips them),
    found in its ``_processing_map`` once per pass and class."""
    table = traverser.__dict__.setdefault("sesflow_processors", {})
    if cls not in table:
        table[cls] = next((f for k, f in traverser._processing_map().items() if issubclass(cls, k)), None)
    return table[cls]


def _traverse(traverser: Any, root: Any, node_class: type, base_pre: Any) -> Any:
    """moto's ``DepthFirstTraverser.traverse`` (``traverse_node_recursively`` from the root:
    children first, then the node, replaced in its parent by what the pass returns), with the
    pass's lookups bound once and ``pre_processing_of_child`` called only where a pass has one."""
    table = traverser.__dict__.setdefault("sesflow_processors", {})
    pre = traverser.pre_processing_of_child if type(traverser).pre_processing_of_child is not base_pre else None

    def visit(node: Any, child_id: int) -> Any:
        cls = type(node)
        if not _is_node(node, node_class):
            return node
        parent_node = node.parent
        children = node.children
        if children is not None:
            for i, child_node in enumerate(children):
                if pre is not None:
                    pre(node, i)
                visit(child_node, i)
        f = table[cls] if cls in table else _processor_for(traverser, cls)
        if f is not None:
            node = f(node)
            node.parent = parent_node
            if parent_node:
                parent_node.children[child_id] = node
        return node

    return visit(root, -1)


def _faster_expression_traversal() -> None:
    """moto's expression passes (``DepthFirstTraverser``) visit every node of the tree, ask
    ``isinstance`` of abstract classes (``Node`` has ``ABCMeta``: each check goes through
    ``__instancecheck__``), rebuild their ``_processing_map`` dict at every node and call the
    no-op ``pre_processing_of_child`` hook. The same traversal (:func:`_traverse`, replacing
    ``traverse``, the only caller of ``traverse_node_recursively`` and ``process``), with the
    answers kept per node class and the map per pass: a node's class decides both (no pass
    overrides ``process``, ``nodes_to_be_processed`` or ``traverse``, and nothing registers
    virtual subclasses of the node classes). The campaign's claim: 4.5 -> 3.6 ms in moto."""
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node

    base_pre = DepthFirstTraverser.pre_processing_of_child

    def traverse(self: Any, root: Any) -> Any:
        return _traverse(self, root, Node, base_pre)

    DepthFirstTraverser.traverse = traverse  # type: ignore[method-assign]


# ---------------------------------------------------------------- install
_installed = False


def _parse_each_definition_once() -> None:
    """moto parses a machine's ASL (ANTLR, pure Python) at the start of every execution: about a
    third of the local stack's CPU when many executions run. The parsed program is shared
    already by the iterations of a Map within one execution (what an execution changes lives
    in its ``Environment``: retry counters in its heap, keyed by the component), so one parse
    per definition serves every execution of it."""
    import functools

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    @functools.lru_cache(maxsize=256)
    def parse(definition: str) -> Any:
        return AmazonStateLanguageParser.parse(definition)[0]

    def entrypoint(self: Any) -> Any:
        return parse(self._evaluation_details.state_machine_details.definition)

    ExecutionWorker._get_evaluation_entrypoint = entrypoint  # type: ignore[method-assign]

    # the same for JSONPath expressions: jsonpath_ng builds a new (PLY) parser for every path it
    # reads, on every state's every InputPath/Parameters/ResultPath; a parsed path is not changed
    # by finding or updating with it
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)  # type: ignore[attr-defined]
    result_path.parse = functools.lru_cache(maxsize=1024)(result_path.parse)  # type: ignore[attr-defined]
    import jsonpath_ng.ext  # EventBridge input transformers import it at each call

    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=1024)(jsonpath_ng.ext.parse)


def _index_executions() -> None:
    """moto finds an execution by scanning its machine's list (``DescribeExecution``, the history,
    ``StartExecution``'s name check): O(executions) per call, seconds per second of CPU once a
    machine has run 10,000. An index by ARN and by name, brought up to date from the
    append-only list on each lookup, makes them O(1)."""
    import weakref

    from moto.stepfunctions.exceptions import ExecutionAlreadyExists, ExecutionDoesNotExist
    from moto.stepfunctions.models import StepFunctionBackend

    lock = threading.Lock()
    # beside the machine, not in it: StartExecution deep-copies the machine (its executions
    # excepted), and an index would drag them (and their locks) into the copy
    indexes: weakref.WeakKeyDictionary[Any, tuple[dict[str, Any], dict[str, Any], int]] = weakref.WeakKeyDictionary()

    def index(machine: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        with lock:
            runs = machine.executions
            by_arn, by_name, seen = indexes.get(machine, ({}, {}, 0))
            if seen > len(runs):  # executions were removed: start again
                by_arn, by_name, seen = {}, {}, 0
            for ex in runs[seen:]:
                by_arn[ex.execution_arn] = ex
                by_name.setdefault(ex.name, ex)
            indexes[machine] = (by_arn, by_name, len(runs))
            return by_arn, by_name

    def describe_execution(self: Any, execution_arn: str) -> Any:
        self._validate_execution_arn(execution_arn)
        machine = self._get_state_machine_for_execution(execution_arn)
        found = index(machine)[0].get(execution_arn)
        if found is None:
            raise ExecutionDoesNotExist("Execution Does Not Exist: '" + execution_arn + "'")
        return found

    def idempotency(self: Any, name: str, execution_input: str) -> Any:
        execution = index(self)[1].get(name)
        if execution is None:
            return None
        if execution_input == execution.execution_input and execution.status == "RUNNING":
            return execution  # same name and input: the same execution (as moto's own check)
        raise ExecutionAlreadyExists("Execution Already Exists: '" + execution.execution_arn + "'")

    StepFunctionBackend.describe_execution = describe_execution  # type: ignore[method-assign]
    StateMachine._handle_name_input_idempotency = idempotency  # type: ignore[method-assign]


def install() -> None:
    """Apply every patch above (idempotent). Call before the server takes requests."""
    global _installed, DELIVERY, ASYNC, CLOCK, POLLERS, _ORIGINAL_CREATE_ESM
    if _installed:
        return
    from moto.core.config import default_user_config

    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    lambda_runtime.install_environ_overlay()
    lambda_runtime.install_call_guard()
    lambda_runtime.CALL_HOOK = faults.lambda_call
    _serialize_dynamodb()
    _load_each_service_model_once()
    _dispatch_without_rescanning_moto()
    _sqs_retention_without_rescanning()
    _lighter_dynamodb_writes()
    _faster_expression_traversal()
    _parse_each_definition_once()
    _admit_express_executions()
    _timed_out_stays_timed_out()
    _index_executions()
    _enforce_payload_limits()
    _result_writer_reads_the_map_input()
    LambdaFunction.invoke = _invoke_in_process  # type: ignore[method-assign,assignment]
    StateMachine.create_from_cloudformation_json = classmethod(  # type: ignore[method-assign,assignment]
        _create_state_machine
    )
    StateMachine.delete_from_cloudformation_json = classmethod(  # type: ignore[method-assign,assignment]
        _delete_state_machine
    )
    EventBus.physical_resource_id = property(lambda self: self.name)  # type: ignore[attr-defined]
    DELIVERY = _TargetDelivery()
    ASYNC = _AsyncInvocations()
    CLOCK = _Clock()
    from moto.awslambda.models import LambdaBackend

    POLLERS = _SqsPollers()
    _ORIGINAL_CREATE_ESM = LambdaBackend.create_event_source_mapping
    LambdaBackend.create_event_source_mapping = _create_event_source_mapping  # type: ignore[method-assign]
    LambdaBackend.send_sns_message = _send_sns_message  # type: ignore[method-assign]
    Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign,assignment]
    ses.install()
    moto_models = cfn_parsing.get_model_list
    cfn_parsing.get_model_list = lambda: [*moto_models(), *LOCAL_TYPES.values()]  # type: ignore[assignment]
    for cache_fn in ("get_model_map", "get_name_type_map"):
        fn = getattr(cfn_parsing, cache_fn, None)
        if fn is not None and hasattr(fn, "cache_clear"):
            fn.cache_clear()
    assert "AWS::SES::ConfigurationSet" in cfn_parsing.get_model_map()
    _installed = True
