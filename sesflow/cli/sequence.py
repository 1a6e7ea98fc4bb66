"""``sesflow sequence deploy|enroll|list|status|exit``: drip sequences (journeys).

``deploy`` validates a definition (YAML or JSON, ``sequences/*.yaml``; every template it sends
must exist) and stores it as a new version; ``enroll`` starts one execution of the sequence
machine per (sequence, address, enrollmentId) — the execution is named after their hash, so
enrolling twice is one enrollment — pinned to the latest version.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sesflow_aws import sequences as store
from sesflow_aws.dynamo import to_plain
from sesflow_core.errors import InvalidEmailRequest
from sesflow_core.request import parse_address

from sesflow.cli import inputs
from sesflow.cli.output import EXIT_OK, UsageError, emit, json_wanted
from sesflow.target import Target


def load_definition(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"no such file {path}")
    text = file.read_text(encoding="utf-8")
    if file.suffix in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

        loaded = yaml.safe_load(text)
    else:
        loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise UsageError(f"{path}: a sequence definition is an object (name, topic, steps)")
    return loaded


def cmd_deploy(args: argparse.Namespace) -> int:
    target = inputs.resolve_target(args)
    raw = load_definition(args.file)
    try:
        out = store.deploy(
            target.clients.client("dynamodb"),
            target.clients.client("s3"),
            target.outputs["SequencesTableName"],
            target.outputs["TemplatesBucketName"],
            raw,
        )
    except InvalidEmailRequest as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    emit(args, out, f"sequence {out['sequence']}: version {out['version']} ({out['steps']} steps)")
    return EXIT_OK


def addresses(args: argparse.Namespace) -> list[str]:
    found = list(args.to or [])
    if args.list:
        with open(args.list, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "email" not in [n.strip().lower() for n in reader.fieldnames]:
                raise UsageError("--list: a CSV with an 'email' column")
            found += [row[next(k for k in row if k and k.strip().lower() == "email")] for row in reader]
    if not found:
        raise UsageError("give --to ADDRESS (repeatable) or --list FILE.csv")
    out = []
    for a in found:
        try:
            out.append(parse_address(a, "to").ascii)
        except InvalidEmailRequest as exc:
            raise UsageError(str(exc)) from None
    return out


def enroll(target: Target, name: str, to: str, **fields: Any) -> dict[str, Any]:
    """Start (or find) one enrollment: ``{key, status: enrolled|already enrolled, executionArn}``."""
    sfn = target.clients.client("stepfunctions")
    try:
        inp = store.enrollment_input(
            target.clients.client("dynamodb"), target.outputs["SequencesTableName"], name, to, **fields
        )
    except InvalidEmailRequest as exc:
        raise UsageError(str(exc)) from None
    machine = target.outputs["SequenceStateMachineArn"]
    try:
        arn = sfn.start_execution(stateMachineArn=machine, name=inp["key"], input=json.dumps(inp))["executionArn"]
        return {"key": inp["key"], "status": "enrolled", "version": inp["version"], "executionArn": arn}
    except sfn.exceptions.ExecutionAlreadyExists:
        arn = machine.replace(":stateMachine:", ":execution:") + f":{inp['key']}"
        return {"key": inp["key"], "status": "already enrolled", "executionArn": arn}


def cmd_enroll(args: argparse.Namespace) -> int:
    target = inputs.resolve_target(args)
    data = inputs.load_json_object(args.data, "--data")
    clock = (
        {"scale": args.time_scale, **({"start": args.clock_start} if args.clock_start else {})}
        if args.time_scale
        else None
    )
    results = [
        enroll(
            target, args.sequence, to, data=data, enrollment_id=args.enrollment_id, clock=clock, timezone=args.timezone
        )
        for to in addresses(args)
    ]
    text = "\n".join(f"{r['key']}: {r['status']}" for r in results)
    emit(args, results if len(results) > 1 else results[0], text)
    return EXIT_OK


def enrollments(target: Target, name: str) -> list[dict[str, Any]]:
    ddb = target.clients.client("dynamodb")
    pages = ddb.get_paginator("query").paginate(
        TableName=target.outputs["SequencesTableName"],
        KeyConditionExpression="#s = :s AND begins_with(#k, :p)",
        ExpressionAttributeNames={"#s": "sequence", "#k": "key"},
        ExpressionAttributeValues={":s": {"S": name}, ":p": {"S": "enr#"}},
        ConsistentRead=True,
    )
    return [to_plain(i) for page in pages for i in page.get("Items", [])]


def cmd_list(args: argparse.Namespace) -> int:
    rows = [
        {
            "key": str(e["key"]).removeprefix("enr#"),
            "status": e.get("status"),
            "step": e.get("step"),
            "version": e.get("version"),
            "startedAt": e.get("startedAt"),
        }
        for e in enrollments(inputs.resolve_target(args), args.sequence)
    ]
    text = "\n".join(
        f"{r['key']}  {r['status']!s:<9} step {r['step']}  v{r['version']}  {r['startedAt']}" for r in rows
    )
    emit(args, rows, text or f"no enrollments in {args.sequence}")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    target = inputs.resolve_target(args)
    item = store.enrollment(
        target.clients.client("dynamodb"), target.outputs["SequencesTableName"], args.sequence, args.key
    )
    if item is None:
        raise UsageError(f"no enrollment {args.key} in {args.sequence}")
    if not json_wanted(args):
        item.pop("recipient", None)  # no address in plain output
    steps = ", ".join(f"{h['step']}({h['type']})" for h in item.get("history") or [])
    emit(args, item, f"{args.key}: {item.get('status')} at step {item.get('step')}; done: {steps or '-'}")
    return EXIT_OK


def cmd_exit(args: argparse.Namespace) -> int:
    target = inputs.resolve_target(args)
    table = target.outputs["SequencesTableName"]
    ddb = target.clients.client("dynamodb")
    item = store.enrollment(ddb, table, args.sequence, args.key)
    if item is None:
        raise UsageError(f"no enrollment {args.key} in {args.sequence}")
    reason = args.reason or "exited by an operator"
    ended = store.exit_enrollment(
        ddb, target.clients.client("events"), table, target.outputs["EventBusName"], args.sequence, args.key, reason
    )
    if ended and item.get("executionArn"):
        # recorded first: a step that runs meanwhile sees "exited" and ends the execution itself
        sfn = target.clients.client("stepfunctions")
        try:
            sfn.stop_execution(executionArn=item["executionArn"], cause=reason[:200])
        except sfn.exceptions.ExecutionDoesNotExist:
            pass
    emit(args, {"key": args.key, "exited": ended}, f"{args.key}: {'exited' if ended else 'had ended already'}")
    return EXIT_OK


def register(add_parser: Callable[..., argparse.ArgumentParser], common: Callable[[], argparse.ArgumentParser]) -> None:
    p = add_parser("sequence", help="drip sequences (journeys)", parents=[common()])
    sub = p.add_subparsers(dest="sequence_command", required=True)
    q = sub.add_parser("deploy", help="validate and store a new version of a definition", parents=[common()])
    q.add_argument("file", help="sequences/<name>.yaml (or .json)")
    q.set_defaults(func=cmd_deploy)
    q = sub.add_parser(
        "enroll", help="enroll addresses (idempotent per address and --enrollment-id)", parents=[common()]
    )
    q.add_argument("sequence")
    q.add_argument("--to", action="append", help="an address (repeatable)")
    q.add_argument("--list", help="a CSV with an 'email' column")
    q.add_argument("--data", help="template variables for every step: JSON or @file")
    q.add_argument("--enrollment-id", default="default", help="enroll the same address again under another id")
    q.add_argument("--timezone", help="IANA zone of 'until HH:MM' waits (default UTC)")
    q.add_argument("--time-scale", type=float, help="local stack only: seconds of enrollment time per real second")
    q.add_argument("--clock-start", help="local stack only, with --time-scale: the clock's start instant")
    q.set_defaults(func=cmd_enroll)
    q = sub.add_parser("list", help="a sequence's enrollments", parents=[common()])
    q.add_argument("sequence")
    q.set_defaults(func=cmd_list)
    q = sub.add_parser("status", help="one enrollment: status, step, history", parents=[common()])
    q.add_argument("sequence")
    q.add_argument("key")
    q.set_defaults(func=cmd_status)
    q = sub.add_parser("exit", help="end an enrollment now (nothing more is sent)", parents=[common()])
    q.add_argument("sequence")
    q.add_argument("key")
    q.add_argument("--reason")
    q.set_defaults(func=cmd_exit)
