"""A seeded A/B test on the embedded local AWS: does the variant with the higher open rate win?

    python -m bench.ab_test [--recipients 2000] [--sample 20] [--seed 7]

Two variants (different subjects), ``abTest: {metric: open}``. The list is built so that the
local mailbox simulator opens variant B's sample emails at 35 % and variant A's at 20 %
(seeded): each address is drawn with the variant the campaign's stable hash will give it, and
gets the ``success+open`` label with that variant's probability. Prints the decision with its
numbers, and who got what.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from sesflow_core import campaign as cp

from sesflow import executions
from sesflow.local import control
from sesflow.target import Target, local_target

ROOT = Path(__file__).resolve().parent.parent
NEWS = {"title": "T", "intro": "I", "articles": [{"title": "A", "url": "https://acme.example/a", "summary": "S"}]}
VARIANTS = [{"id": "A", "subject": "November news"}, {"id": "B", "subject": "Three things we shipped in November"}]
OPEN_RATES = {"A": 0.20, "B": 0.35}


def ab_list(campaign_id: str, n: int, sample: float, open_rates: dict[str, float], seed: int) -> list[str]:
    """``n`` simulator addresses; those the campaign puts in the A/B sample open with their
    variant's rate (the stage and variant hashes are the campaign's own)."""
    rng = random.Random(seed)
    stages = (sample, 100.0)
    ids = [v["id"] for v in VARIANTS]
    out: list[str] = []
    i = 0
    while len(out) < n:
        i += 1
        opens = rng.random()
        quiet = f"success+q{i}@simulator.amazonses.com"
        if cp.stage_for(campaign_id, quiet, stages) != 0:
            out.append(quiet)  # the rest of the list: its opens do not decide anything
            continue
        variant = ids[cp.variant_for(campaign_id, quiet, len(ids))]
        if opens >= open_rates[variant]:
            out.append(quiet)
            continue
        # an opener of this variant: an address that hashes into the sample and the same variant
        for j in range(10_000):
            candidate = f"success+open-{i}-{j}@simulator.amazonses.com"
            if (
                cp.stage_for(campaign_id, candidate, stages) == 0
                and ids[cp.variant_for(campaign_id, candidate, len(ids))] == variant
            ):
                out.append(candidate)
                break
    return out


def start_ab(target: Target, campaign_id: str, addresses: list[str], ab_test: dict[str, Any]) -> str:
    key = f"uploads/{campaign_id}/recipients.csv"
    body = "\n".join(["email", *addresses]).encode()
    target.clients.client("s3").put_object(Bucket=target.outputs["CampaignsBucketName"], Key=key, Body=body)
    payload = {
        "campaignId": campaign_id,
        "template": "newsletter",
        "recipients": {"key": key},
        "data": NEWS,
        "variants": VARIANTS,
        "abTest": ab_test,
        "gate": {"observeSeconds": 1, "minSample": 10**9},
    }
    arn: str = target.clients.client("stepfunctions").start_execution(
        stateMachineArn=target.outputs["CampaignStateMachineArn"], name=campaign_id, input=json.dumps(payload)
    )["executionArn"]
    return arn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=2000)
    parser.add_argument("--sample", type=float, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-bench-ab-"))
    control.up(ROOT, port=0, sdir=sdir)
    try:
        target = local_target(ROOT, sdir)
        cid = f"bench-ab-seed{args.seed}"  # the same list for the same seed (a fresh stack each run)
        addresses = ab_list(cid, args.recipients, args.sample, OPEN_RATES, args.seed)
        in_list = {v["id"]: [0, 0] for v in VARIANTS}  # the list's own sample: [recipients, openers]
        for a in addresses:
            if cp.stage_for(cid, a, (args.sample, 100.0)) == 0:
                row = in_list[VARIANTS[cp.variant_for(cid, a, len(VARIANTS))]["id"]]
                row[0] += 1
                row[1] += "+open" in a
        arn = start_ab(
            target, cid, addresses, {"sample": args.sample, "metric": "open", "observeSeconds": 5, "minSample": 50}
        )
        sfn = target.clients.client("stepfunctions")
        status = executions.wait(sfn, arn, timeout=1800)
        report = json.loads(sfn.describe_execution(executionArn=arn).get("output") or "{}")
    finally:
        control.down(ROOT, sdir=sdir)
    decision = (report.get("abTest") or {}).get("decision") or {}
    print(f"A/B test, {args.recipients} recipients, sample {args.sample:g} %, seed {args.seed} (local stack): {status}")
    print(
        f"  simulated open rates: A {OPEN_RATES['A']:.0%}, B {OPEN_RATES['B']:.0%} (drawn for this list: "
        + ", ".join(f"{v} {o}/{n}" for v, (n, o) in in_list.items())
        + ")"
    )
    print(
        f"  winner {decision.get('winner')} ({decision.get('by')}): {decision.get('reason')}; z = {decision.get('z')}"
    )
    for vid, row in (decision.get("variants") or {}).items():
        print(f"    {vid}: sent {row['sent']}, opened {row['opened']} ({row['openedRate']:.1%})")
    stages = report.get("stages") or []
    print(f"  the rest of the list: {stages[-1].get('accepted') if stages else '?'} sent with the winner")


if __name__ == "__main__":
    main()
