"""The chaos suite, small: every fault kind at least once, seeded; nobody twice, nobody lost,
suppression exact (``python -m bench.chaos`` runs the full one: 1,000 sends, 1,000 recipients).

Any violation fails it (the six defects the first runs found are fixed; ``bench.chaos``
keeps a ``KNOWN_ISSUES`` table for the next one that cannot be fixed at once).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from bench import chaos
from sesflow import executions
from sesflow.local import faults
from sesflow.local import lambda_runtime as rt
from sesflow.local.ses import outbox_entries
from sesflow.target import Target

from ..helpers import clear_ses_faults, fault_log, set_fault_plan

pytestmark = pytest.mark.local

SENDS, RECIPIENTS, CANCELLED = 50, 100, 40

#: every kind, each forced at least once (``nth``) on top of its seeded rate
SMALL_RULES: list[dict[str, Any]] = [
    chaos.deferred_rule(SENDS),  # SES throttling past the retries: a deferral, a schedule
    {"kind": "sesThrottle", "p": 0.05},
    {"kind": "ses5xx", "nth": [4], "p": 0.03},
    {"kind": "sesAcceptThenFail", "nth": [9]},
    {"kind": "lambdaCrash", "function": "SendFunction", "call": "sesv2:SendEmail", "when": "after", "nth": [6]},
    {"kind": "lambdaTimeout", "function": "SendFunction", "call": "dynamodb:UpdateItem", "nth": [15]},
    {"kind": "lambdaTimeout", "function": "ValidateFunction", "nth": [12]},
    {"kind": "lambdaCrash", "function": "FeedbackFunction", "nth": [30]},
    {"kind": "lambdaTimeout", "function": "FeedbackFunction", "nth": [60]},
    {
        "kind": "lambdaCrash",
        "function": "CampaignSendBatchFunction",
        "call": "sesv2:SendEmail",
        "when": "after",
        "nth": [20],
    },
    {"kind": "dynamodbThrottle", "operation": "UpdateItem", "caller": "SendFunction", "nth": [10], "burst": 3},
    {"kind": "eventDuplicate", "p": 1.0},
    {"kind": "eventDelay", "p": 1.0, "window": 0.3},
    {"kind": "scheduleDuplicate", "p": 1.0},
    # a campaign worker that dies between a recipient's claim and the SES call (last: the
    # rules above keep their seeded streams)
    {
        "kind": "lambdaCrash",
        "function": "CampaignSendBatchFunction",
        "call": "sesv2:SendEmail",
        "when": "before",
        "nth": [10],
    },
]


def test_the_same_seed_gives_the_same_decisions() -> None:
    def decisions(seed: int) -> list[Any]:
        faults.configure(
            {
                "seed": seed,
                "rules": [{"kind": "sesThrottle", "p": 0.3}, {"kind": "eventDelay", "p": 0.5, "window": 1.0}],
            }
        )
        try:
            return [(faults.ses_send_email(["a@example.org"], []) or ("-",))[0] for _ in range(200)] + [
                faults.delivery_delays("arn:aws:lambda:us-east-1:1:function:f") for _ in range(50)
            ]
        finally:
            faults.clear()

    assert decisions(7) == decisions(7)
    assert decisions(7) != decisions(8)
    assert not faults.active() and faults.ses_send_email(["a@example.org"], []) is None  # off by default


def test_an_ended_invocation_makes_no_further_aws_call(tmp_path: Path) -> None:
    """A crash or timeout around an AWS call ends the invocation at once, as Lambda reports it;
    the handler's thread calls nothing afterwards (the call here would go nowhere)."""
    (tmp_path / "fn_calls.py").write_text(
        "import boto3\n"
        "CALLS = []\n"
        "def handler(e, c):\n"
        "    sts = boto3.client('sts', region_name='us-east-1', endpoint_url='http://127.0.0.1:9',\n"
        "                       aws_access_key_id='x', aws_secret_access_key='x')\n"
        "    CALLS.append('before')\n"
        "    sts.get_caller_identity()\n"
        "    CALLS.append('after')\n"
    )
    spec = rt.FunctionSpec(
        "fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", tmp_path, "fn_calls.handler", {}, 5.0, 128
    )
    rt.install_call_guard()
    seen: list[str] = []
    saved = rt.CALL_HOOK
    try:
        for effect, error in (("crash", rt.EXIT_ERROR), ("timeout", rt.TIMEOUT_ERROR)):

            def hook(fn: str, call: str, subject: str, effect: str = effect) -> tuple[str, str]:
                seen.append(call)
                return effect, "before"

            rt.CALL_HOOK = hook
            started = time.monotonic()
            res = rt.invoke(spec, {})
            assert res.error_type == error and time.monotonic() - started < 2.0  # a timeout is not waited out
        import fn_calls

        assert seen == ["sts:GetCallerIdentity"] * 2 and fn_calls.CALLS == ["before", "before"]
    finally:
        rt.CALL_HOOK = saved


def test_a_small_chaos_run_sends_nobody_twice_and_loses_nobody(tmp_path: Path) -> None:
    result = chaos.run(
        seed=3,
        sends=SENDS,
        recipients=RECIPIENTS,
        cancelled=CANCELLED,
        rules=SMALL_RULES,
        rate=6.0,
        campaign_rate=10.0,
        sdir=tmp_path / "state",
        timeout=100.0,  # for a slow machine: the run takes about 45 s
        log=lambda _: None,
    )
    figures = result.figures
    assert set(faults.KINDS) <= set(figures["faults injected"]), figures["faults injected"]
    assert figures["requests"]["emailIds"] == SENDS and figures["requests"]["submitted"] > SENDS
    assert figures["feedback"]["duplicates counted (FeedbackDuplicates)"] > 0
    assert sum(figures["executions"]["Send"].values()) > SENDS
    assert not result.violations, chaos.report(result)


def test_a_lost_ses_reply_is_not_sent_again(stack: Target) -> None:
    """SES accepted the message, then answered 500: an unknown outcome, never sent again."""
    to = "lost-reply@example.org"
    set_fault_plan(stack.state["endpoint"], 1, [{"kind": "sesAcceptThenFail", "recipient": to, "nth": [1]}])
    try:
        sfn = stack.clients.client("stepfunctions")
        arn = executions.start(
            sfn,
            stack.outputs["SendStateMachineArn"],
            {"emailId": "lost-reply-0001", "template": "welcome", "to": to, "data": {"name": "A", "product": "P"}},
        )
        executions.wait(sfn, arn, timeout=60)
        assert [e["kind"] for e in fault_log(stack.state["endpoint"])] == ["sesAcceptThenFail"]
    finally:
        clear_ses_faults(stack.state["endpoint"])
    sent = [e for e in outbox_entries(Path(stack.state["outbox"])) if e["tags"].get("emailId") == "lost-reply-0001"]
    assert len(sent) == 1, json.dumps([e["messageId"] for e in sent])
    report = executions.report(sfn, arn)
    assert report.output["status"] == "failed" and report.output["reason"].startswith("SesOutcomeUnknown")
