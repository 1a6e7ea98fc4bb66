"""A campaign's input, validated: template, topic, recipients, stages, batches, gate."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from .. import ids
from ..clock import Clock, ClockError
from ..errors import InvalidCampaign
from ..request import MAX_DATA_BYTES
from .schedule import SendSchedule

MAX_BATCH_SIZE = 50  # SES: 50 recipients per message; we send one message per recipient
DEFAULT_STAGES = (1.0, 10.0, 100.0)


@dataclass(frozen=True)
class GateSettings:
    max_bounce_rate: float = 0.05
    max_complaint_rate: float = 0.001
    min_sample: int = 20
    observe_seconds: int = 300
    approval: str = "auto"  # or "manual"
    max_failure_rate: float = 0.05  # SES refused or the send failed (not bounces)


@dataclass(frozen=True)
class CampaignSpec:
    campaign_id: str
    template: str
    topic: str
    recipients_bucket: str
    recipients_key: str
    data: dict[str, Any] = field(default_factory=dict)
    stages: tuple[float, ...] = DEFAULT_STAGES
    batch_size: int = MAX_BATCH_SIZE
    max_send_rate: float | None = None
    gate: GateSettings = field(default_factory=GateSettings)
    approval_timeout_seconds: int | None = None  # None: the stack's CampaignApprovalTimeoutSeconds
    schedule: SendSchedule = field(default_factory=SendSchedule)  # startAt, window, dailyCap
    clock: Clock = field(default_factory=Clock)  # the wall clock but on the local stack

    @classmethod
    def from_input(cls, raw: dict[str, Any], default_bucket: str = "", allow_clock: bool = False) -> CampaignSpec:
        """Validate the campaign input (the recipients bucket defaults to the campaigns bucket).
        ``allow_clock``: the input may carry a ``clock`` (a time scale; the local stack only)."""
        import re

        try:
            clock = Clock.from_input(raw.get("clock"), allowed=allow_clock)
        except ClockError as exc:
            raise InvalidCampaign(str(exc)) from None
        schedule = SendSchedule.from_input(raw, clock.now())

        cid = raw.get("campaignId")
        if not isinstance(cid, str) or not ids.is_campaign_id(cid):
            raise InvalidCampaign(f"campaignId must match {ids.CAMPAIGN_ID_PATTERN}")
        template = raw.get("template")
        if not isinstance(template, str) or not re.fullmatch(r"[a-z0-9_-]{1,64}", template):
            raise InvalidCampaign("template must match [a-z0-9_-]{1,64}")
        topic = raw.get("topic") or "newsletter"
        if not isinstance(topic, str) or not re.fullmatch(r"[a-z0-9_-]{1,64}", topic):
            raise InvalidCampaign("topic must match [a-z0-9_-]{1,64}")
        recipients = raw.get("recipients") or {}
        if not isinstance(recipients, dict) or not recipients.get("key"):
            raise InvalidCampaign("recipients must be {key[, bucket]} of a CSV or JSONL file in S3")
        recipients = {"bucket": default_bucket, **recipients}
        if not recipients.get("bucket"):
            raise InvalidCampaign("recipients.bucket is required")
        if default_bucket and recipients["bucket"] != default_bucket:
            raise InvalidCampaign(
                f"recipients.bucket {recipients['bucket']!r} is not one this stack may read: upload the list to the "
                f"campaigns bucket ({default_bucket}, e.g. under uploads/) - `sesflow campaign start` does"
            )
        stages = tuple(float(s) for s in (raw.get("stages") or DEFAULT_STAGES))
        if not stages or any(b <= a for a, b in itertools.pairwise(stages)) or stages[-1] != 100 or stages[0] <= 0:
            raise InvalidCampaign("stages must be increasing cumulative percentages ending at 100")
        batch_size = int(raw.get("batchSize") or MAX_BATCH_SIZE)
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise InvalidCampaign(f"batchSize must be 1..{MAX_BATCH_SIZE}")
        data = raw.get("data") or {}
        if not isinstance(data, dict) or len(json.dumps(data)) > MAX_DATA_BYTES:
            raise InvalidCampaign(f"data must be an object of at most {MAX_DATA_BYTES} bytes")
        g = raw.get("gate") or {}
        approval = raw.get("approval") or g.get("approval") or "auto"
        if approval not in ("auto", "manual"):
            raise InvalidCampaign("approval must be auto or manual")
        gate = GateSettings(
            max_bounce_rate=float(g.get("maxBounceRate", raw.get("maxBounceRate", 0.05))),
            max_complaint_rate=float(g.get("maxComplaintRate", raw.get("maxComplaintRate", 0.001))),
            min_sample=int(g.get("minSample", raw.get("minSample", 20))),
            observe_seconds=int(g.get("observeSeconds", raw.get("observeSeconds", 300))),
            approval=approval,
            max_failure_rate=float(g.get("maxFailureRate", raw.get("maxFailureRate", 0.05))),
        )
        rate = raw.get("maxSendRate")
        timeout = raw.get("approvalTimeoutSeconds")
        if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= 365 * 86400):
            raise InvalidCampaign("approvalTimeoutSeconds must be an integer of seconds, 1..31536000 (a year)")
        return cls(
            cid,
            template,
            topic,
            str(recipients["bucket"]),
            str(recipients["key"]),
            data,
            stages,
            batch_size,
            float(rate) if rate else None,
            gate,
            timeout,
            schedule,
            clock,
        )
