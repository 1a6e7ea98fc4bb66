"""WebhookFunction: POST the stack's events, signed, to their subscribers (``sesflow webhook``).

Input: SQS records of ``WebhookQueue`` — EventBridge events from ``WebhookEventsRule`` or
delivery retries (``sesflow_aws.webhooks``). Partial batch responses (Powertools' batch
utility): a record that is not due yet, or that failed before its retries were queued, is
reported as a failure and comes back; the others are deleted.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from sesflow_aws import webhooks
from sesflow_core import webhooks as wh

from ._common import Settings, client, logger, metrics

# a batch of retries that are all not due yet is no function error (no alarm, no Lambda retry)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class NotDueYet(Exception):
    """A retry received before its time; its visibility timeout now hides it until then."""


def _dispatcher(settings: Settings, counts: dict[str, int]) -> webhooks.Dispatcher:
    sm = client("secretsmanager")
    return webhooks.Dispatcher(
        sqs=client("sqs"),
        registry=lambda fresh: webhooks.cached_registry(sm, settings.webhook_secret_arn, fresh),
        queue_url=settings.webhook_queue_url,
        dead_letter_url=settings.webhook_dead_letter_queue_url,
        schedule=wh.parse_schedule(settings.webhook_retry_schedule),
        # the local stack's test receivers listen on 127.0.0.1; in AWS only public addresses
        allow_loopback=settings.local_stack,
        counts=counts,
    )


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    counts: dict[str, int] = {}
    dispatcher = _dispatcher(settings, counts)

    def record_handler(record: SQSRecord) -> None:
        if not dispatcher.handle(json.loads(record.body), record.receipt_handle):
            raise NotDueYet(record.message_id)

    try:
        return process_partial_response(  # type: ignore[return-value]  # a TypedDict of the same shape
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    finally:
        for name, value in counts.items():
            metrics.add_metric(name=name, unit="Count", value=value)
        if counts:
            logger.info("webhooks", extra={"counts": counts})
