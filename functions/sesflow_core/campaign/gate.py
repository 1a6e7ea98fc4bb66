"""The gate after a stage: continue, halt, or ask for approval, from the stage's counters."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .spec import GateSettings


@dataclass(frozen=True)
class GateDecision:
    action: str  # "continue", "halt", "approve"
    reason: str
    sent: int
    bounced: int
    complained: int
    bounce_rate: float
    complaint_rate: float
    failed: int = 0
    failure_rate: float = 0.0
    insufficient_sample: bool = False  # fewer than minSample went out: the rates decided nothing

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate(counters: dict[str, int], settings: GateSettings) -> GateDecision:
    """Decide after a stage from its counters (accepted, failed, bounced, complained)."""
    sent = int(counters.get("accepted", counters.get("sent", 0)) or 0)
    failed = int(counters.get("failed", 0) or 0)
    bounced = int(counters.get("bounced", 0) or 0)
    complained = int(counters.get("complained", 0) or 0)
    br = bounced / sent if sent else 0.0
    cr = complained / sent if sent else 0.0
    attempted = sent + failed
    fr = failed / attempted if attempted else 0.0
    numbers = (sent, bounced, complained, br, cr, failed, fr)
    if attempted >= settings.min_sample and fr > settings.max_failure_rate:
        return GateDecision("halt", f"failure rate {fr:.2%} > {settings.max_failure_rate:.2%}", *numbers)
    insufficient = sent < settings.min_sample
    if not insufficient:
        if br > settings.max_bounce_rate:
            return GateDecision("halt", f"bounce rate {br:.2%} > {settings.max_bounce_rate:.2%}", *numbers)
        if cr > settings.max_complaint_rate:
            return GateDecision("halt", f"complaint rate {cr:.3%} > {settings.max_complaint_rate:.3%}", *numbers)
    note = (
        f"insufficient sample: {sent} sent < minSample {settings.min_sample}, rates not judged"
        if insufficient
        else "within thresholds"
    )
    if settings.approval == "manual":
        return GateDecision("approve", f"manual approval required ({note})", *numbers, insufficient_sample=insufficient)
    return GateDecision("continue", note, *numbers, insufficient_sample=insufficient)
