"""What commands read: the target stack (``--stack``/``--region`` or the local stack) and JSON arguments."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sesflow.cli.output import UsageError
from sesflow.target import Target, resolve


def resolve_target(args: argparse.Namespace) -> Target:
    """The stack the command talks to (TargetError when there is none: exit 2)."""
    return resolve(getattr(args, "stack", None), getattr(args, "region", None))


def load_json_arg(value: str, what: str) -> Any:
    """A JSON document given inline, as ``@file``, or as a path to a ``.json`` file."""
    text = value
    path = Path(value[1:] if value.startswith("@") else value)
    if value.startswith("@") or (not value.lstrip().startswith(("{", "[")) and path.suffix == ".json"):
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc


def load_json_object(value: str | None, what: str) -> dict[str, Any]:
    """:func:`load_json_arg` that must be an object; ``{}`` when not given."""
    if not value:
        return {}
    data = load_json_arg(value, what)
    if not isinstance(data, dict):
        raise UsageError(f"{what} must be a JSON object")
    return data
