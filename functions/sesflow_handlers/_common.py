"""What every handler shares: Powertools objects and one boto3 client per service.

Settings come from ``sesflow_aws.settings`` (every environment read in one place).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from botocore.exceptions import ClientError
from sesflow_aws.settings import Settings
from sesflow_core.errors import AwsThrottled

# No Powertools Tracer and no X-Ray SDK: importing and patching aws-xray-sdk (maintenance since
# 2026-02-25, end of support 2027-02-25) adds ~140 ms to a cold start (bench/otel_import.py).
# Active tracing in the template traces every Lambda and Step Functions call; the AWS SDK calls
# inside the functions are traced only with OpenTelemetryTracing=true, by the AWS Lambda layer
# for OpenTelemetry, which instruments botocore before this module is imported: no code here.
logger = Logger()
metrics = Metrics()
# every metric also carries the stage (the namespace is already one per stack)
metrics.set_default_dimensions(stage=Settings.from_env().stage)

__all__ = ["Settings", "client", "logger", "metrics", "throttling_as_aws_throttled"]

#: error codes of AWS calls that a later attempt may get through (the SDK's standard mode
#: already tried 3 times)
_RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "SlowDown",
        "TransactionConflictException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)

F = TypeVar("F", bound=Callable[..., Any])


def throttling_as_aws_throttled(handler: F) -> F:
    """Raise AWS throttling past the SDK's retries as ``AwsThrottled``: one error name the
    state machine retries with its own backoff (a botocore error's name is its code, which
    no Retry could list in full)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _RETRYABLE_CODES:
                raise AwsThrottled(f"{code} ({exc.operation_name})") from None
            raise

    return wrapper  # type: ignore[return-value]


#: SES calls are not retried inside the function: the state machine retries them by error
#: name (backoff + jitter, visible in the history) instead of paying for Lambda time, and a
#: SendEmail retried by the SDK after a lost answer could send twice. Their timeouts end well
#: inside the send function's 12 s, so a lost answer is SesOutcomeUnknown, not a function timeout.
_NO_SDK_RETRIES = frozenset({"sesv2"})
_SES_CONNECT_TIMEOUT, _SES_READ_TIMEOUT = 2, 8


def client(service: str) -> Any:
    """One boto3 client per service per process (reused across warm invocations), and per
    credentials: the local stack runs every function, each with its role's keys, in one process."""
    return _client(service, os.environ.get("AWS_ACCESS_KEY_ID"))


@cache
def _client(service: str, access_key_id: str | None) -> Any:
    import boto3
    from botocore.config import Config

    if service in _NO_SDK_RETRIES:
        config = Config(
            retries={"total_max_attempts": 1}, connect_timeout=_SES_CONNECT_TIMEOUT, read_timeout=_SES_READ_TIMEOUT
        )
    else:
        config = Config(retries={"mode": "standard"})
    env = os.environ  # explicit keys and region: the default session keeps the first ones it resolved
    return boto3.client(
        service,
        config=config,  # type: ignore[call-overload]
        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        aws_access_key_id=access_key_id,
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        aws_session_token=env.get("AWS_SESSION_TOKEN"),
    )
