"""A/B variants on the local stack: the sample split by a stable hash, the winner by the open
rate the mailbox simulator produces, the rest of the list sent the winner; a manual pick."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from sesflow_core import campaign as cp

from bench.ab_test import VARIANTS, ab_list, start_ab
from sesflow.cli.campaign import campaign
from sesflow.local.ses import outbox_entries
from sesflow.target import Target

from ..helpers import poll
from .test_campaigns import cli_run, finish, status_of

pytestmark = pytest.mark.local

SUBJECT = {v["subject"]: v["id"] for v in VARIANTS}


def subjects_by_stage(stack: Target, cid: str) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for e in outbox_entries(Path(stack.state["outbox"])):
        if e["tags"].get("campaignId") == cid:
            out.setdefault(e["tags"]["stage"], Counter())[SUBJECT.get(e["subject"], e["subject"])] += 1
    return out


def test_the_variant_with_the_higher_open_rate_wins_and_the_rest_gets_it(stack: Target) -> None:
    cid = f"ab{uuid.uuid4().hex[:10]}"
    addresses = ab_list(cid, 120, 50, {"A": 0.1, "B": 0.6}, seed=3)
    arn = start_ab(stack, cid, addresses, {"sample": 50, "metric": "open", "observeSeconds": 2, "minSample": 10})
    report = finish(stack, arn, timeout=180)
    assert report["status"] == "completed", report
    decision = report["abTest"]["decision"]
    assert decision["winner"] == "B" and decision["by"] == "auto", decision
    a, b = decision["variants"]["A"], decision["variants"]["B"]
    assert b["openedRate"] > a["openedRate"] and a["sent"] + b["sent"] == report["stages"][0]["accepted"]
    sent = subjects_by_stage(stack, cid)
    assert set(sent["0"]) == {"A", "B"}  # the sample got both
    assert set(sent["1"]) == {"B"} and sum(sent["1"].values()) == report["stages"][1]["accepted"]
    # each sample email's variant is the stable hash's
    sample = [a for a in addresses if cp.stage_for(cid, a, (50.0, 100.0)) == 0]
    assert sum(sent["0"].values()) == len(sample)


def test_a_manual_pick_waits_for_the_operator_and_the_rest_gets_the_pick(stack: Target) -> None:
    cid = f"ab{uuid.uuid4().hex[:10]}"
    addresses = [f"success+q{i}@simulator.amazonses.com" for i in range(40)]
    arn = start_ab(stack, cid, addresses, {"sample": 50, "metric": "click", "minSample": 1, "pick": "manual"})
    poll(
        lambda: status_of(stack, cid) == "waiting" and campaign(stack, cid).get("waitToken"),
        60,
        what="waiting for a pick",
    )
    assert campaign(stack, cid)["waitReason"] == "abTest"
    with redirect_stdout(io.StringIO()):
        assert cli_run(stack, "campaign", "pick-winner", cid, "Z") == 2  # not a variant
        assert cli_run(stack, "campaign", "pick-winner", cid, "A", "--reason", "brand voice") == 0
    report = finish(stack, arn, timeout=60)
    decision = report["abTest"]["decision"]
    assert (decision["winner"], decision["by"], decision["reason"]) == ("A", "manual", "brand voice")
    assert set(subjects_by_stage(stack, cid)["1"]) == {"A"}


def test_bad_variants_fail_the_plan_with_the_reason(stack: Target) -> None:
    from collections import Counter as C

    from sesflow import executions

    from .test_campaigns import sent_to, start

    cid, arn = start(
        stack,
        [f"v{i}@example.org,V" for i in range(3)],
        variants=[{"id": "A", "subject": "x"}, {"id": "B", "template": "no-such-template"}],
        abTest={"sample": 50},
    )
    sfn = stack.clients.client("stepfunctions")
    assert executions.wait(sfn, arn, timeout=60) == "FAILED"
    assert "no-such-template" in campaign(stack, cid)["summary"]["reason"]
    assert sent_to(stack, cid) == C()
