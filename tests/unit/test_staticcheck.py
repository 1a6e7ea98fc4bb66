"""sesflow.staticcheck: substitutions, worst-case durations, IAM grants, asl-validator wiring.

The duration calculator is tested on small synthetic ASL documents; the real machines only
for which of them run as EXPRESS (their numbers change with the send redesign).
"""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest

from sesflow import staticcheck as sc

ROOT = Path(__file__).resolve().parents[2]
LAMBDA = "arn:aws:states:::lambda:invoke"
FN = "arn:aws:lambda:us-east-1:123456789012:function:fn"
TIMEOUTS = {FN: 10.0, "fn": 10.0}


@pytest.fixture(scope="module")
def static_stack() -> sc.Stack:
    return sc.load_stack(ROOT)


def machine(states: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"StartAt": start or next(iter(states)), "States": states}


def task(**extra: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": LAMBDA, "Parameters": {"FunctionName": FN}, **extra}


def worst(definition: dict[str, Any], **kwargs: Any) -> tuple[float, list[str]]:
    return sc.worst_case_seconds(definition, TIMEOUTS, **kwargs)


# --------------------------------------------------------------------------- substitutions


def test_substituted_definitions_resolve_every_placeholder(static_stack: sc.Stack) -> None:
    defs = sc.substituted_definitions(ROOT)
    assert set(defs) == {"SendStateMachine", "CampaignStateMachine", "SequenceStateMachine"}
    for lid, definition in defs.items():
        assert "${" not in json.dumps(definition), lid
    send = defs["SendStateMachine"]["States"]
    assert send["SendEmail"]["Parameters"]["FunctionName"] == (
        f"arn:aws:lambda:us-east-1:123456789012:function:sesflow-SendFunction-{sc.NAME_SUFFIX}"
    )
    assert send["CheckSuppression"]["Parameters"]["TableName"] == f"sesflow-SuppressionTable-{sc.NAME_SUFFIX}"
    assert send["EmitStatus"]["Parameters"]["Entries"][0]["EventBusName"] == "sesflow-events"
    processor = defs["CampaignStateMachine"]["States"]["SendStage"]["ItemProcessor"]
    assert processor["ProcessorConfig"]["ExecutionType"] == "EXPRESS"  # !Ref parameter, default


def test_parameters_reach_substitutions_and_machine_types() -> None:
    stack = sc.load_stack(ROOT, {"CampaignChildExecutionType": "STANDARD", "SendWorkflowType": "STANDARD"})
    campaign = stack.machines["CampaignStateMachine"].definition
    assert campaign["States"]["SendStage"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "STANDARD"
    assert stack.machines["SendStateMachine"].type == "STANDARD"
    # the plan's chunks (always STANDARD) and the batches
    assert [c.execution_type for c in sc.child_machines(campaign)] == ["STANDARD", "STANDARD"]
    default = sc.child_machines(sc.load_stack(ROOT).machines["CampaignStateMachine"].definition)
    assert [c.execution_type for c in default] == ["STANDARD", "EXPRESS"]


def test_unknown_or_disallowed_parameters_are_refused() -> None:
    with pytest.raises(sc.StaticCheckError, match="unknown template parameter"):
        sc.load_stack(ROOT, {"NoSuchParameter": "x"})
    with pytest.raises(sc.StaticCheckError, match="SendWorkflowType"):
        sc.load_stack(ROOT, {"SendWorkflowType": "FAST"})


def test_resolver_intrinsics() -> None:
    template = {
        "Parameters": {"Env": {"Type": "String", "Default": "dev"}},
        "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {}},
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}-bus"}}},
            "Bucket": {"Type": "AWS::S3::Bucket"},
            "Machine": {"Type": "AWS::StepFunctions::StateMachine"},
        },
    }
    r = sc.Resolver(template, {})
    assert r.resolve({"Fn::GetAtt": ["Fn", "Arn"]}) == (
        f"arn:aws:lambda:us-east-1:123456789012:function:sesflow-Fn-{sc.NAME_SUFFIX}"
    )
    assert r.resolve({"Ref": "Bus"}) == "sesflow-bus"
    assert r.resolve({"Fn::GetAtt": ["Bus", "Arn"]}) == "arn:aws:events:us-east-1:123456789012:event-bus/sesflow-bus"
    assert r.resolve({"Ref": "Bucket"}) == f"sesflow-bucket-{sc.NAME_SUFFIX.lower()}"
    assert r.resolve({"Ref": "Machine"}).endswith(f":stateMachine:Machine-{sc.NAME_SUFFIX}")
    assert r.resolve({"Fn::Sub": ["x-${v}-${Env}-${Fn.Arn}", {"v": {"Ref": "Env"}}]}).startswith(
        "x-dev-dev-arn:aws:lambda"
    )
    assert r.resolve({"Fn::Join": ["/", ["a", {"Ref": "Env"}]]}) == "a/dev"
    assert r.resolve({"Fn::If": ["IsProd", "p", "d"]}) == "d"
    assert sc.Resolver(template, {"Env": "prod"}).resolve({"Fn::If": ["IsProd", "p", {"Ref": "AWS::NoValue"}]}) == "p"
    assert r.resolve(["a", {"Fn::If": ["IsProd", "p", {"Ref": "AWS::NoValue"}]}]) == ["a"]


# --------------------------------------------------------------------------- asl-validator


def test_retrier_problems_flag_what_asl_validator_accepts() -> None:
    definition = machine(
        {
            "A": task(
                Retry=[
                    {"ErrorEquals": ["States.ALL"], "JitterStrategy": "BOGUS", "MaxDelaySeconds": 0},
                    {"ErrorEquals": ["X"], "BackoffRate": 0.5, "IntervalSeconds": 1.5},
                ],
                End=True,
            )
        }
    )
    problems = sc.retrier_problems(definition)
    assert any("JitterStrategy" in p for p in problems)
    assert any("MaxDelaySeconds" in p for p in problems)
    assert any("BackoffRate" in p for p in problems)
    assert any("IntervalSeconds" in p for p in problems)
    assert (
        sc.retrier_problems(machine({"A": task(Retry=[{"ErrorEquals": ["X"], "JitterStrategy": "FULL"}], End=True)}))
        == []
    )


needs_validator = pytest.mark.skipif(
    not sc.asl_validator_path(ROOT).exists(), reason="asl-validator not installed (npm ci)"
)


@needs_validator
def test_asl_validator_accepts_the_substituted_machines(static_stack: sc.Stack) -> None:
    assert sc.validate_asl(static_stack) == []


@needs_validator
def test_asl_validator_rejection_names_the_machine(static_stack: sc.Stack) -> None:
    broken = copy.deepcopy(static_stack.machines["SendStateMachine"])
    broken.definition["States"]["ValidateRequest"]["Next"] = "NoSuchState"
    bad = sc.Stack(static_stack.root, {}, static_stack.cfn, static_stack.resolver, {"SendStateMachine": broken})
    problems = sc.validate_asl(bad)
    assert len(problems) == 1
    assert problems[0].startswith("SendStateMachine: asl-validator rejects")
    assert "NoSuchState" in problems[0]


# --------------------------------------------------------------------------- durations


def test_lambda_attempt_is_the_function_timeout_or_a_smaller_task_timeout() -> None:
    assert worst(machine({"A": task(End=True)}))[0] == 10
    assert worst(machine({"A": task(TimeoutSeconds=4, End=True)}))[0] == 4
    assert worst(machine({"A": task(TimeoutSeconds=40, End=True)}))[0] == 10
    seconds, lines = sc.worst_case_seconds(machine({"A": task(End=True)}), {})
    assert math.isinf(seconds) and "UNBOUNDED" in lines[0]


def test_service_integrations_cost_a_constant() -> None:
    sdk = {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:dynamodb:query", "Parameters": {}, "End": True}
    assert worst(machine({"A": sdk}))[0] == sc.SDK_CALL_SECONDS
    assert worst(machine({"A": {**sdk, "TimeoutSeconds": 2}}))[0] == 2


def test_retries_every_retrier_fires_in_full() -> None:
    # 1 + 2 attempts x 10 s, waits 3 + 6
    one = [{"ErrorEquals": ["X"], "IntervalSeconds": 3, "MaxAttempts": 2, "BackoffRate": 2}]
    assert worst(machine({"A": task(Retry=one, End=True)}))[0] == 3 * 10 + 9
    # defaults: 3 retries, waits 1 + 2 + 4
    assert worst(machine({"A": task(Retry=[{"ErrorEquals": ["X"]}], End=True)}))[0] == 4 * 10 + 7
    # MaxDelaySeconds caps each wait: 1, 2, 4, 4, 4
    capped = [{"ErrorEquals": ["X"], "MaxAttempts": 5, "MaxDelaySeconds": 4}]
    assert worst(machine({"A": task(Retry=capped, End=True)}))[0] == 6 * 10 + 15
    # MaxAttempts 0: no retry
    assert worst(machine({"A": task(Retry=[{"ErrorEquals": ["X"], "MaxAttempts": 0}], End=True)}))[0] == 10
    # two retriers for different errors: both fire (1 + 2 + 3 attempts)
    two = [
        {"ErrorEquals": ["X"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1},
        {"ErrorEquals": ["Y"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 1},
    ]
    assert worst(machine({"A": task(Retry=two, End=True)}))[0] == 6 * 10 + 2 + 6


def test_jitter_never_lengthens_a_retry() -> None:
    retrier = {"ErrorEquals": ["X"], "IntervalSeconds": 2, "MaxAttempts": 4, "BackoffRate": 3}
    plain = worst(machine({"A": task(Retry=[retrier], End=True)}))[0]
    jittered = worst(machine({"A": task(Retry=[{**retrier, "JitterStrategy": "FULL"}], End=True)}))[0]
    assert plain == jittered == 5 * 10 + 2 + 6 + 18 + 54


def test_huge_max_attempts_are_computed_in_closed_form() -> None:
    retrier = {"ErrorEquals": ["X"], "MaxAttempts": 99999999, "MaxDelaySeconds": 10}
    assert worst(machine({"A": task(Retry=[retrier], End=True)}))[0] == 100000000 * 10 + 1 + 2 + 4 + 8 + 10 * (
        99999999 - 4
    )
    assert sc.retry_wait_seconds(1, 2, 5000, None) == math.inf


def test_waits() -> None:
    assert worst(machine({"W": {"Type": "Wait", "Seconds": 42, "End": True}}))[0] == 42
    by_path = machine({"W": {"Type": "Wait", "SecondsPath": "$.wait", "End": True}})
    assert worst(by_path, inputs={"$.wait": 30})[0] == 30
    assert worst(by_path, inputs={"W": 7})[0] == 7
    seconds, lines = worst(by_path)
    assert math.isinf(seconds) and "UNBOUNDED" in lines[0] and "$.wait" in lines[0]
    for key, value in (("Timestamp", "2030-01-01T00:00:00Z"), ("TimestampPath", "$.at")):
        seconds, _ = worst(machine({"W": {"Type": "Wait", key: value, "End": True}}))
        assert math.isinf(seconds)
    assert worst(machine({"W": {"Type": "Wait", "TimestampPath": "$.at", "End": True}}), inputs={"$.at": 90})[0] == 90


def test_choice_takes_the_longest_branch_and_catch_paths_count() -> None:
    definition = machine(
        {
            "A": task(Next="C", Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Slow"}]),
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "BooleanEquals": True, "Next": "Short"}],
                "Default": "Done",
            },
            "Short": {"Type": "Wait", "Seconds": 5, "End": True},
            "Slow": {"Type": "Wait", "Seconds": 50, "Next": "Done"},
            "Done": {"Type": "Succeed"},
        }
    )
    seconds, lines = worst(definition)
    assert seconds == 10 + 50
    assert [line.split(":")[0] for line in lines] == ["A", "Slow", "Done", "total"]


def test_a_bounded_loop_counts_each_round_once() -> None:
    # A runs at most 3 times: A, wait, A, wait, A, then out through the choice.
    definition = machine(
        {
            "A": task(Next="More"),
            "More": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.again", "BooleanEquals": True, "Next": "Pause"}],
                "Default": "Done",
            },
            "Pause": {"Type": "Wait", "Seconds": 5, "Next": "A"},
            "Done": {"Type": "Succeed"},
        }
    )
    seconds, lines = worst(definition, loop_bounds={"A": 3})
    assert seconds == 3 * 10 + 2 * 5
    assert "A [run 3 of 3]" in "\n".join(lines)


def test_an_unbounded_loop_is_infinite_and_named() -> None:
    definition = machine(
        {
            "A": task(Next="More"),
            "More": {"Type": "Choice", "Choices": [{"Variable": "$.x", "BooleanEquals": True, "Next": "A"}]},
        }
    )
    seconds, lines = worst(definition)
    assert math.isinf(seconds)
    assert "A -> More -> A" in lines[0]
    # bounding a state elsewhere does not bound this loop
    assert math.isinf(worst(definition, loop_bounds={"Other": 2})[0])
    # More runs twice; A a third time after it, and ends there (an uncaught error ends the execution)
    assert worst(definition, loop_bounds={"More": 2})[0] == 3 * 10


def test_task_tokens_without_timeout_are_unbounded() -> None:
    token = {"Type": "Task", "Resource": f"{LAMBDA}.waitForTaskToken", "Parameters": {"FunctionName": FN}}
    seconds, lines = worst(machine({"T": {**token, "End": True}}))
    assert math.isinf(seconds) and "waitForTaskToken without TimeoutSeconds" in lines[0]
    assert math.isinf(worst(machine({"T": {**token, "HeartbeatSeconds": 60, "End": True}}))[0])
    assert worst(machine({"T": {**token, "TimeoutSeconds": 600, "End": True}}))[0] == 600


def inline_map(**extra: Any) -> dict[str, Any]:
    body = machine({"B": task(End=True)})
    return machine({"M": {"Type": "Map", "ItemProcessor": body, "End": True, **extra}})


def test_inline_map_rounds_of_max_concurrency() -> None:
    assert worst(inline_map(MaxConcurrency=3), map_items={"M": 10})[0] == 4 * 10
    assert worst(inline_map(MaxConcurrency=0), map_items={"M": 10})[0] == 10
    assert worst(inline_map(MaxConcurrencyPath="$.c"), map_items={"M": 10}, inputs={"$.c": 5})[0] == 2 * 10
    assert worst(inline_map(MaxConcurrencyPath="$.c"), map_items={"M": 10})[0] == 10 * 10  # unknown: 1
    seconds, lines = worst(inline_map(MaxConcurrency=3))
    assert math.isinf(seconds) and "map_items" in lines[0]


def test_distributed_map_children_are_their_own_machines() -> None:
    child = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
        "StartAt": "B",
        "States": {"B": task(Retry=[{"ErrorEquals": ["X"], "MaxAttempts": 1}], End=True)},
    }
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket": "b", "Key": "k"}},
                "ItemProcessor": child,
                "MaxConcurrency": 2,
                "End": True,
            }
        }
    )
    children = sc.child_machines(definition)
    assert [(c.path, c.execution_type) for c in children] == [("M", "EXPRESS")]
    assert worst(dict(children[0].definition))[0] == 2 * 10 + 1
    assert worst(definition, map_items={"M": 4})[0] == 2 * 21 + sc.SDK_CALL_SECONDS


def test_parallel_is_its_longest_branch() -> None:
    definition = machine(
        {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    machine({"X": {"Type": "Wait", "Seconds": 3, "End": True}}),
                    machine({"Y": task(End=True)}),
                ],
                "End": True,
            }
        }
    )
    assert worst(definition)[0] == 10


def test_express_machines_follow_the_parameters() -> None:
    names = {d.machine for d in sc.express_machines(ROOT)}
    assert names == {"SendStateMachine", "CampaignStateMachine/SendStage"}
    standard = {"SendWorkflowType": "STANDARD", "CampaignChildExecutionType": "STANDARD"}
    assert sc.express_machines(ROOT, standard) == []


@pytest.mark.parametrize("parameters", [{}, {"SendWorkflowType": "EXPRESS", "MaxSendRounds": "100"}])
def test_no_express_execution_can_outlive_the_five_minute_limit(parameters: dict[str, str]) -> None:
    """Express executions end at 5 minutes with no status recorded (the email would stay
    queued): every EXPRESS machine and campaign child must end sooner on its worst path,
    whatever the parameters (deferrals are new executions, so MaxSendRounds does not count)."""
    machines = sc.express_machines(ROOT, parameters)
    assert {d.machine for d in machines} >= {"SendStateMachine", "CampaignStateMachine/SendStage"}
    for d in machines:
        assert d.seconds <= sc.EXPRESS_LIMIT_SECONDS, "\n".join(d.explanation)


@pytest.mark.parametrize("workflow", ["EXPRESS", "STANDARD"])
def test_a_send_machine_execution_ends_within_the_in_flight_window(workflow: str) -> None:
    """A repeat of a request ends at ValidateRequest while its first execution may still run
    (``tracking.IN_FLIGHT_SECONDS`` after the item was opened); after that the first is over,
    whatever the machine's type, and a repeat goes on (ADR 0002)."""
    from sesflow_aws import tracking

    [send] = [d for d in sc.machine_durations(sc.load_stack(ROOT, {"SendWorkflowType": workflow}))
              if d.machine == "SendStateMachine"]  # fmt: skip
    assert send.type == workflow
    assert send.seconds <= tracking.IN_FLIGHT_SECONDS, "\n".join(send.explanation)


def synthetic_stack(definition: dict[str, Any], machine_type: str) -> sc.Stack:
    cfn = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 100}},
            "M": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineType": machine_type,
                    "DefinitionSubstitutions": {"FnArn": {"Fn::GetAtt": ["Fn", "Arn"]}},
                },
            },
        }
    }
    return sc.load_stack(ROOT, {}, cfn=cfn, definitions={"M": json.dumps(definition)})


def test_durations_cli_fails_only_for_an_express_machine_over_the_limit() -> None:
    four = machine({"A": task(Parameters={"FunctionName": "${FnArn}"}, Retry=[{"ErrorEquals": ["X"]}], End=True)})
    two = machine(
        {"A": task(Parameters={"FunctionName": "${FnArn}"}, Retry=[{"ErrorEquals": ["X"], "MaxAttempts": 1}], End=True)}
    )
    out = io.StringIO()
    assert sc._run_durations(synthetic_stack(four, "EXPRESS"), out) is False  # 4 x 100 s + 7 s
    assert "EXCEEDS" in out.getvalue() and "407 s" in out.getvalue()
    assert sc._run_durations(synthetic_stack(four, "STANDARD"), io.StringIO()) is True
    assert sc._run_durations(synthetic_stack(two, "EXPRESS"), io.StringIO()) is True  # 2 x 100 s + 1 s


# --------------------------------------------------------------------------- grants


def test_glob_covers() -> None:
    assert sc.glob_covers("arn:aws:s3:::b/*", "arn:aws:s3:::b/key")
    assert sc.glob_covers("arn:aws:s3:::b/*", "arn:aws:s3:::b/*")
    assert not sc.glob_covers("arn:aws:s3:::b/k*", "arn:aws:s3:::b/*")
    assert not sc.glob_covers("arn:aws:s3:::b", "arn:aws:s3:::b/key")
    assert sc.glob_covers("dynamodb:*", "DynamoDB:Query", ignore_case=True)
    assert sc.glob_covers("a?c", "abc") and not sc.glob_covers("a?c", "a*c") and sc.glob_covers("a*c", "a?c")
    assert sc.glob_covers("*", "anything/at:all")


def test_needs_of_each_integration() -> None:
    a = sc.Assumptions(inputs={"$.bucket": "data"})
    states = {
        "Q": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:dynamodb:query",
            "Parameters": {"TableName": "t", "IndexName": "byX"},
        },
        "U": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:updateItem", "Parameters": {"TableName": "t"}},
        "E": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents", "Parameters": {"Entries": [{}]}},
        "L": {"Type": "Task", "Resource": f"{LAMBDA}.waitForTaskToken", "Parameters": {"FunctionName": "fn"}},
    }
    got = {name: sc._task_needs("M", name, state, a)[0] for name, state in states.items()}
    assert (got["Q"].actions, got["Q"].resources) == (
        ("dynamodb:Query",),
        ("arn:aws:dynamodb:us-east-1:123456789012:table/t/index/byX",),
    )
    assert got["U"].actions == ("dynamodb:UpdateItem",)
    assert got["E"].resources == ("arn:aws:events:us-east-1:123456789012:event-bus/default",)
    assert got["L"].resources == ("arn:aws:lambda:us-east-1:123456789012:function:fn",)
    with pytest.raises(sc._Unresolved):
        sc._task_needs("M", "D", {**states["U"], "Parameters": {"TableName.$": "$.table"}}, a)


def test_distributed_map_needs(static_stack: sc.Stack) -> None:
    campaign = static_stack.machines["CampaignStateMachine"]
    state = {
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "Parameters": {"Bucket.$": "$.bucket", "Key": "k"}},
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "out", "Prefix": "p/"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}},
    }
    needs = sc._map_needs(campaign, "M", state, sc.Assumptions(inputs={"$.bucket": "in"}))
    flat = {(action, resource) for n in needs for action in n.actions for resource in n.resources}
    assert ("states:StartExecution", campaign.arn) in flat
    assert ("states:StopExecution", campaign.arn.replace(":stateMachine:", ":execution:") + "/*") in flat
    assert ("s3:GetObject", "arn:aws:s3:::in/*") in flat
    assert ("s3:PutObject", "arn:aws:s3:::out/p/*") in flat
    unresolved = sc._map_needs(campaign, "M", state, sc.Assumptions())
    assert any(n.unresolved and "$.bucket" in n.unresolved for n in unresolved)


def test_the_template_grants_every_integration(static_stack: sc.Stack) -> None:
    report = sc.check_stack_grants(static_stack)
    assert report.missing == []
    assert report.unchecked == []
    states = {(n.machine, n.state) for n in report.needs}
    assert ("CampaignStateMachine", "SendStage") in states  # ItemReader and child starts
    assert ("CampaignStateMachine", "SendStage/SendBatch") in states  # the child runs with the parent's role
    assert ("CampaignStateMachine", "PlanChunks/PlanChunk") in states


def without_statement(cfn: dict[str, Any], role: str, action: str) -> dict[str, Any]:
    cfn = copy.deepcopy(cfn)
    for policy in cfn["Resources"][role]["Properties"]["Policies"]:
        statements = policy["PolicyDocument"]["Statement"]
        policy["PolicyDocument"]["Statement"] = [st for st in statements if action not in json.dumps(st["Action"])]
    return cfn


def test_a_removed_statement_is_a_missing_grant(static_stack: sc.Stack) -> None:
    cfn = without_statement(static_stack.cfn, "SendStateMachineRole", "events:PutEvents")
    texts = {lid: json.dumps(m.definition) for lid, m in static_stack.machines.items()}
    report = sc.check_stack_grants(sc.load_stack(ROOT, {}, cfn=cfn, definitions=texts))
    assert [str(m) for m in report.missing] == [
        "SendStateMachine, EmitStatus, events:PutEvents, arn:aws:events:us-east-1:123456789012:event-bus/sesflow-events"
    ]
    cfn = without_statement(static_stack.cfn, "CampaignStateMachineRole", "states:StartExecution")
    report = sc.check_stack_grants(sc.load_stack(ROOT, {}, cfn=cfn, definitions=texts))
    assert {(m.state, m.action) for m in report.missing} == {
        ("PlanChunks", "states:StartExecution"),
        ("SendStage", "states:StartExecution"),
    }


def test_deny_statements_are_refused(static_stack: sc.Stack) -> None:
    cfn = copy.deepcopy(static_stack.cfn)
    policies = cfn["Resources"]["SendStateMachineRole"]["Properties"]["Policies"]
    policies[0]["PolicyDocument"]["Statement"].append({"Effect": "Deny", "Action": "*", "Resource": "*"})
    texts = {lid: json.dumps(m.definition) for lid, m in static_stack.machines.items()}
    with pytest.raises(sc.StaticCheckError, match="Deny"):
        sc.check_stack_grants(sc.load_stack(ROOT, {}, cfn=cfn, definitions=texts))


def test_an_error_name_nothing_raises_is_reported(static_stack: sc.Stack) -> None:
    assert sc.unknown_error_names(static_stack) == []
    stack = copy.deepcopy(static_stack)
    states = stack.machines["SendStateMachine"].definition["States"]
    states["SendEmail"]["Retry"][0]["ErrorEquals"] = ["SesThrotled"]  # a typo: never raised
    assert sc.unknown_error_names(stack) == ["SendStateMachine/SendEmail: SesThrotled"]
