"""Campaigns, plain Python (no AWS client inside): the spec, the planner, pacing, the gate."""

from __future__ import annotations

from .gate import GateDecision, gate
from .pacing import Pacer, backoff_delay, concurrency_for, sender_threads
from .planner import (
    BUCKETS,
    MAX_BATCH_BYTES,
    MAX_ROW_DATA_BYTES,
    SUPPRESSION_LOOKUP,
    PlanCounts,
    Planner,
    Recipient,
    email_id_for,
    iter_rows,
    parse_row,
    part_key,
    stage_for,
    variant_for,
)
from .spec import DEFAULT_STAGES, MAX_BATCH_SIZE, AbTest, CampaignSpec, GateSettings, Variant, batch_size_for

__all__ = [
    "BUCKETS",
    "DEFAULT_STAGES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_SIZE",
    "MAX_ROW_DATA_BYTES",
    "SUPPRESSION_LOOKUP",
    "AbTest",
    "CampaignSpec",
    "GateDecision",
    "GateSettings",
    "Pacer",
    "PlanCounts",
    "Planner",
    "Recipient",
    "Variant",
    "backoff_delay",
    "batch_size_for",
    "concurrency_for",
    "email_id_for",
    "gate",
    "iter_rows",
    "parse_row",
    "part_key",
    "sender_threads",
    "stage_for",
    "variant_for",
]
