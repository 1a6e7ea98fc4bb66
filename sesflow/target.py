"""Where the CLI talks to: the embedded local AWS (default) or a deployed stack.

The only difference between the two is the endpoint and how physical names are found
(local state file vs. CloudFormation stack resources and outputs); every call after that
is the same public AWS API.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REGION = "us-east-1"
STATE_DIR_NAME = ".sesflow"


class TargetError(Exception):
    """No usable target (local stack not running, stack not found, unknown resource)."""


class Clients:
    """boto3 clients for one endpoint and region, created once each."""

    def __init__(self, region: str, endpoint_url: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._cache: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._cache:
            import boto3
            from botocore.config import Config

            kwargs: dict[str, Any] = {
                "region_name": self.region,
                "config": Config(retries={"max_attempts": 3, "mode": "standard"}),
            }
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
                kwargs["aws_access_key_id"] = "local"
                kwargs["aws_secret_access_key"] = "local"  # noqa: S105 - local emulator
            make: Callable[..., Any] = boto3.client  # any service by name (the stubs type literal names)
            self._cache[service] = make(service, **kwargs)
        return self._cache[service]


def find_root(start: Path | None = None) -> Path:
    """The project root: SESFLOW_ROOT, else the nearest folder up with a template.yaml."""
    env = os.environ.get("SESFLOW_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").is_file():
            return folder
    raise TargetError("no template.yaml here or above; run from the project or set SESFLOW_ROOT")


def state_dir(root: Path) -> Path:
    return Path(os.environ.get("SESFLOW_STATE_DIR") or root / STATE_DIR_NAME)


@dataclass
class Target:
    clients: Clients
    stack_name: str
    outputs: dict[str, str]
    resources: dict[str, dict[str, str]]
    local: bool
    state: dict[str, Any] = field(default_factory=dict)

    def physical_id(self, logical_id: str, resource_type: str | None = None) -> str:
        res = self.resources.get(logical_id)
        if res is None or (resource_type and res["type"] != resource_type):
            kinds = sorted(
                lid for lid, r in self.resources.items() if resource_type is None or r["type"] == resource_type
            )
            raise TargetError(
                f"unknown {resource_type or 'resource'} {logical_id!r}; the stack has: {', '.join(kinds) or 'none'}"
            )
        return res["physicalId"]

    def function_name(self, logical_id: str) -> str:
        return self.physical_id(logical_id, "AWS::Lambda::Function")

    def state_machine_arn(self, name_or_arn: str) -> str:
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return self.physical_id(name_or_arn, "AWS::StepFunctions::StateMachine")

    def logical_state_machines(self) -> dict[str, str]:
        return {
            lid: r["physicalId"] for lid, r in self.resources.items() if r["type"] == "AWS::StepFunctions::StateMachine"
        }


def load_local_state(root: Path, sdir: Path | None = None) -> dict[str, Any] | None:
    path = (sdir or state_dir(root)) / "local.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def local_target(root: Path, sdir: Path | None = None) -> Target:
    state = load_local_state(root, sdir)
    if state is None:
        raise TargetError("the local stack is not running; start it with `sesflow local up`")
    clients = Clients(state["region"], state["endpoint"])
    return Target(clients, state["stackName"], state["outputs"], state["resources"], True, state)


def stack_target(stack_name: str, region: str | None) -> Target:
    clients = Clients(region or os.environ.get("AWS_REGION") or DEFAULT_REGION)
    cf = clients.client("cloudformation")
    try:
        stack = cf.describe_stacks(StackName=stack_name)["Stacks"][0]
    except Exception as exc:
        raise TargetError(f"stack {stack_name!r}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources: dict[str, dict[str, str]] = {}
    for page in cf.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for r in page["StackResourceSummaries"]:
            resources[r["LogicalResourceId"]] = {
                "type": r["ResourceType"],
                "physicalId": r["PhysicalResourceId"],
            }
    return Target(clients, stack_name, outputs, resources, False)


def resolve(stack: str | None = None, region: str | None = None, root: Path | None = None) -> Target:
    if stack:
        return stack_target(stack, region)
    return local_target(root or find_root())
