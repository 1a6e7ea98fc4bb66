"""Every setting a function reads from its environment, in one place.

The names and defaults agree with template.yaml's Globals (a test checks it). Settings are
read per invocation (cheap), never frozen at import, so one process can serve functions of
two stacks (the embedded local AWS does) and tests can change them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

#: environment variable -> default (what the function assumes when the template sets none)
DEFAULTS: dict[str, str] = {
    "STAGE": "dev",
    "TRACKING_TABLE": "",
    "SUPPRESSION_TABLE": "",
    "TEMPLATES_BUCKET": "",
    "CONFIGURATION_SET": "",
    "UNTRACKED_CONFIGURATION_SET": "",
    "SENDER_IDENTITY": "example.com",  # as template.yaml's parameters (a test checks it)
    "DEFAULT_FROM_ADDRESS": "no-reply@example.com",
    "TRACKING_RETENTION_DAYS": "180",
    "TEMPLATE_CACHE_TTL_SECONDS": "300",
    "UNSUBSCRIBE_URL": "",
    "UNSUBSCRIBE_MAILTO": "",
    "UNSUBSCRIBE_SECRET_ARN": "",
    "THROTTLE_WAIT_SECONDS": "30",
    "QUOTA_WAIT_SECONDS": "3600",
    "MAX_SEND_ROUNDS": "5",
    "EVENT_BUS_NAME": "",
    "COMPLAINT_SUPPRESSION_SCOPE": "~subscription",
    "SOFT_BOUNCE_THRESHOLD": "3",
    "SOFT_BOUNCE_WINDOW_DAYS": "30",
    "SYNC_ACCOUNT_SUPPRESSION": "false",
    "SCHEDULER_ROLE_ARN": "",
    "SCHEDULE_GROUP": "",
    "CAMPAIGNS_TABLE": "",
    "CAMPAIGNS_BUCKET": "",
    "ATTACHMENTS_BUCKET": "",
    "SEQUENCES_TABLE": "",
    "SEND_STATE_MACHINE_ARN": "",
    "CAMPAIGN_PAUSE_CHECK_SECONDS": "30",
    "CAMPAIGN_DELIVERY_TRACKING": "false",
    "CAMPAIGN_APPROVAL_TIMEOUT_SECONDS": str(72 * 3600),
    "PLAN_WORKDIR": "/tmp",
    # a list of more KiB is planned in chunks of at most this size (a Distributed Map, ADR
    # 0016); as template.yaml's CampaignPlanChunkKiB
    "PLAN_CHUNK_KIB": "32768",
    "WEBHOOK_SECRET_ARN": "",
    "WEBHOOK_QUEUE_URL": "",
    "WEBHOOK_DEAD_LETTER_QUEUE_URL": "",
    "WEBHOOK_RETRY_SCHEDULE": "10,60,300,1800,7200,21600,43200",  # as template.yaml's WebhookRetrySchedule
    "FAULT_CRASH_AFTER_SENDS": "",  # test hook: a campaign worker dies after N sends
    # set by the embedded local AWS only (never by template.yaml): allows a campaign's or an
    # enrollment's ``clock`` (a time scale for tests, ``sesflow_core.clock``)
    "SESFLOW_LOCAL_STACK": "",
}


@dataclass(frozen=True)
class Settings:
    stage: str
    tracking_table: str
    suppression_table: str
    templates_bucket: str
    configuration_set: str
    untracked_configuration_set: str
    sender_identity: str
    default_from: str
    tracking_retention_days: int
    template_cache_ttl: float
    unsubscribe_url: str
    unsubscribe_mailto: str
    unsubscribe_secret_arn: str
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
    campaigns_table: str
    campaigns_bucket: str
    attachments_bucket: str
    sequences_table: str
    send_state_machine_arn: str
    campaign_pause_check_seconds: int
    campaign_delivery_tracking: bool
    campaign_approval_timeout_seconds: int
    plan_workdir: str
    plan_chunk_bytes: int
    fault_crash_after_sends: int | None
    webhook_secret_arn: str = ""
    webhook_queue_url: str = ""
    webhook_dead_letter_queue_url: str = ""
    webhook_retry_schedule: str = DEFAULTS["WEBHOOK_RETRY_SCHEDULE"]
    local_stack: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str:
            return env.get(name, DEFAULTS[name])

        crash = get("FAULT_CRASH_AFTER_SENDS")
        return cls(
            stage=get("STAGE"),
            tracking_table=get("TRACKING_TABLE"),
            suppression_table=get("SUPPRESSION_TABLE"),
            templates_bucket=get("TEMPLATES_BUCKET"),
            configuration_set=get("CONFIGURATION_SET"),
            untracked_configuration_set=get("UNTRACKED_CONFIGURATION_SET") or get("CONFIGURATION_SET"),
            sender_identity=get("SENDER_IDENTITY"),
            default_from=get("DEFAULT_FROM_ADDRESS"),
            tracking_retention_days=int(get("TRACKING_RETENTION_DAYS")),
            template_cache_ttl=float(get("TEMPLATE_CACHE_TTL_SECONDS")),
            unsubscribe_url=get("UNSUBSCRIBE_URL"),
            unsubscribe_mailto=get("UNSUBSCRIBE_MAILTO"),
            unsubscribe_secret_arn=get("UNSUBSCRIBE_SECRET_ARN"),
            throttle_wait_seconds=int(get("THROTTLE_WAIT_SECONDS")),
            quota_wait_seconds=int(get("QUOTA_WAIT_SECONDS")),
            max_send_rounds=int(get("MAX_SEND_ROUNDS")),
            event_bus=get("EVENT_BUS_NAME"),
            complaint_scope=get("COMPLAINT_SUPPRESSION_SCOPE"),
            soft_bounce_threshold=int(get("SOFT_BOUNCE_THRESHOLD")),
            soft_bounce_window_days=int(get("SOFT_BOUNCE_WINDOW_DAYS")),
            sync_account_suppression=get("SYNC_ACCOUNT_SUPPRESSION").lower() == "true",
            scheduler_role_arn=get("SCHEDULER_ROLE_ARN"),
            schedule_group=get("SCHEDULE_GROUP"),
            campaigns_table=get("CAMPAIGNS_TABLE"),
            campaigns_bucket=get("CAMPAIGNS_BUCKET"),
            attachments_bucket=get("ATTACHMENTS_BUCKET"),
            sequences_table=get("SEQUENCES_TABLE"),
            send_state_machine_arn=get("SEND_STATE_MACHINE_ARN"),
            campaign_pause_check_seconds=int(get("CAMPAIGN_PAUSE_CHECK_SECONDS")),
            campaign_delivery_tracking=get("CAMPAIGN_DELIVERY_TRACKING").lower() == "true",
            campaign_approval_timeout_seconds=int(get("CAMPAIGN_APPROVAL_TIMEOUT_SECONDS")),
            plan_workdir=get("PLAN_WORKDIR"),
            plan_chunk_bytes=int(get("PLAN_CHUNK_KIB")) * 1024,
            fault_crash_after_sends=int(crash) if crash else None,
            webhook_secret_arn=get("WEBHOOK_SECRET_ARN"),
            webhook_queue_url=get("WEBHOOK_QUEUE_URL"),
            webhook_dead_letter_queue_url=get("WEBHOOK_DEAD_LETTER_QUEUE_URL"),
            webhook_retry_schedule=get("WEBHOOK_RETRY_SCHEDULE"),
            local_stack=get("SESFLOW_LOCAL_STACK") == "1",
        )

    def configuration_set_for(self, tracked: bool) -> str:
        """The set a message goes through: without open/click tracking when ``tracked`` is false."""
        return self.configuration_set if tracked else self.untracked_configuration_set

    def is_ours(self, configuration_set: str) -> bool:
        return configuration_set in (self.configuration_set, self.untracked_configuration_set)

    def expires_at(self, now: float | None = None) -> int:
        """When a tracking item written now expires (DynamoDB TTL, epoch seconds)."""
        return int((now or time.time()) + self.tracking_retention_days * 86400)
