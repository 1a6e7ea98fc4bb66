"""``sesflow invoke|run|executions|history|outbox``: functions, executions and the local outbox."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sesflow import executions
from sesflow.cli import inputs
from sesflow.cli.output import EXIT_FAILED, EXIT_OK, UsageError, dumps, emit, json_wanted


def cmd_invoke(args: argparse.Namespace) -> int:
    """Exit 1 on a function error. JSON: ``{function, functionError, payload}``; text: the payload."""
    event = inputs.load_json_arg(args.event, "event file") if args.event else {}
    target = inputs.resolve_target(args)
    name = target.function_name(args.function)  # TargetError: exit 2
    resp = target.clients.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    payload = json.loads(resp["Payload"].read() or b"null")
    data = {"function": args.function, "functionError": resp.get("FunctionError"), "payload": payload}
    emit(args, data, dumps(payload))
    return EXIT_FAILED if resp.get("FunctionError") else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """Exit 1 when the execution does not succeed. JSON: the execution report; text: a state table."""
    payload = inputs.load_json_arg(args.input, "--input") if args.input else {}
    target = inputs.resolve_target(args)
    machine = target.state_machine_arn(args.machine)  # TargetError: exit 2
    sfn = target.clients.client("stepfunctions")
    arn = executions.start(sfn, machine, payload, args.name)
    executions.wait(sfn, arn, args.timeout)
    rep = executions.report(sfn, arn)
    emit(args, rep.as_dict(), executions.format_table(rep) + "\noutput: " + json.dumps(rep.output, indent=2))
    return EXIT_OK if rep.status == "SUCCEEDED" else EXIT_FAILED


def cmd_executions(args: argparse.Namespace) -> int:
    """JSON: ``[{machine, name, status, startDate, executionArn}]``, newest first."""
    target = inputs.resolve_target(args)
    sfn = target.clients.client("stepfunctions")
    machines = target.logical_state_machines()
    if args.machine:
        machines = {args.machine: target.state_machine_arn(args.machine)}
    rows: list[dict[str, Any]] = []
    for logical, arn in machines.items():
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            for ex in page["executions"]:
                name = ex.get("name") or ex["executionArn"].rsplit(":", 1)[-1]
                rows.append(
                    {
                        "machine": logical,
                        "name": name,
                        "status": ex["status"],
                        "startDate": ex["startDate"],
                        "executionArn": ex["executionArn"],
                    }
                )
    rows.sort(key=lambda r: r["startDate"], reverse=True)
    rows = rows[: args.limit]
    text = "\n".join(
        f"{r['startDate']:%Y-%m-%d %H:%M:%S}  {r['status']:<10} {r['machine']:<24} {r['name']}" for r in rows
    )
    emit(args, rows, text or "no executions")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """JSON: the execution report (``--events``: the raw history events); text: a state table."""
    target = inputs.resolve_target(args)
    sfn = target.clients.client("stepfunctions")
    try:
        arn = executions.execution_arn(sfn, target.logical_state_machines(), args.execution)
    except LookupError as exc:
        raise UsageError(str(exc)) from exc
    if args.events and json_wanted(args):
        emit(args, executions.history(sfn, arn))
        return EXIT_OK
    rep = executions.report(sfn, arn)
    emit(args, rep.as_dict(), executions.format_table(rep))
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    """The local stack only (exit 2 elsewhere). JSON: the outbox entries, oldest first."""
    from sesflow.local.ses import outbox_entries

    target = inputs.resolve_target(args)
    if not target.local:
        raise UsageError("the outbox exists only on the local stack")
    entries = outbox_entries(Path(target.state["outbox"]), args.last)
    text = "\n".join(
        f"{e['messageId'][:24]:<24}  {', '.join(e['destinations'])[:40]:<40}  {e['subject'][:50]}\n    {e['path']}"
        for e in entries
    )
    emit(args, entries, text or f"outbox is empty ({target.state['outbox']})")
    return EXIT_OK


def register(add_parser: Callable[..., argparse.ArgumentParser], common: Callable[[], argparse.ArgumentParser]) -> None:
    p = add_parser(
        "invoke",
        help="invoke a function by logical id, like sam local invoke (exit 1: function error)",
        parents=[common()],
    )
    p.add_argument("function", help="logical id in template.yaml, e.g. SendFunction")
    p.add_argument("-e", "--event", help="event JSON file (or inline JSON)")
    p.set_defaults(func=cmd_invoke)

    p = add_parser("run", help="start an execution and wait for it (exit 1: not SUCCEEDED)", parents=[common()])
    p.add_argument("machine", help="state machine logical id (e.g. SendStateMachine) or ARN")
    p.add_argument("--input", help="input JSON, inline or a file")
    p.add_argument("--name", help="execution name")
    p.add_argument("--timeout", type=float, default=300.0)
    p.set_defaults(func=cmd_run)

    p = add_parser("executions", help="recent executions", parents=[common()])
    p.add_argument("machine", nargs="?")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_executions)

    p = add_parser("history", help="state-by-state history of one execution", parents=[common()])
    p.add_argument("execution", help="execution name or ARN")
    p.add_argument("--events", action="store_true", help="with --json: the raw history events")
    p.set_defaults(func=cmd_history)

    p = add_parser("outbox", help="messages the local SES accepted", parents=[common()])
    p.add_argument("--last", type=int, default=None)
    p.set_defaults(func=cmd_outbox)
