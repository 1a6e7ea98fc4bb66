"""What every handler shares: Powertools objects, settings from the environment, clients.

Settings are read per invocation (cheap), never frozen at import, so one process can serve
functions of two stacks (the embedded local AWS does) and tests can change them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics

# No Powertools Tracer and no X-Ray SDK: importing and patching aws-xray-sdk (maintenance since
# 2026-02-25, end of support 2027-02-25) adds ~140 ms to a cold start (bench/otel_import.py).
# Active tracing in the template traces every Lambda and Step Functions call; the AWS SDK calls
# inside the functions are traced only with OpenTelemetryTracing=true, by the AWS Lambda layer
# for OpenTelemetry, which instruments botocore before this module is imported: no code here.
logger = Logger()
metrics = Metrics()
# every metric also carries the stage (the namespace is already one per stack)
metrics.set_default_dimensions(stage=os.environ.get("STAGE", "dev"))


@dataclass(frozen=True)
class Settings:
    tracking_table: str
    suppression_table: str
    templates_bucket: str
    configuration_set: str
    sender_identity: str
    default_from: str
    tracking_retention_days: int
    template_cache_ttl: float
    unsubscribe_url: str
    unsubscribe_mailto: str
    throttle_wait_seconds: int
    quota_wait_seconds: int
    max_send_rounds: int
    event_bus: str
    complaint_scope: str
    soft_bounce_threshold: int
    soft_bounce_window_days: int
    sync_account_suppression: bool
    scheduler_role_arn: str
    schedule_group: str

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            tracking_table=env.get("TRACKING_TABLE", ""),
            suppression_table=env.get("SUPPRESSION_TABLE", ""),
            templates_bucket=env.get("TEMPLATES_BUCKET", ""),
            configuration_set=env.get("CONFIGURATION_SET", ""),
            sender_identity=env.get("SENDER_IDENTITY", ""),
            default_from=env.get("DEFAULT_FROM_ADDRESS", ""),
            tracking_retention_days=int(env.get("TRACKING_RETENTION_DAYS", "180")),
            template_cache_ttl=float(env.get("TEMPLATE_CACHE_TTL_SECONDS", "300")),
            unsubscribe_url=env.get("UNSUBSCRIBE_URL", ""),
            unsubscribe_mailto=env.get("UNSUBSCRIBE_MAILTO", ""),
            throttle_wait_seconds=int(env.get("THROTTLE_WAIT_SECONDS", "30")),
            quota_wait_seconds=int(env.get("QUOTA_WAIT_SECONDS", "3600")),
            max_send_rounds=int(env.get("MAX_SEND_ROUNDS", "5")),
            event_bus=env.get("EVENT_BUS_NAME", ""),
            complaint_scope=env.get("COMPLAINT_SUPPRESSION_SCOPE", "~subscription"),
            soft_bounce_threshold=int(env.get("SOFT_BOUNCE_THRESHOLD", "3")),
            soft_bounce_window_days=int(env.get("SOFT_BOUNCE_WINDOW_DAYS", "30")),
            sync_account_suppression=env.get("SYNC_ACCOUNT_SUPPRESSION", "false").lower() == "true",
            scheduler_role_arn=env.get("SCHEDULER_ROLE_ARN", ""),
            schedule_group=env.get("SCHEDULE_GROUP", ""),
        )

    def expires_at(self, now: float | None = None) -> int:
        return int((now or time.time()) + self.tracking_retention_days * 86400)


#: SES calls are not retried inside the function: the state machine retries them by error
#: name (backoff + jitter, visible in the history) instead of paying for Lambda time.
_NO_SDK_RETRIES = frozenset({"sesv2"})


def client(service: str) -> Any:
    """One boto3 client per service per process (reused across warm invocations), and per
    credentials: the local stack runs every function, each with its role's keys, in one process."""
    return _client(service, os.environ.get("AWS_ACCESS_KEY_ID"))


@cache
def _client(service: str, access_key_id: str | None) -> Any:
    import boto3
    from botocore.config import Config

    retries = {"total_max_attempts": 1} if service in _NO_SDK_RETRIES else {"mode": "standard"}
    env = os.environ  # explicit keys and region: the default session keeps the first ones it resolved
    return boto3.client(service, config=Config(retries=retries),  # type: ignore[call-overload]
                        region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
                        aws_access_key_id=access_key_id, aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
                        aws_session_token=env.get("AWS_SESSION_TOKEN"))


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
