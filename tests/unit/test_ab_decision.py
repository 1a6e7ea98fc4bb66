"""A/B variants: the input's rules, the sample split, and the winner's rule."""

from __future__ import annotations

from typing import Any

import pytest
from sesflow_core import campaign as cp
from sesflow_core.campaign import abtest
from sesflow_core.errors import InvalidCampaign

BASE = {"campaignId": "c1", "template": "newsletter", "recipients": {"key": "k", "bucket": "b"}}
TWO = [{"id": "A", "subject": "One"}, {"id": "B", "subject": "Two"}]


def spec(**kw: Any) -> cp.CampaignSpec:
    return cp.CampaignSpec.from_input({**BASE, **kw})


def test_the_sample_is_the_first_stage_and_the_canary_stages_follow_it() -> None:
    s = spec(variants=TWO, abTest={"sample": 20}, stages=[1, 10, 50, 100])
    assert s.stages == (20.0, 50.0, 100.0)
    assert [v.id for v in s.variants] == ["A", "B"] and s.ab_test is not None and s.ab_test.metric == "open"
    assert [v.id for v in spec(variants=[{"subject": "x"}, {"subject": "y"}, {"subject": "z"}]).variants] == [
        "A",
        "B",
        "C",
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"variants": TWO[:1]}, "2-5 variants"),
        ({"variants": TWO * 3}, "2-5 variants"),
        ({"variants": [TWO[0], {**TWO[1], "color": "red"}]}, "unknown field"),
        ({"variants": [TWO[0], {**TWO[1], "id": "A"}]}, "ids must differ"),
        ({"variants": [TWO[0], {"id": "B", "subject": ""}]}, "subject must be"),
        ({"variants": [TWO[0], {"id": "B", "template": "Bad Name"}]}, "template must match"),
        ({"variants": TWO, "abTest": {"sample": 80}}, "sample must be"),
        ({"variants": TWO, "abTest": {"metric": "revenue"}}, "metric must be one of"),
        ({"variants": TWO, "abTest": {"pick": "coin"}}, "pick must be"),
        ({"variants": TWO, "abTest": {"minSample": -1}}, "minSample"),
        ({"abTest": {"sample": 10}}, "needs variants"),
    ],
)
def test_bad_variant_input_is_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidCampaign, match=message):
        spec(**fields)


def test_the_split_is_stable_and_about_even() -> None:
    counts = [0, 0]
    for i in range(4000):
        counts[cp.variant_for("c1", f"user{i}@example.org", 2)] += 1
    assert abs(counts[0] - counts[1]) < 200
    assert cp.variant_for("c1", "a@example.org", 3) == cp.variant_for("c1", "a@example.org", 3)


def c(sent: int, **kw: int) -> dict[str, int]:
    return {"accepted": sent, **kw}


def test_the_highest_open_rate_wins_with_its_numbers() -> None:
    d = abtest.choose({"A": c(200, opened=40), "B": c(200, opened=70)}, ["A", "B"], "open", 100)
    assert d["winner"] == "B" and d["variants"]["B"]["openedRate"] == 0.35 and d["z"] > 2
    assert "highest opened rate: B 35.00% vs A 20.00%" in d["reason"]


def test_a_tie_goes_to_the_first_listed_and_too_small_a_sample_to_the_default() -> None:
    tie = abtest.choose(
        {"A": c(100, clicked=5), "B": c(100, clicked=9), "C": c(100, clicked=9)}, ["A", "B", "C"], "click", 50
    )
    assert tie["winner"] == "B" and "a tie among B, C" in tie["reason"]
    small = abtest.choose({"A": c(40, opened=1), "B": c(200, opened=150)}, ["A", "B"], "open", 50)
    assert small["winner"] == "A" and "insufficient sample: A" in small["reason"]


def test_no_engagement_at_all_is_the_default_and_lowest_complaint_prefers_fewer() -> None:
    none = abtest.choose({"A": c(100), "B": c(100)}, ["A", "B"], "open", 10)
    assert none["winner"] == "A" and "EngagementTracking" in none["reason"]
    low = abtest.choose({"A": c(1000, complained=3), "B": c(1000, complained=1)}, ["A", "B"], "lowest_complaint", 10)
    assert low["winner"] == "B"
