"""Offline static checks over ``template.yaml`` and the state machines' ASL.

``python -m sesflow.staticcheck`` runs four checks (or only those named by flags):

``--asl-validator``
    each state machine's ASL, with its ``DefinitionSubstitutions`` applied, through the npm
    package ``asl-validator`` (pinned in ``package.json``; ``npm ci`` runs first when it is not
    installed), plus a few retrier rules that validator does not check.
``--durations``
    the worst-case wall-clock duration of every machine (and of every Distributed Map child);
    fails when an EXPRESS one can run past the 300 s EXPRESS limit.
``--grants``
    the IAM action and resource every Task (and Map ItemReader/ResultWriter, Distributed Map
    child start) needs, evaluated against the machine's role in the SAM-translated template;
    fails on any missing grant.
``--error-names``
    every error name a Retry or Catch matches is a service's (``States.*``, ``Lambda.*``...) or
    a class of ``sesflow_core.errors``: a typo there would never match.

Everything is resolved against a fake stack (:data:`STACK_NAME` in :data:`REGION`, account
:data:`sesflow.local.deploy.ACCOUNT_ID`) whose generated physical names follow CloudFormation's
patterns (``<stack>-<LogicalId>-<suffix>`` for functions, tables and buckets,
``<LogicalId>-<suffix>`` for state machines), so that the ASL and the role policies are compared
with the same ARNs. Nothing here calls AWS.

Exit status: 0 all checks pass, 1 a check failed, 2 a check could not run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sesflow.cfn_yaml import load_template
from sesflow.local.deploy import ACCOUNT_ID, TemplateError, prepare, translate

REGION = "us-east-1"
PARTITION = "aws"
STACK_NAME = "sesflow"
#: CloudFormation appends 12 random characters to the names it generates.
NAME_SUFFIX = "Fake1Suffix2"

#: One attempt of a request-response service integration (aws-sdk:*, dynamodb:*, events:putEvents...).
SDK_CALL_SECONDS = 5.0
#: One attempt of an ``http:invoke`` task (Step Functions gives the HTTP endpoint 60 s).
HTTP_TASK_SECONDS = 60.0
#: Lambda's default function timeout when neither the function nor Globals set one.
DEFAULT_LAMBDA_TIMEOUT_SECONDS = 3.0
#: The hard limit of an EXPRESS execution.
EXPRESS_LIMIT_SECONDS = 300.0

STATE_MACHINE_TYPES = ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine")
FUNCTION_TYPES = ("AWS::Lambda::Function", "AWS::Serverless::Function")

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class StaticCheckError(Exception):
    """A check cannot run (bad input, unsupported construct); the message says why."""


# --------------------------------------------------------------------------- intrinsics


class _NoValue:
    """``AWS::NoValue``: removed from the list or mapping that holds it."""


NO_VALUE = _NoValue()

_NAME_PROPERTY = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Serverless::Function": "FunctionName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",
    "AWS::S3::Bucket": "BucketName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Serverless::StateMachine": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::SES::ConfigurationSet": "Name",
    "AWS::SecretsManager::Secret": "Name",
}
# Ref returns the ARN (or URL) for these types, the physical name for every other one.
_REF_IS_ARN = (*STATE_MACHINE_TYPES, "AWS::SNS::Topic", "AWS::SecretsManager::Secret")


def resolve_parameters(template: Mapping[str, Any], given: Mapping[str, str] | None) -> dict[str, str]:
    """The template's parameter values: ``given`` over the defaults, as strings (CloudFormation's view)."""
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    given = dict(given or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise StaticCheckError(f"unknown template parameter(s): {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            value = str(given[name])
        elif "Default" in spec:
            value = str(spec["Default"])
        else:
            raise StaticCheckError(f"parameter {name} has no default: give a value")
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(a) for a in allowed]:
            raise StaticCheckError(f"parameter {name}={value!r} is not one of {allowed}")
        values[name] = value
    return values


class Resolver:
    """Resolve CloudFormation intrinsics against the fake stack, one parameter set."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str] | None = None) -> None:
        self.template = template
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.parameters = resolve_parameters(template, parameters)
        self._conditions: dict[str, bool] = {}
        self.pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{STACK_NAME}/fake",
            "AWS::URLSuffix": "amazonaws.com",
        }

    # -- conditions
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            spec = (self.template.get("Conditions") or {}).get(name)
            if spec is None:
                raise StaticCheckError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(spec))
        return self._conditions[name]

    def active(self, logical_id: str) -> bool:
        """Whether the resource exists under these parameters (its Condition holds)."""
        cond = self._resource(logical_id).get("Condition")
        return cond is None or self.condition(str(cond))

    # -- names and ARNs
    def _resource(self, logical_id: str) -> Mapping[str, Any]:
        res = self.resources.get(logical_id)
        if not isinstance(res, Mapping):
            raise StaticCheckError(f"no resource {logical_id!r} in the template")
        return res

    def type_of(self, logical_id: str) -> str:
        return str(self._resource(logical_id).get("Type", ""))

    def name(self, logical_id: str) -> str:
        """The physical name: the name property when set, else a CloudFormation-style generated one."""
        res = self._resource(logical_id)
        rtype = str(res.get("Type", ""))
        prop = _NAME_PROPERTY.get(rtype)
        props = res.get("Properties") or {}
        if prop and props.get(prop) is not None:
            return str(self.resolve(props[prop]))
        if rtype in STATE_MACHINE_TYPES:
            return f"{logical_id}-{NAME_SUFFIX}"
        generated = f"{STACK_NAME}-{logical_id}-{NAME_SUFFIX}"
        return generated.lower() if rtype == "AWS::S3::Bucket" else generated

    def arn(self, logical_id: str) -> str:
        rtype, name = self.type_of(logical_id), self.name(logical_id)
        p, r, a = PARTITION, REGION, ACCOUNT_ID
        if rtype in FUNCTION_TYPES:
            return f"arn:{p}:lambda:{r}:{a}:function:{name}"
        if rtype in STATE_MACHINE_TYPES:
            return f"arn:{p}:states:{r}:{a}:stateMachine:{name}"
        templates = {
            "AWS::DynamoDB::Table": f"arn:{p}:dynamodb:{r}:{a}:table/{name}",
            "AWS::Events::EventBus": f"arn:{p}:events:{r}:{a}:event-bus/{name}",
            "AWS::Events::Rule": f"arn:{p}:events:{r}:{a}:rule/{name}",
            "AWS::S3::Bucket": f"arn:{p}:s3:::{name}",
            "AWS::SQS::Queue": f"arn:{p}:sqs:{r}:{a}:{name}",
            "AWS::SNS::Topic": f"arn:{p}:sns:{r}:{a}:{name}",
            "AWS::Logs::LogGroup": f"arn:{p}:logs:{r}:{a}:log-group:{name}:*",
            "AWS::IAM::Role": f"arn:{p}:iam::{a}:role/{name}",
            "AWS::SecretsManager::Secret": f"arn:{p}:secretsmanager:{r}:{a}:secret:{name}-AbCdEf",
            "AWS::SES::ConfigurationSet": f"arn:{p}:ses:{r}:{a}:configuration-set/{name}",
        }
        if rtype not in templates:
            raise StaticCheckError(f"{logical_id}: no fake ARN for type {rtype}")
        return templates[rtype]

    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        rtype = self.type_of(name)
        if rtype in _REF_IS_ARN:
            return self.arn(name)
        if rtype == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{self.name(name)}"
        return self.name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        rtype = self.type_of(logical_id)
        if attribute in ("Arn", "TopicArn"):
            return self.arn(logical_id)
        if attribute in ("Name", "QueueName", "TopicName", "StateMachineName"):
            return self.name(logical_id)
        if attribute == "QueueUrl":
            return str(self.ref(logical_id))
        if attribute == "FunctionUrl" and rtype == "AWS::Lambda::Url":
            return f"https://{logical_id.lower()}.lambda-url.{REGION}.on.aws/"
        if attribute == "StreamArn":
            return f"{self.arn(logical_id)}/stream/2020-01-01T00:00:00.000"
        raise StaticCheckError(f"Fn::GetAtt {logical_id}.{attribute}: attribute not modelled")

    # -- the resolver proper
    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function resolved (``AWS::NoValue`` entries dropped)."""
        if isinstance(value, Mapping):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                    return self._intrinsic(str(key), arg)
            out = {}
            for k, v in value.items():
                resolved = self.resolve(v)
                if resolved is not NO_VALUE:
                    out[k] = resolved
            return out
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        return value

    def _intrinsic(self, key: str, arg: Any) -> Any:
        if key == "Ref":
            return self.ref(str(arg))
        if key == "Condition":
            return self.condition(str(arg))
        if key == "Fn::GetAtt":
            lid, attr = (arg if isinstance(arg, list) else str(arg).split(".", 1))[:2]
            return self.get_att(str(lid), str(attr))
        if key == "Fn::Sub":
            text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
            return self._sub(str(text), variables)
        if key == "Fn::Join":
            sep, items = arg
            return str(sep).join(str(x) for x in self.resolve(items))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(str(sep))
        if key == "Fn::If":
            cond, when_true, when_false = arg
            return self.resolve(when_true if self.condition(str(cond)) else when_false)
        if key == "Fn::Equals":
            left, right = (self.resolve(x) for x in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(x) for x in arg)
        if key == "Fn::Or":
            return any(self.resolve(x) for x in arg)
        raise StaticCheckError(f"{key} is not supported by the static checks")

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            inner = match.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(self.resolve(variables[inner]))
            if inner not in self.pseudo and "." in inner and inner.split(".", 1)[0] in self.resources:
                lid, attr = inner.split(".", 1)
                return self.get_att(lid, attr)
            return str(self.ref(inner))

        return _SUB_VARIABLE.sub(replace, text)


# --------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class Machine:
    """One state machine of the translated template, with its substitutions applied."""

    logical_id: str
    type: str  # EXPRESS | STANDARD
    name: str
    arn: str
    definition: dict[str, Any]
    role: str | None  # logical id of its role, when the role is in the template
    leftover_placeholders: tuple[str, ...] = ()


@dataclass
class Stack:
    """The translated template and its state machines, for one parameter set."""

    root: Path
    parameters: dict[str, str]
    cfn: dict[str, Any]
    resolver: Resolver
    machines: dict[str, Machine]

    def function_timeouts(self) -> dict[str, float]:
        """Every function's Timeout, keyed by logical id, name and ARN."""
        out: dict[str, float] = {}
        for lid, res in self.cfn.get("Resources", {}).items():
            if res.get("Type") not in FUNCTION_TYPES or not self.resolver.active(lid):
                continue
            raw = (res.get("Properties") or {}).get("Timeout")
            seconds = float(self.resolver.resolve(raw)) if raw is not None else DEFAULT_LAMBDA_TIMEOUT_SECONDS
            for key in (lid, self.resolver.name(lid), self.resolver.arn(lid)):
                out[key] = seconds
        return out


def translated_template(
    root: Path, parameters: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The SAM-translated template and {state machine logical id: ASL text}."""
    raw = load_template(root / "template.yaml")
    resolve_parameters(raw, parameters)  # fail early, with our message, on a bad parameter
    try:
        prepared, definitions, _ = prepare(raw, root)
        cfn = translate(prepared, dict(parameters or {}), REGION)
    except TemplateError as exc:
        raise StaticCheckError(str(exc)) from exc
    return cfn, definitions


def load_stack(
    root: Path,
    parameters: Mapping[str, str] | None = None,
    *,
    cfn: dict[str, Any] | None = None,
    definitions: Mapping[str, str] | None = None,
) -> Stack:
    """Translate ``root/template.yaml`` (or take ``cfn``/``definitions`` as given) and collect its machines."""
    if cfn is None or definitions is None:
        translated, texts = translated_template(root, parameters)
        cfn = translated if cfn is None else cfn
        definitions = texts if definitions is None else definitions
    resolver = Resolver(cfn, parameters)
    machines: dict[str, Machine] = {}
    for lid, res in cfn.get("Resources", {}).items():
        if res.get("Type") != "AWS::StepFunctions::StateMachine" or not resolver.active(lid):
            continue
        props = res.get("Properties") or {}
        if lid in definitions:
            text = definitions[lid]
        elif isinstance(props.get("DefinitionString"), str):
            text = props["DefinitionString"]
        elif isinstance(props.get("Definition"), Mapping):
            text = json.dumps(props["Definition"])
        else:
            raise StaticCheckError(f"{lid}: no local definition (DefinitionUri must be a local file)")
        substitutions = resolver.resolve(props.get("DefinitionSubstitutions") or {})
        for key, value in substitutions.items():
            text = text.replace("${" + key + "}", value if isinstance(value, str) else json.dumps(value))
        try:
            definition = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StaticCheckError(f"{lid}: not JSON after substitutions: {exc}") from exc
        role_arn = props.get("RoleArn")
        role = None
        if isinstance(role_arn, Mapping) and "Fn::GetAtt" in role_arn:
            target = role_arn["Fn::GetAtt"]
            role = str(target[0] if isinstance(target, list) else str(target).split(".")[0])
        machines[lid] = Machine(
            logical_id=lid,
            type=str(resolver.resolve(props.get("StateMachineType", "STANDARD"))),
            name=resolver.name(lid),
            arn=resolver.arn(lid),
            definition=definition,
            role=role,
            leftover_placeholders=tuple(sorted(set(_PLACEHOLDER.findall(text)))),
        )
    return Stack(root=root, parameters=dict(parameters or {}), cfn=cfn, resolver=resolver, machines=machines)


def substituted_definitions(root: Path, parameters: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Each state machine's ASL with its DefinitionSubstitutions applied, by logical id.

    Substitution values are resolved to the fake stack's names and ARNs (e.g.
    ``arn:aws:lambda:us-east-1:123456789012:function:sesflow-SendFunction-Fake1Suffix2``), ``!Ref
    Param`` to the parameter's value (``parameters`` over the template's defaults).
    """
    return {lid: m.definition for lid, m in load_stack(root, parameters).machines.items()}


# --------------------------------------------------------------------------- ASL walking


class _Unresolved(Exception):
    """A value only known at run time, and not given in the assumptions."""


def _param(params: Mapping[str, Any], key: str, assumptions: Assumptions) -> str | None:
    """A task parameter's value: literal, or a ``.$`` path / JSONata expression given in ``inputs``."""
    value = params.get(key)
    if isinstance(value, str) and not (value.startswith("{%") and value.endswith("%}")):
        return value
    expression = params.get(f"{key}.$", value)
    if expression is None:
        return None
    given = assumptions.inputs.get(str(expression))
    if given is None:
        raise _Unresolved(f"{key} comes from {expression} at run time (give its value)")
    return str(given)


def _scopes(definition: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """Every (scope path, state name, state) of a definition, nested scopes included."""
    for name, state in (definition.get("States") or {}).items():
        yield path, name, state
        for label, inner in _inner_scopes(name, state):
            yield from _scopes(inner, f"{path}{label}/")


def _inner_scopes(name: str, state: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    if state.get("Type") == "Map":
        proc = state.get("ItemProcessor") or state.get("Iterator")
        return [(name, proc)] if isinstance(proc, Mapping) else []
    if state.get("Type") == "Parallel":
        return [(f"{name}[{i}]", branch) for i, branch in enumerate(state.get("Branches") or [])]
    return []


def _map_mode(state: Mapping[str, Any]) -> str:
    proc = state.get("ItemProcessor") or state.get("Iterator") or {}
    return str((proc.get("ProcessorConfig") or {}).get("Mode", "INLINE"))


@dataclass(frozen=True)
class ChildMachine:
    """The ItemProcessor of a Distributed Map: every item runs as its own execution."""

    path: str  # "SendStage", or "Outer/Inner" when nested
    definition: Mapping[str, Any]
    execution_type: str  # EXPRESS | STANDARD


def child_machines(definition: Mapping[str, Any]) -> list[ChildMachine]:
    """The Distributed Map children of ``definition``, nested ones included.

    ``ExecutionType`` missing is reported as STANDARD (Step Functions requires it for
    Distributed mode; the validator flags its absence).
    """
    out: list[ChildMachine] = []
    for path, name, state in _scopes(definition):
        if state.get("Type") == "Map" and _map_mode(state) == "DISTRIBUTED":
            proc = state.get("ItemProcessor") or {}
            etype = str((proc.get("ProcessorConfig") or {}).get("ExecutionType", "STANDARD"))
            out.append(ChildMachine(f"{path}{name}", proc, etype))
    return out


_RETRIER_INT_FIELDS = {"IntervalSeconds": 1, "MaxAttempts": 0, "MaxDelaySeconds": 1}


def retrier_problems(definition: Mapping[str, Any]) -> list[str]:
    """Retrier fields asl-validator accepts without checking (JitterStrategy, MaxDelaySeconds...)."""
    problems: list[str] = []
    for path, name, state in _scopes(definition):
        for i, retrier in enumerate(state.get("Retry") or []):
            where = f"{path}{name}.Retry[{i}]"
            for key, minimum in _RETRIER_INT_FIELDS.items():
                value = retrier.get(key)
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
                    problems.append(f"{where}.{key} must be an integer >= {minimum}, not {value!r}")
            rate = retrier.get("BackoffRate")
            if rate is not None and (not isinstance(rate, int | float) or rate < 1.0):
                problems.append(f"{where}.BackoffRate must be a number >= 1.0, not {rate!r}")
            jitter = retrier.get("JitterStrategy")
            if jitter is not None and jitter not in ("FULL", "NONE"):
                problems.append(f"{where}.JitterStrategy must be FULL or NONE, not {jitter!r}")
    return problems


# --------------------------------------------------------------------------- durations


def fmt_seconds(seconds: float) -> str:
    if math.isinf(seconds):
        return "unbounded"
    return f"{seconds:.2f}".rstrip("0").rstrip(".")


def fmt_duration(seconds: float) -> str:
    """``"42 s"``, or ``"unbounded"``."""
    return "unbounded" if math.isinf(seconds) else f"{fmt_seconds(seconds)} s"


def retry_wait_seconds(interval: float, rate: float, attempts: int, cap: float | None) -> float:
    """Sum of one retrier's waits: ``interval * rate**k`` for k < attempts, each capped by ``cap``.

    Jitter (``JitterStrategy: FULL``) draws each wait between 0 and that value, so it never
    lengthens it and is ignored. A BackoffRate below 1 (invalid) is taken as 1.
    """
    rate = max(float(rate), 1.0)
    total, delay = 0.0, float(interval)
    for k in range(attempts):
        if (cap is not None and delay >= cap) or rate == 1.0:
            return total + (delay if cap is None else min(delay, cap)) * (attempts - k)
        total += delay
        delay *= rate
        if math.isinf(delay):
            return math.inf
    return total


@dataclass(frozen=True)
class Assumptions:
    """What the ASL alone cannot tell, for one machine.

    ``inputs``: values of JSONPaths read by the machine (``SecondsPath``, ``TimestampPath`` as
    seconds from entering the state, ``TimeoutSecondsPath``, ``MaxConcurrencyPath``, ``FunctionName.$``,
    ``Bucket.$``...), keyed by the path text (``"$.config.throttleWaitSeconds"``); a Wait state's
    name as key overrides how long that state waits.
    ``loop_bounds``: how many times a state on a loop may run in one execution (``{"SendEmail": 6}``).
    ``map_items``: iterations of a Map state (for a Distributed Map: child executions), by state name.
    """

    inputs: Mapping[str, Any] = field(default_factory=dict)
    loop_bounds: Mapping[str, int] = field(default_factory=dict)
    map_items: Mapping[str, int] = field(default_factory=dict)


def _successors(state: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if state.get("Type") == "Choice":
        out += [str(rule["Next"]) for rule in state.get("Choices") or [] if "Next" in rule]
        if "Default" in state:
            out.append(str(state["Default"]))
    if "Next" in state:
        out.append(str(state["Next"]))
    out += [str(c["Next"]) for c in state.get("Catch") or [] if "Next" in c]
    return list(dict.fromkeys(out))


def _can_end(state: Mapping[str, Any]) -> bool:
    """Whether an execution (or branch) can end in this state: End, Succeed/Fail, or an uncaught error."""
    stype = state.get("Type")
    if state.get("End") is True or stype in ("Succeed", "Fail"):
        return True
    if stype == "Choice":
        return "Default" not in state  # States.NoChoiceMatched
    if stype in ("Task", "Map", "Parallel"):
        return not any("States.ALL" in (c.get("ErrorEquals") or []) for c in state.get("Catch") or [])
    return False


def _sccs(nodes: Sequence[str], succ: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), restricted to ``nodes``."""
    allowed = set(nodes)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter([s for s in succ[root] if s in allowed]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter([s for s in succ[child] if s in allowed])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
    return out


def _cycle_through(component: Sequence[str], succ: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle inside a strongly connected component, for naming it: [a, b, ..., a]."""
    members = set(component)
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        node = frontier.pop(0)
        for nxt in succ[node]:
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if nxt in members and nxt not in parents:
                parents[nxt] = node
                frontier.append(nxt)
    return [start]


_Key = tuple[str, tuple[int, ...]]  # a state and how many times each bounded state has run


class _Calculator:
    def __init__(self, function_timeouts: Mapping[str, float], assumptions: Assumptions) -> None:
        self.timeouts = function_timeouts
        self.a = assumptions

    # -- one scope (a machine, a branch, an item processor): the longest path
    def scope(self, scope: Mapping[str, Any]) -> tuple[float, list[str]]:
        states: Mapping[str, Any] = scope.get("States") or {}
        start = str(scope.get("StartAt"))
        if start not in states:
            raise StaticCheckError(f"StartAt {start!r} is not a state")
        succ = {name: [s for s in _successors(st) if s in states] for name, st in states.items()}
        reachable: list[str] = []
        seen = {start}
        todo = [start]
        while todo:
            node = todo.pop()
            reachable.append(node)
            for nxt in succ[node]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        cyclic: set[str] = set()
        for comp in _sccs(reachable, succ):
            if len(comp) > 1 or comp[0] in succ[comp[0]]:
                cyclic.update(comp)
        bounded = sorted(n for n in cyclic if n in self.a.loop_bounds)
        unbounded = [
            comp
            for comp in _sccs([n for n in reachable if n in cyclic and n not in bounded], succ)
            if len(comp) > 1 or comp[0] in succ[comp[0]]
        ]
        costs = {name: self.state(name, states[name]) for name in reachable}
        if unbounded:
            lines = [
                f"UNBOUNDED loop: {' -> '.join(_cycle_through(comp, succ))} "
                f"(no state of it has an iteration bound; loops among: {', '.join(sorted(comp))})"
                for comp in unbounded
            ]
            lines += [f"{name}: {detail}" for name, (sec, detail, _) in costs.items() if math.isinf(sec)]
            return math.inf, lines
        return self._longest(start, succ, states, costs, bounded)

    def _longest(
        self,
        start: str,
        succ: Mapping[str, Sequence[str]],
        states: Mapping[str, Any],
        costs: Mapping[str, tuple[float, str, list[str]]],
        bounded: Sequence[str],
    ) -> tuple[float, list[str]]:
        slot = {name: i for i, name in enumerate(bounded)}

        def enter(node: str, counts: tuple[int, ...]) -> _Key | None:
            if node in slot:
                i = slot[node]
                if counts[i] + 1 > self.a.loop_bounds[node]:
                    return None
                counts = (*counts[:i], counts[i] + 1, *counts[i + 1 :])
            return (node, counts)

        first = enter(start, tuple(0 for _ in bounded))
        if first is None:
            raise StaticCheckError(f"loop bound of {start!r} is 0: the machine cannot start")
        best: dict[_Key, tuple[float, _Key | None] | None] = {}
        work: list[tuple[_Key, bool]] = [(first, False)]
        while work:
            key, expanded = work.pop()
            if key in best:
                continue
            node, counts = key
            children = [k for k in (enter(s, counts) for s in succ[node]) if k is not None]
            pending = [k for k in children if k not in best]
            if pending and not expanded:
                work.append((key, True))
                work.extend((k, False) for k in pending)
                continue
            options: list[tuple[float, _Key | None]] = [(0.0, None)] if _can_end(states[node]) else []
            for child in children:
                result = best[child]
                if result is not None:
                    options.append((result[0], child))
            if not options:
                best[key] = None
                continue
            tail, nxt = max(options, key=lambda option: option[0])
            best[key] = (costs[node][0] + tail, nxt)
        result = best[first]
        if result is None:
            raise StaticCheckError("no path reaches an end within the loop bounds (a bound is too small)")
        lines: list[str] = []
        cursor: _Key | None = first
        while cursor is not None:
            node, counts = cursor
            seconds, detail, nested = costs[node]
            visit = f" [run {counts[slot[node]]} of {self.a.loop_bounds[node]}]" if node in slot else ""
            lines.append(f"{node}{visit}: {fmt_duration(seconds)} - {detail}")
            lines += ["    " + line for line in nested]
            entry = best[cursor]
            cursor = entry[1] if entry is not None else None
        return result[0], lines

    # -- one state
    def state(self, name: str, state: Mapping[str, Any]) -> tuple[float, str, list[str]]:
        stype = state.get("Type")
        if stype == "Task":
            attempt, why = self._task_attempt(name, state)
            return self._with_retries(state, attempt, why, [])
        if stype == "Wait":
            seconds, why = self._wait(name, state)
            return seconds, why, []
        if stype == "Map":
            body, why, nested = self._map(name, state)
            return self._with_retries(state, body, why, nested)
        if stype == "Parallel":
            worst, lines = 0.0, []
            for i, branch in enumerate(state.get("Branches") or []):
                seconds, branch_lines = self.scope(branch)
                lines += [f"branch {i}: {fmt_duration(seconds)}", *("    " + x for x in branch_lines)]
                worst = max(worst, seconds)
            return self._with_retries(state, worst, "Parallel: its longest branch", lines)
        return 0.0, str(stype), []

    def _with_retries(
        self, state: Mapping[str, Any], attempt: float, why: str, nested: list[str]
    ) -> tuple[float, str, list[str]]:
        retriers = state.get("Retry") or []
        if not retriers:
            return attempt, why, nested
        retries, waits = 0, 0.0
        for retrier in retriers:
            n = int(retrier.get("MaxAttempts", 3))
            cap = retrier.get("MaxDelaySeconds")
            waits += retry_wait_seconds(
                float(retrier.get("IntervalSeconds", 1)),
                float(retrier.get("BackoffRate", 2.0)),
                n,
                None if cap is None else float(cap),
            )
            retries += n
        attempts = 1 + retries
        total = attempts * attempt + waits if attempt else waits
        detail = f"{why}; {attempts} attempts x {fmt_duration(attempt)} + {fmt_duration(waits)} of retry waits"
        return total, detail, nested

    def _input(self, key: str) -> Any:
        return self.a.inputs.get(key)

    def _seconds_field(self, state: Mapping[str, Any], key: str) -> float | None:
        if isinstance(state.get(key), int | float):
            return float(state[key])
        path = state.get(f"{key}Path") or (state.get(key) if isinstance(state.get(key), str) else None)
        value = self._input(str(path)) if path else None
        return float(value) if value is not None else None

    def _function_timeout(self, function: str) -> float | None:
        if function in self.timeouts:
            return self.timeouts[function]
        if ":function:" in function:
            name = function.split(":function:", 1)[1].split(":", 1)[0]
            return self.timeouts.get(name)
        return None

    def _task_attempt(self, name: str, state: Mapping[str, Any]) -> tuple[float, str]:
        resource = str(state.get("Resource", ""))
        timeout = self._seconds_field(state, "TimeoutSeconds")
        limit = f", TimeoutSeconds {fmt_seconds(timeout)}" if timeout is not None else ""
        kind = _integration(resource)
        if resource.endswith(".waitForTaskToken") or ".sync" in resource or ":activity:" in resource:
            if timeout is not None:
                return timeout, f"{kind}{limit}"
            heartbeat = " (HeartbeatSeconds alone does not bound it)" if "HeartbeatSeconds" in state else ""
            return math.inf, f"UNBOUNDED: {kind} without TimeoutSeconds{heartbeat}"
        params = state.get("Parameters") or state.get("Arguments") or {}
        is_lambda = resource.startswith(f"arn:{PARTITION}:lambda:") or kind == "lambda:invoke"
        if is_lambda and params.get("InvocationType") != "Event":
            try:
                function = resource if kind == "lambda function" else _param(params, "FunctionName", self.a)
            except _Unresolved:
                function = None
            ftimeout = self._function_timeout(function) if function else None
            if ftimeout is None and timeout is None:
                return math.inf, f"UNBOUNDED: lambda:invoke of {function or 'a dynamic function'}: timeout unknown"
            bounds = [t for t in (ftimeout, timeout) if t is not None]
            short = (function or "?").rsplit(":", 1)[-1]
            known = f"function Timeout {fmt_seconds(ftimeout)} s" if ftimeout is not None else "function unknown"
            return min(bounds), f"lambda:invoke {short} ({known}{limit})"
        base = HTTP_TASK_SECONDS if kind == "http:invoke" else SDK_CALL_SECONDS
        seconds = min(base, timeout) if timeout is not None else base
        return seconds, f"{kind} (service call, {fmt_seconds(base)} s{limit})"

    def _wait(self, name: str, state: Mapping[str, Any]) -> tuple[float, str]:
        override = self._input(name)
        if override is not None:
            return float(override), f"Wait, given {fmt_seconds(float(override))} s"
        seconds = state.get("Seconds")
        if isinstance(seconds, int | float):
            return float(seconds), f"Wait Seconds {fmt_seconds(float(seconds))}"
        for key in ("SecondsPath", "TimestampPath", "Seconds", "Timestamp"):
            if key in state:
                value = self._input(str(state[key])) if key != "Timestamp" else None
                if value is None:
                    return math.inf, f"UNBOUNDED: Wait {key} {state[key]} (value not given)"
                return float(value), f"Wait {key} {state[key]} = {fmt_seconds(float(value))}"
        return 0.0, "Wait"

    def _map(self, name: str, state: Mapping[str, Any]) -> tuple[float, str, list[str]]:
        mode = _map_mode(state)
        proc = state.get("ItemProcessor") or state.get("Iterator") or {}
        body, nested = self.scope(proc)
        items = self.a.map_items.get(name)
        if "MaxConcurrency" in state:
            concurrency, conc_why = int(state["MaxConcurrency"]), f"MaxConcurrency {state['MaxConcurrency']}"
        elif "MaxConcurrencyPath" in state and self._input(str(state["MaxConcurrencyPath"])) is not None:
            concurrency = int(self._input(str(state["MaxConcurrencyPath"])))
            conc_why = f"{state['MaxConcurrencyPath']} = {concurrency}"
        elif "MaxConcurrencyPath" in state:
            concurrency, conc_why = 1, f"{state['MaxConcurrencyPath']} not given: taken as 1"
        else:
            concurrency, conc_why = 0, "no MaxConcurrency"
        unit = "child execution" if mode == "DISTRIBUTED" else "iteration"
        nested = [f"one {unit}: {fmt_duration(body)}", *("    " + x for x in nested)]
        if items is None:
            return math.inf, f"UNBOUNDED: {mode} Map, number of items not given (map_items[{name!r}])", nested
        rounds = 0 if items == 0 else (1 if concurrency == 0 else math.ceil(items / concurrency))
        extra = SDK_CALL_SECONDS * (("ItemReader" in state) + ("ResultWriter" in state))
        total = rounds * body + extra if rounds else extra
        why = f"{mode} Map: {items} items, {conc_why}: {rounds} rounds x {fmt_duration(body)}"
        if extra:
            why += f" + {fmt_seconds(extra)} s ItemReader/ResultWriter"
        return total, why, nested


def _integration(resource: str) -> str:
    """``arn:aws:states:::aws-sdk:dynamodb:query`` -> ``aws-sdk:dynamodb:query``."""
    prefix = f"arn:{PARTITION}:states:::"
    if resource.startswith(prefix):
        return resource[len(prefix) :]
    if resource.startswith(f"arn:{PARTITION}:lambda:"):
        return "lambda function"
    if ":activity:" in resource:
        return "activity"
    return resource


def worst_case_seconds(
    definition: Mapping[str, Any],
    function_timeouts: Mapping[str, float],
    inputs: Mapping[str, Any] | None = None,
    loop_bounds: Mapping[str, int] | None = None,
    map_items: Mapping[str, int] | None = None,
) -> tuple[float, list[str]]:
    """The longest wall-clock time one execution of ``definition`` can take, and its path.

    Costs, per state:

    - Task, one attempt: ``lambda:invoke`` (or a function ARN as Resource) lasts up to the
      function's timeout (``function_timeouts`` keyed by ARN or name), or ``TimeoutSeconds`` when
      smaller; every other request-response integration :data:`SDK_CALL_SECONDS` (``http:invoke``
      :data:`HTTP_TASK_SECONDS`), or ``TimeoutSeconds`` when smaller. ``.waitForTaskToken``,
      ``.sync`` and activity tasks last ``TimeoutSeconds``, and without it are unbounded
      (``HeartbeatSeconds`` alone does not bound them: a worker that keeps sending heartbeats keeps
      the task running).
    - Retry, conservatively: every retrier may fire its full ``MaxAttempts`` (default 3) in the
      same state, one after another, because different errors match different retriers and each
      retrier keeps its own count. So a state runs ``1 + sum(MaxAttempts)`` attempts, plus every
      retrier's waits ``IntervalSeconds * BackoffRate**k`` (defaults 1 and 2.0) capped by
      ``MaxDelaySeconds``; ``JitterStrategy: FULL`` only shortens a wait and is ignored.
    - Wait: ``Seconds``; ``SecondsPath``/``TimestampPath`` from ``inputs`` (by path, or by the
      state's name), else unbounded; a literal ``Timestamp`` is unbounded unless its state's name
      is in ``inputs``.
    - Map: ``ceil(items / MaxConcurrency)`` rounds of the body (``map_items`` by state name; none
      given: unbounded; ``MaxConcurrencyPath`` not in ``inputs``: concurrency 1). For a
      Distributed Map the body is one child execution (see :func:`child_machines`), plus one
      service call each for ItemReader and ResultWriter. Parallel: its longest branch. Retry on
      either reruns the whole state.
    - Pass, Choice, Succeed, Fail: 0.

    The path is the longest one through Next, Choice rules, Default and Catch. Every loop must
    go through a state named in ``loop_bounds`` (the most times that state runs in one
    execution); a loop without one makes the result ``inf`` and is named in the explanation.
    """
    calc = _Calculator(function_timeouts, Assumptions(inputs or {}, loop_bounds or {}, map_items or {}))
    seconds, lines = calc.scope(definition)
    return seconds, [*lines, f"total: {fmt_duration(seconds)}"]


@dataclass(frozen=True)
class MachineDuration:
    machine: str  # logical id, or "<logical id>/<Map state>" for a Distributed Map child
    type: str
    seconds: float
    explanation: list[str]

    @property
    def limit(self) -> float | None:
        return EXPRESS_LIMIT_SECONDS if self.type == "EXPRESS" else None

    @property
    def exceeds(self) -> bool:
        return self.limit is not None and self.seconds > self.limit


def default_assumptions(stack: Stack) -> dict[str, Assumptions]:
    """What sesflow's machines read at run time, from the parameters and handlers, by machine.

    Send: no loop and no Wait (a deferred send is a new execution), so nothing to assume.
    Campaign: the items bucket is the campaigns bucket (the plan handler's output
    ``bucket``); stages, pauses and approvals are not bounded.
    """
    p = stack.resolver.parameters
    out: dict[str, Assumptions] = {"SendStateMachine": Assumptions()}
    if "CampaignsBucket" in stack.resolver.resources:
        out["CampaignStateMachine"] = Assumptions(
            inputs={
                "$.bucket": stack.resolver.name("CampaignsBucket"),
                "$.pauseCheckSeconds": float(p.get("CampaignPauseCheckSeconds", "0")),
                # any campaign id: the grant must cover every campaign's result prefix
                "States.Format('campaigns/{}/map-results', $.campaignId)": "campaigns/any-campaign-id/map-results",
            }
        )
    return out


def machine_durations(stack: Stack, assumptions: Mapping[str, Assumptions] | None = None) -> list[MachineDuration]:
    """Worst case of every machine and every Distributed Map child, EXPRESS or not."""
    assumptions = default_assumptions(stack) if assumptions is None else assumptions
    timeouts = stack.function_timeouts()
    out: list[MachineDuration] = []
    for lid, machine in stack.machines.items():
        a = assumptions.get(lid, Assumptions())
        seconds, lines = worst_case_seconds(machine.definition, timeouts, a.inputs, a.loop_bounds, a.map_items)
        out.append(MachineDuration(lid, machine.type, seconds, lines))
        for child in child_machines(machine.definition):
            seconds, lines = worst_case_seconds(child.definition, timeouts, a.inputs, a.loop_bounds, a.map_items)
            out.append(MachineDuration(f"{lid}/{child.path}", child.execution_type, seconds, lines))
    return out


def express_machines(root: Path, parameters: Mapping[str, str] | None = None) -> list[MachineDuration]:
    """Every machine that runs as EXPRESS under ``parameters`` (Distributed Map children included)."""
    return [d for d in machine_durations(load_stack(root, parameters)) if d.type == "EXPRESS"]


# --------------------------------------------------------------------------- IAM grants


@dataclass(frozen=True)
class Need:
    """What one state needs from the machine's role. ``unresolved`` says why it was not derived."""

    machine: str
    state: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    why: str
    unresolved: str | None = None


@dataclass(frozen=True)
class MissingGrant:
    machine: str
    state: str
    action: str
    resource: str

    def __str__(self) -> str:
        return f"{self.machine}, {self.state}, {self.action}, {self.resource}"


@dataclass
class GrantReport:
    needs: list[Need]
    missing: list[MissingGrant]
    unchecked: list[Need]


def _arn(service: str, resource: str, *, regional: bool = True) -> str:
    where = f"{REGION}:{ACCOUNT_ID}" if regional else ":"
    return f"arn:{PARTITION}:{service}:{where}:{resource}"


def _function_arn(function: str) -> str:
    if function.startswith("arn:"):
        return function
    if ":" in function:  # "name:qualifier" or "account:function:name"
        return _arn("lambda", f"function:{function.split(':function:')[-1]}")
    return _arn("lambda", f"function:{function}")


def _table_arn(table: str) -> str:
    return table if table.startswith("arn:") else _arn("dynamodb", f"table/{table}")


def _bus_arn(bus: str) -> str:
    return bus if bus.startswith("arn:") else _arn("events", f"event-bus/{bus}")


def _queue_arn(url: str) -> str:
    parts = url.rstrip("/").split("/")
    return _arn("sqs", parts[-1]) if len(parts) >= 2 else url


_IAM_PREFIX = {"sfn": "states", "sesv2": "ses", "cloudwatchlogs": "logs", "eventbridge": "events"}


def _sdk_resources(service: str, api: str, params: Mapping[str, Any], a: Assumptions) -> tuple[str, ...]:
    if service == "dynamodb":
        table = _param(params, "TableName", a)
        if table is None:
            raise _Unresolved("no TableName")
        index = _param(params, "IndexName", a) if ("IndexName" in params or "IndexName.$" in params) else None
        return (f"{_table_arn(table)}/index/{index}",) if index else (_table_arn(table),)
    if service == "s3":
        bucket = _param(params, "Bucket", a)
        key = _param(params, "Key", a) if "Key" in params or "Key.$" in params else None
        if bucket is None:
            raise _Unresolved("no Bucket")
        if api.lower().startswith("list") or key is None:
            return (f"arn:{PARTITION}:s3:::{bucket}",)
        return (f"arn:{PARTITION}:s3:::{bucket}/{key}",)
    if service == "lambda":
        function = _param(params, "FunctionName", a)
        if function is None:
            raise _Unresolved("no FunctionName")
        return (_function_arn(function),)
    if service == "sns":
        topic = _param(params, "TopicArn", a)
        if topic is None:
            raise _Unresolved("no TopicArn")
        return (topic,)
    if service == "sqs":
        url = _param(params, "QueueUrl", a)
        if url is None:
            raise _Unresolved("no QueueUrl")
        return (_queue_arn(url),)
    if service == "sfn":
        machine = _param(params, "StateMachineArn", a)
        if machine is None:
            raise _Unresolved("no StateMachineArn")
        return (machine,)
    raise _Unresolved(f"resources of aws-sdk:{service} are not derived by this check")


def _task_needs(machine: str, state_name: str, state: Mapping[str, Any], a: Assumptions) -> list[Need]:
    resource = str(state.get("Resource", ""))
    params: Mapping[str, Any] = state.get("Parameters") or state.get("Arguments") or {}
    base = re.sub(r"\.(sync(:2)?|waitForTaskToken)$", "", resource)
    kind = _integration(base)

    def need(actions: Iterable[str], resources: Iterable[str]) -> Need:
        return Need(machine, state_name, tuple(actions), tuple(resources), kind)

    if kind == "lambda:invoke" or base.startswith(f"arn:{PARTITION}:lambda:"):
        function = base if base.startswith("arn:") and kind != "lambda:invoke" else _param(params, "FunctionName", a)
        if function is None:
            raise _Unresolved("no FunctionName")
        return [need(["lambda:InvokeFunction"], [_function_arn(function)])]
    if kind.startswith("aws-sdk:"):
        _, service, api = kind.split(":", 2)
        action = f"{_IAM_PREFIX.get(service, service)}:{api[:1].upper()}{api[1:]}"
        return [need([action], _sdk_resources(service, api, params, a))]
    if kind.startswith("dynamodb:"):
        api = kind.split(":", 1)[1]
        return [need([f"dynamodb:{api[:1].upper()}{api[1:]}"], _sdk_resources("dynamodb", api, params, a))]
    if kind == "events:putEvents":
        entries = params.get("Entries")
        if not isinstance(entries, list):
            raise _Unresolved("Entries come from the input at run time")
        buses = []
        for entry in entries:
            bus = _param(entry, "EventBusName", a) if isinstance(entry, Mapping) else None
            buses.append(_bus_arn(bus or "default"))
        return [need(["events:PutEvents"], dict.fromkeys(buses))]
    if kind in ("sns:publish", "sqs:sendMessage"):
        service, api = kind.split(":")
        return [need([f"{service}:{api[:1].upper()}{api[1:]}"], _sdk_resources(service, api, params, a))]
    if kind == "states:startExecution":
        target = _param(params, "StateMachineArn", a)
        if target is None:
            raise _Unresolved("no StateMachineArn")
        needs = [need(["states:StartExecution"], [target])]
        if resource.endswith((".sync", ".sync:2")):
            executions = target.replace(":stateMachine:", ":execution:") + ":*"
            rule = _arn("events", "rule/StepFunctionsGetEventsForStepFunctionsExecutionRule")
            needs += [
                need(["states:DescribeExecution", "states:StopExecution"], [executions]),
                need(["events:PutTargets", "events:PutRule", "events:DescribeRule"], [rule]),
            ]
        return needs
    if kind == "activity":
        return []  # the worker polls the activity; the machine's role needs nothing
    raise _Unresolved(f"integration {kind} is not modelled by this check")


def _map_needs(machine: Machine, state_name: str, state: Mapping[str, Any], a: Assumptions) -> list[Need]:
    """Distributed Map: start and supervise its children; read items; write results."""
    needs: list[Need] = []
    lid = machine.logical_id
    if _map_mode(state) == "DISTRIBUTED":
        executions = f"arn:{PARTITION}:states:{REGION}:{ACCOUNT_ID}:execution:{machine.name}"
        needs.append(Need(lid, state_name, ("states:StartExecution",), (machine.arn,), "Distributed Map children"))
        # Child execution ARNs are execution:<machine>/<map run label>:<id>; the AWS examples show
        # both <machine>/* and <machine>:*, so both are required here.
        needs.append(
            Need(
                lid,
                state_name,
                ("states:DescribeExecution", "states:StopExecution"),
                (f"{executions}/*", f"{executions}:*"),
                "Distributed Map children",
            )
        )
    for part, actions in (
        ("ItemReader", None),
        ("ResultWriter", ("s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload")),
    ):
        spec = state.get(part)
        if not isinstance(spec, Mapping):
            continue
        params: Mapping[str, Any] = spec.get("Parameters") or spec.get("Arguments") or {}
        kind = _integration(str(spec.get("Resource", "")))
        try:
            bucket = _param(params, "Bucket", a)
            if bucket is None:
                raise _Unresolved("no Bucket")
            if part == "ResultWriter":
                prefix = _param(params, "Prefix", a) if "Prefix" in params or "Prefix.$" in params else ""
                needs.append(Need(lid, state_name, actions or (), (f"arn:{PARTITION}:s3:::{bucket}/{prefix}*",), kind))
            elif kind == "s3:listObjectsV2":
                needs.append(Need(lid, state_name, ("s3:ListBucket",), (f"arn:{PARTITION}:s3:::{bucket}",), kind))
            else:  # s3:getObject: the key is usually dynamic, any object of the bucket
                needs.append(Need(lid, state_name, ("s3:GetObject",), (f"arn:{PARTITION}:s3:::{bucket}/*",), kind))
        except _Unresolved as exc:
            needs.append(Need(lid, f"{state_name}.{part}", (), (), kind, str(exc)))
    return needs


def stack_needs(stack: Stack, assumptions: Mapping[str, Assumptions] | None = None) -> list[Need]:
    assumptions = default_assumptions(stack) if assumptions is None else assumptions
    needs: list[Need] = []
    for lid, machine in stack.machines.items():
        a = assumptions.get(lid, Assumptions())
        for path, name, state in _scopes(machine.definition):
            where = f"{path}{name}"
            try:
                if state.get("Type") == "Task":
                    needs += [
                        Need(n.machine, where, n.actions, n.resources, n.why) for n in _task_needs(lid, name, state, a)
                    ]
                elif state.get("Type") == "Map":
                    needs += [
                        Need(n.machine, n.state.replace(name, where, 1), n.actions, n.resources, n.why, n.unresolved)
                        for n in _map_needs(machine, name, state, a)
                    ]
            except _Unresolved as exc:
                needs.append(Need(lid, where, (), (), _integration(str(state.get("Resource", ""))), str(exc)))
    return needs


def integration_grants(root: Path, parameters: Mapping[str, str] | None = None) -> list[Need]:
    """For every Task (and Map ItemReader/ResultWriter, Distributed Map start) of every machine:
    the IAM actions and resource ARNs it needs. Needs that could not be derived carry ``unresolved``."""
    return stack_needs(load_stack(root, parameters))


def glob_covers(pattern: str, target: str, *, ignore_case: bool = False) -> bool:
    """Whether IAM wildcard ``pattern`` (``*``, ``?``) matches every string ``target`` can stand for.

    ``target`` may itself hold wildcards (``arn:aws:s3:::bucket/*``): a ``*`` in it is covered
    only by a ``*`` in the pattern, a ``?`` by ``?`` or ``*``.
    """
    if ignore_case:
        pattern, target = pattern.lower(), target.lower()
    n, m = len(pattern), len(target)
    # covers[j] for the current i: pattern[i:] covers target[j:]
    below = [False] * (m + 1)
    below[m] = True
    for i in range(n - 1, -1, -1):
        row = [False] * (m + 1)
        p = pattern[i]
        for j in range(m, -1, -1):
            if p == "*":
                row[j] = below[j] or (j < m and row[j + 1])
            elif j < m and (target[j] == p or (p == "?" and target[j] != "*")):
                row[j] = below[j + 1]
        below = row
    return below[0]


@dataclass(frozen=True)
class _Statement:
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def allows(self, action: str, resource: str) -> bool:
        return any(glob_covers(a, action, ignore_case=True) for a in self.actions) and any(
            glob_covers(r, resource) for r in self.resources
        )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(stack: Stack, role: str) -> list[_Statement]:
    """The Allow statements of a role's inline policies and of AWS::IAM::Policy resources on it.

    Managed policies (``ManagedPolicyArns``) are not evaluated. Refuses Deny, NotAction,
    NotResource and Condition: the check would be unsound with them.
    """
    documents: list[tuple[str, Any]] = []
    resources = stack.cfn.get("Resources", {})
    role_res = resources.get(role) or {}
    for policy in (role_res.get("Properties") or {}).get("Policies") or []:
        documents.append((f"{role}/{policy.get('PolicyName')}", policy.get("PolicyDocument")))
    for lid, res in resources.items():
        if res.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::RolePolicy", "AWS::IAM::ManagedPolicy"):
            props = res.get("Properties") or {}
            targets = _as_list(props.get("Roles") or []) + _as_list(props.get("RoleName") or [])
            if {"Ref": role} in targets and stack.resolver.active(lid):
                documents.append((lid, props.get("PolicyDocument")))
    statements: list[_Statement] = []
    for where, document in documents:
        resolved = stack.resolver.resolve(document or {})
        for st in _as_list(resolved.get("Statement") or []):
            unsupported = sorted(set(st) & {"NotAction", "NotResource", "Condition", "NotPrincipal"})
            if st.get("Effect") != "Allow" or unsupported:
                what = f"Effect {st.get('Effect')}" if st.get("Effect") != "Allow" else ", ".join(unsupported)
                raise StaticCheckError(f"{where}: a statement with {what}; the grants check only evaluates Allow")
            statements.append(
                _Statement(
                    tuple(str(x) for x in _as_list(st.get("Action"))),
                    tuple(str(x) for x in _as_list(st.get("Resource"))),
                )
            )
    return statements


def check_stack_grants(stack: Stack, assumptions: Mapping[str, Assumptions] | None = None) -> GrantReport:
    needs = stack_needs(stack, assumptions)
    missing: list[MissingGrant] = []
    unchecked: list[Need] = []
    cache: dict[str, list[_Statement]] = {}
    for need in needs:
        machine = stack.machines[need.machine]
        if need.unresolved is not None or machine.role is None:
            unchecked.append(need if machine.role else replace(need, unresolved="its role is not in the template"))
            continue
        if machine.role not in cache:
            cache[machine.role] = role_statements(stack, machine.role)
        for action in need.actions:
            for resource in need.resources:
                if not any(st.allows(action, resource) for st in cache[machine.role]):
                    missing.append(MissingGrant(need.machine, need.state, action, resource))
    return GrantReport(needs, missing, unchecked)


def check_grants(root: Path, parameters: Mapping[str, str] | None = None) -> GrantReport:
    """Every need of :func:`integration_grants` against the machine's role in the translated template."""
    return check_stack_grants(load_stack(root, parameters))


# --------------------------------------------------------------------------- asl-validator


def asl_validator_path(root: Path) -> Path:
    return root / "node_modules" / ".bin" / "asl-validator"


def ensure_asl_validator(root: Path) -> Path:
    """``node_modules/.bin/asl-validator``, after ``npm ci --silent`` when it is missing."""
    validator = asl_validator_path(root)
    if validator.exists():
        return validator
    npm = shutil.which("npm")
    if npm is None:
        raise StaticCheckError("asl-validator is not installed and npm is not on PATH (install Node.js, then npm ci)")
    proc = subprocess.run([npm, "ci", "--silent"], cwd=root, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0 or not validator.exists():
        raise StaticCheckError(f"npm ci failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return validator


def validate_asl(stack: Stack) -> list[str]:
    """Problems found in the substituted definitions: asl-validator's, leftover ``${...}``, retriers."""
    validator = ensure_asl_validator(stack.root)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="sesflow-asl-") as tmp:
        for lid, machine in stack.machines.items():
            path = Path(tmp) / f"{lid}.asl.json"
            path.write_text(json.dumps(machine.definition, indent=2), encoding="utf-8")
            proc = subprocess.run(
                [str(validator), "--json-path", str(path)], capture_output=True, text=True, timeout=120
            )
            if proc.returncode != 0:
                output = "\n".join(x.strip() for x in (proc.stdout, proc.stderr) if x.strip())
                problems.append(f"{lid}: asl-validator rejects the substituted definition:\n{output}")
            if machine.leftover_placeholders:
                names = ", ".join("${" + x + "}" for x in machine.leftover_placeholders)
                problems.append(f"{lid}: placeholders without a DefinitionSubstitutions entry: {names}")
            problems += [f"{lid}: {p}" for p in retrier_problems(machine.definition)]
    return problems


# --------------------------------------------------------------------------- CLI


def _run_asl(stack: Stack, out: Any) -> bool:
    version = ""
    problems = validate_asl(stack)
    package = stack.root / "node_modules" / "asl-validator" / "package.json"
    if package.exists():
        version = " " + str(json.loads(package.read_text(encoding="utf-8")).get("version", ""))
    if problems:
        print(f"asl-validator{version}: FAILED", file=out)
        for problem in problems:
            print("  " + problem.replace("\n", "\n    "), file=out)
        return False
    print(f"asl-validator{version}: ok ({', '.join(stack.machines)})", file=out)
    return True


def _run_durations(stack: Stack, out: Any) -> bool:
    durations = machine_durations(stack)
    width = max([len(d.machine) for d in durations] + [len("machine")])
    print(f"{'machine':<{width}}  {'type':<8}  {'worst case':>12}  {'limit':>7}  verdict", file=out)
    for d in durations:
        limit = fmt_duration(d.limit) if d.limit is not None else "-"
        verdict = "EXCEEDS" if d.exceeds else ("ok" if d.limit is not None else "not checked")
        print(f"{d.machine:<{width}}  {d.type:<8}  {fmt_duration(d.seconds):>12}  {limit:>7}  {verdict}", file=out)
    for d in durations:
        if d.exceeds:
            limit = fmt_duration(EXPRESS_LIMIT_SECONDS)
            print(f"\n{d.machine} ({d.type}) can run {fmt_duration(d.seconds)}, over the {limit} limit:", file=out)
            lines = d.explanation
        elif math.isinf(d.seconds):
            print(f"\n{d.machine} ({d.type}) is unbounded:", file=out)
            lines = [line for line in d.explanation if "UNBOUNDED" in line]
        else:
            continue
        for line in lines:
            print("  " + line, file=out)
    return not any(d.exceeds for d in durations)


#: error names the AWS services raise, matched by prefix; every other name in a Retry or Catch
#: must be a class of sesflow_core.errors (the Python <-> ASL contract)
#: error names of services and of the Lambda runtime (a function that crashed: Runtime.ExitError,
#: or timed out: Sandbox.Timedout), not ours
SERVICE_ERROR_PREFIXES = (
    "States.",
    "Lambda.",
    "DynamoDB.",
    "DynamoDb.",
    "S3.",
    "SES.",
    "SesV2.",
    "EventBridge.",
    "SQS.",
    "Runtime.",
    "Sandbox.",
)


def _error_names(states: Mapping[str, Any]) -> dict[str, set[str]]:
    """ErrorEquals names of every Retry and Catch, by state (nested Map/Parallel states too)."""
    found: dict[str, set[str]] = {}
    for name, state in states.items():
        for rule in [*state.get("Retry", []), *state.get("Catch", [])]:
            found.setdefault(name, set()).update(rule.get("ErrorEquals", []))
        for nested in [state.get("ItemProcessor") or state.get("Iterator") or {}, *state.get("Branches", [])]:
            for inner, names in _error_names(nested.get("States", {})).items():
                found.setdefault(f"{name}/{inner}", set()).update(names)
    return found


def unknown_error_names(stack: Stack) -> list[str]:
    """``machine/state: name`` for every error name that is neither a service's nor ours."""
    from sesflow_core.errors import ASL_ERROR_NAMES

    ours = set(ASL_ERROR_NAMES)
    return [
        f"{m.logical_id}/{state}: {name}"
        for m in stack.machines.values()
        for state, names in _error_names(m.definition.get("States", {})).items()
        for name in sorted(names)
        if not name.startswith(SERVICE_ERROR_PREFIXES) and name not in ours
    ]


def _run_error_names(stack: Stack, out: Any) -> bool:
    unknown = unknown_error_names(stack)
    print(
        "error names: every Retry/Catch name is a service error or a sesflow_core.errors class"
        if not unknown
        else "error names not raised by anything:\n  " + "\n  ".join(unknown),
        file=out,
    )
    return not unknown


def _run_grants(stack: Stack, out: Any) -> bool:
    report = check_stack_grants(stack)
    checked = len(report.needs) - len(report.unchecked)
    print(
        f"grants: {checked} needs of {len(stack.machines)} machines checked, {len(report.missing)} missing, "
        f"{len(report.unchecked)} not checked",
        file=out,
    )
    for need in report.unchecked:
        print(f"  not checked: {need.machine}, {need.state}: {need.why}: {need.unresolved}", file=out)
    for missing in report.missing:
        print(f"  missing grant: {missing}", file=out)
    return not report.missing


def _parameter(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sesflow.staticcheck", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--asl-validator", action="store_true", help="validate the substituted ASL (npm asl-validator)")
    parser.add_argument("--durations", action="store_true", help="worst-case durations; fail when EXPRESS > 300 s")
    parser.add_argument("--grants", action="store_true", help="IAM grants of every integration; fail on a missing one")
    parser.add_argument(
        "--error-names",
        action="store_true",
        help="every Retry/Catch error name is a service error or a domain exception",
    )
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="project root")
    parser.add_argument(
        "--parameter",
        action="append",
        type=_parameter,
        default=[],
        metavar="NAME=VALUE",
        help="template parameter override (repeatable)",
    )
    args = parser.parse_args(argv)
    every = ["asl_validator", "durations", "grants", "error_names"]
    selected = [name for name in every if getattr(args, name)] or every
    runners = {
        "asl_validator": _run_asl,
        "durations": _run_durations,
        "grants": _run_grants,
        "error_names": _run_error_names,
    }
    try:
        stack = load_stack(args.root.resolve(), dict(args.parameter))
        results = []
        for name in selected:
            results.append(runners[name](stack, sys.stdout))
            sys.stdout.flush()
    except StaticCheckError as exc:
        print(f"staticcheck: {exc}", file=sys.stderr)
        return 2
    return 0 if all(results) else 1


if __name__ == "__main__":
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    sys.exit(main())
