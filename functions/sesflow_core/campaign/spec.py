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

#: recipients per batch (one child execution each; one message per recipient). Larger batches
#: cost fewer parent transitions and child requests; the default is what a worker sends in
#: BATCH_SECONDS at its pace (``batch_size_for``), at most this.
MAX_BATCH_SIZE = 250
#: what one batch should take: the worker function's Timeout is 60 s with a 15 s margin, and a
#: child's 4 attempts must fit Express's 5 minutes
BATCH_SECONDS = 40


def batch_size_for(worker_rate: float) -> int:
    """The default batch size for workers that each send ``worker_rate`` emails/s."""
    return max(1, min(MAX_BATCH_SIZE, int(worker_rate * BATCH_SECONDS)))


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
class Variant:
    """One A/B variant: a subject and/or a template and/or data over the campaign's."""

    id: str
    subject: str | None = None
    template: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.subject is not None:
            out["subject"] = self.subject
        if self.template is not None:
            out["template"] = self.template
        if self.data:
            out["data"] = self.data
        return out


@dataclass(frozen=True)
class AbTest:
    """``abTest``: the sample (the first stage, percent of the list), the metric, how long to
    observe after the sample's last send, the smallest sample per variant that may decide, and
    who picks (``auto`` or ``manual``: ``sesflow campaign pick-winner``)."""

    sample: float = 10.0
    metric: str = "open"  # open | click | lowest_complaint
    observe_seconds: int = 3600
    min_sample: int = 100
    pick: str = "auto"

    def as_dict(self) -> dict[str, Any]:
        return {
            "sample": self.sample,
            "metric": self.metric,
            "observeSeconds": self.observe_seconds,
            "minSample": self.min_sample,
            "pick": self.pick,
        }


AB_METRICS = ("open", "click", "lowest_complaint")
_VARIANT_ID = r"[A-Za-z0-9_-]{1,20}"


def _variants(raw: dict[str, Any], template: str) -> tuple[tuple[Variant, ...], AbTest | None]:

    given = raw.get("variants")
    if given is None:
        if raw.get("abTest") is not None:
            raise InvalidCampaign("abTest needs variants (2-5)")
        return (), None
    if not isinstance(given, list) or not 2 <= len(given) <= 5:
        raise InvalidCampaign("variants must be a list of 2-5 variants")
    out = [_variant(v, i) for i, v in enumerate(given)]
    if len({v.id for v in out}) != len(out):
        raise InvalidCampaign("variants: ids must differ")
    return tuple(out), _ab_test(raw.get("abTest") or {})


def _variant(v: Any, i: int) -> Variant:
    import re

    where = f"variants[{i}]"
    if not isinstance(v, dict):
        raise InvalidCampaign(f"{where} must be an object with id and subject, template and/or data")
    unknown = set(v) - {"id", "subject", "template", "data"}
    if unknown:
        raise InvalidCampaign(f"{where}: unknown field(s) {', '.join(sorted(unknown))} (id, subject, template, data)")
    vid = v.get("id") or "ABCDE"[i]
    if not isinstance(vid, str) or not re.fullmatch(_VARIANT_ID, vid):
        raise InvalidCampaign(f"{where}.id must match {_VARIANT_ID}")
    subject, tpl, data = v.get("subject"), v.get("template"), v.get("data") or {}
    if subject is not None and (not isinstance(subject, str) or not subject.strip() or len(subject) > 500):
        raise InvalidCampaign(f"{where}.subject must be a non-empty template string of at most 500 characters")
    if tpl is not None and (not isinstance(tpl, str) or not re.fullmatch(r"[a-z0-9_-]{1,64}", tpl)):
        raise InvalidCampaign(f"{where}.template must match [a-z0-9_-]{{1,64}}")
    if not isinstance(data, dict) or len(json.dumps(data)) > 4096:
        raise InvalidCampaign(f"{where}.data must be an object of at most 4096 bytes")
    return Variant(vid, subject, tpl, data)


def _ab_test(t: Any) -> AbTest:
    if not isinstance(t, dict) or set(t) - {"sample", "metric", "observeSeconds", "minSample", "pick"}:
        raise InvalidCampaign("abTest must be {sample, metric, observeSeconds, minSample, pick}")
    sample = t.get("sample", 10)
    if isinstance(sample, bool) or not isinstance(sample, int | float) or not 1 <= sample <= 50:
        raise InvalidCampaign("abTest.sample must be a percentage of the list, 1-50")
    metric = t.get("metric", "open")
    if metric not in AB_METRICS:
        raise InvalidCampaign(f"abTest.metric must be one of {', '.join(AB_METRICS)}")
    observe, minimum = t.get("observeSeconds", 3600), t.get("minSample", 100)
    for name, value in (("observeSeconds", observe), ("minSample", minimum)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidCampaign(f"abTest.{name} must be a whole number >= 0")
    pick = t.get("pick", "auto")
    if pick not in ("auto", "manual"):
        raise InvalidCampaign("abTest.pick must be auto or manual")
    return AbTest(float(sample), metric, observe, minimum, pick)


@dataclass(frozen=True)
class CampaignSpec:
    campaign_id: str
    template: str
    topic: str
    recipients_bucket: str
    recipients_key: str
    data: dict[str, Any] = field(default_factory=dict)
    stages: tuple[float, ...] = DEFAULT_STAGES
    batch_size: int | None = None  # None: batch_size_for(the workers' pace), set when planning
    max_send_rate: float | None = None
    gate: GateSettings = field(default_factory=GateSettings)
    approval_timeout_seconds: int | None = None  # None: the stack's CampaignApprovalTimeoutSeconds
    schedule: SendSchedule = field(default_factory=SendSchedule)  # startAt, window, dailyCap
    clock: Clock = field(default_factory=Clock)  # the wall clock but on the local stack
    variants: tuple[Variant, ...] = ()  # A/B: the first stage is the test sample
    ab_test: AbTest | None = None

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
        variants, ab_test = _variants(raw, str(template))
        if ab_test is not None:
            # the A/B sample is the first stage; the stages after it are the rest of the list's
            stages = (ab_test.sample, *(s for s in stages if s > ab_test.sample))
        batch_size = int(raw["batchSize"]) if raw.get("batchSize") else None
        if batch_size is not None and not 1 <= batch_size <= MAX_BATCH_SIZE:
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
            variants,
            ab_test,
        )
