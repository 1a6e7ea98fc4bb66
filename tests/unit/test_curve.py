"""bench.curve: the arithmetic of cost and time by campaign size (no local stack, no matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import campaign as bc
from bench import curve

SIZES = [10_000, 100_000, 1_000_000]
PLANNER = {10_000: 0.2, 100_000: 2.0, 1_000_000: 20.0}


def counts(n: int, control: int = 9) -> dict[str, Any]:
    """The stats of an n-email campaign: per email one feedback invocation, two writes, one event;
    per campaign one plan and ``control`` control invocations."""
    return {
        "requests": {"events:PutEvents": n, "ses:SendEmail": n},
        "lambda": {
            "sesflow-local-FeedbackFunction-X": [n, 40.0 * n, 256],
            "sesflow-local-CampaignPlanFunction-X": [1, 300.0, 1024],
            "sesflow-local-CampaignControlFunction-X": [control, 900.0, 256],
            "sesflow-local-CampaignSendBatchFunction-X": [n / 250, 9000.0 * n / 250, 256],
        },
        "dynamodb": {"sesflow-local-LedgerTable-X": {"wru": 2.0 * n, "rru": 0.5 * n, "indexWru": {}}},
    }


def run(n: int = 10_000, transitions: int = 28, control: int = 9) -> curve.Run:
    return curve.Run(
        recipients=n,
        accepted=n,
        stats=counts(n, control),
        batch_size=250,
        wall_seconds=n / 35,
        sending_seconds=n / 40,
        plan_seconds=0.4,
        parent_transitions=transitions,
    )


def test_per_million_does_not_depend_on_the_runs_size() -> None:
    small, big = curve.per_million(run(1_000)), curve.per_million(run(50_000))
    assert [label for label, _ in small] == [label for label, _ in big]
    assert sum(v for _, v in small) == pytest.approx(sum(v for _, v in big))


def test_per_million_is_bench_campaigns_cost_lines_at_cost_rate() -> None:
    r = run()
    expected = bc.cost_lines(r.stats, r.accepted, bc.campaign_worker_lines(250, bc.COST_RATE), 1 / 250)
    assert curve.per_million(r) == expected


def test_the_per_email_part_scales_linearly() -> None:
    rows = curve.build_rows(SIZES, {10_000: run()}, PLANNER)
    assert [r["recipients"] for r in rows] == SIZES
    assert [r["measured"] for r in rows] == [True, False, False]
    assert {r["countsFrom"] for r in rows} == {10_000}
    assert rows[0]["perMillion"] == rows[1]["perMillion"] == rows[2]["perMillion"]
    assert rows[1]["variable"] == pytest.approx(10 * rows[0]["variable"])
    assert rows[2]["variable"] == pytest.approx(100 * rows[0]["variable"])
    for r in rows:
        assert r["total"] == pytest.approx(r["variable"] + r["fixed"])
        assert r["variable"] == pytest.approx(r["perMillion"] * r["recipients"] / 1e6)


def test_fixed_costs_amortise() -> None:
    rows = curve.build_rows(SIZES, {10_000: run()}, PLANNER)
    all_in = [r["perMillionAllIn"] for r in rows]
    assert all_in[0] > all_in[1] > all_in[2] > rows[2]["perMillion"]
    # what is left above the per-email cost shrinks with the size (the plan grows, but slower)
    extra = [a - r["perMillion"] for a, r in zip(all_in, rows, strict=True)]
    assert extra[0] > 5 * extra[1] > 25 * extra[2]


def test_fixed_lines() -> None:
    lines = dict(curve.fixed_lines(run(transitions=40, control=9), plan_seconds=10.0))
    plan, parent, control = lines.values()
    assert plan == pytest.approx(bc.LAMBDA_REQUEST + 10.0 * 1024 / 1024 * bc.LAMBDA_GB_SECOND_ARM)
    assert parent == pytest.approx(40 * bc.SFN_STANDARD_TRANSITION)
    assert control == pytest.approx(9 * (bc.LAMBDA_REQUEST + 0.05 * 256 / 1024 * bc.LAMBDA_GB_SECOND_ARM))
    labels = list(lines)
    assert "1024 MB" in labels[0] and "40 transitions" in labels[1] and "9 invocations" in labels[2]


def test_fixed_lines_without_plan_or_control_in_the_stats() -> None:
    r = run()
    bare = curve.Run(**{**r.__dict__, "stats": {"lambda": {}}})
    plan, _, control = (v for _, v in curve.fixed_lines(bare, plan_seconds=1.0))
    assert plan == pytest.approx(bc.LAMBDA_REQUEST + curve.PLAN_MB / 1024 * bc.LAMBDA_GB_SECOND_ARM)
    assert control == 0


def test_plan_time_on_the_plan_functions_vcpu_share() -> None:
    assert curve.plan_aws_seconds(20.0, 1769) == 20.0
    assert curve.plan_aws_seconds(20.0, 1024) == pytest.approx(20.0 * 1769 / 1024)
    rows = curve.build_rows(SIZES, {10_000: run()}, PLANNER)
    assert rows[2]["planSeconds"] == pytest.approx(20.0 * 1769 / 1024)


def test_wall_time_formula() -> None:
    assert curve.OBSERVE_SECONDS == 300  # GateSettings' default
    assert curve.aws_wall_seconds(1_000_000, 20.0) == pytest.approx(20 + 1e6 / (200 * 0.99) + 2 * 300)
    assert curve.aws_wall_seconds(10_000, 0.0, stages=1) == pytest.approx(10_000 / 198)
    assert curve.aws_wall_seconds(0, 1.0, stages=3, observe_seconds=5, rate=10) == pytest.approx(11.0)
    rows = curve.build_rows(SIZES, {10_000: run()}, PLANNER)
    for r in rows:
        assert r["awsWallSeconds"] == pytest.approx(r["planSeconds"] + r["recipients"] / 198 + 600)


def test_local_figures_only_for_measured_sizes() -> None:
    rows = curve.build_rows([1_000, 10_000, 100_000], {1_000: run(1_000), 10_000: run(10_000)}, PLANNER | {1_000: 0.1})
    assert [r["countsFrom"] for r in rows] == [1_000, 10_000, 10_000]
    assert rows[0]["localEmailsPerSecond"] == pytest.approx(35.0)
    assert rows[1]["localWallSeconds"] == pytest.approx(10_000 / 35)
    assert rows[2]["localWallSeconds"] is None and rows[2]["localEmailsPerSecond"] is None


def test_report_prints_a_row_per_size(capsys: pytest.CaptureFixture[str]) -> None:
    curve.report(curve.build_rows(SIZES, {10_000: run()}, PLANNER))
    out = capsys.readouterr().out
    assert "    10,000  measured" in out and " 1,000,000  arithmetic" in out
    assert "1h 34m 45s" in out  # 1M: 34.6 s + 5,050.5 s + 600 s


def test_duration() -> None:
    assert curve.duration(59.6) == "1m 00s"
    assert curve.duration(3725) == "1h 02m 05s"


def test_draw(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "curve.png"
    curve.draw(curve.build_rows(SIZES, {10_000: run()}, PLANNER), path)
    assert curve.png_size(path) == (640, 360)


def test_costs_are_for_a_stack_with_the_template_defaults() -> None:
    # the local stack deploys webhooks; by default a stack has no dispatcher to invoke
    st = {
        "requests": {},
        "lambda": {"s-WebhookFunction-A": [10, 50.0, 256], "s-FeedbackFunction-B": [4, 40.0, 256]},
        "logs": {
            "s-WebhookFunction-A": {
                "invocations": 10,
                "events": 10,
                "bytes": 4000,
                "INFO.events": 10,
                "INFO.bytes": 4000,
            },
            "s-FeedbackFunction-B": {"invocations": 4, "events": 4, "bytes": 900, "INFO.events": 4, "INFO.bytes": 900},
        },
        "dynamodb": {},
    }
    assert not bc.default_webhooks()
    lines = dict(bc.cost_lines(st, 2, []))
    assert lines["Lambda requests"] == pytest.approx(4 * bc.LAMBDA_REQUEST * 1e6 / 2)
    # a trace per feedback invocation (2 per email), 5 % sampled
    assert lines["X-Ray traces recorded (5 % sampled at volume)"] == pytest.approx(2 * 0.05 * 5.0)
    # WARNING: no INFO lines, no platform events
    assert lines["CloudWatch Logs ingestion (functions at WARNING, machines at ERROR)"] == 0
