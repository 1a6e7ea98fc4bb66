"""``sesflow``: the operator CLI. Local stack by default; ``--stack NAME`` for AWS.

Exit codes: 0 success, 1 the thing ran and failed (function error, execution not
SUCCEEDED), 2 bad usage or input (unknown function, malformed file, no stack).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sesflow import executions
from sesflow.target import Target, TargetError, find_root, resolve

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: printed, exit 2."""


def _print(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    if args.json or text is None:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _target(args: argparse.Namespace) -> Target:
    return resolve(args.stack, args.region)


def load_json_arg(value: str, what: str) -> Any:
    """A JSON document given inline, as ``@file``, or as a path to a file."""
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


# ---------------------------------------------------------------- local
def cmd_local_up(args: argparse.Namespace) -> int:
    from sesflow.local import control

    state, started = control.up(find_root(), args.port, args.ses_max_send_rate)
    summary = {
        "started": started,
        "endpoint": state["endpoint"],
        "stackName": state["stackName"],
        "pid": state["pid"],
        "startupSeconds": state.get("startupSeconds"),
        "outbox": state["outbox"],
        "stateMachines": {k: v for k, v in state["outputs"].items() if k.endswith("StateMachineArn")},
    }
    verb = "started" if started else "already running"
    text = (
        f"sesflow local stack {verb} at {state['endpoint']} (pid {state['pid']})\n"
        f"  stack {state['stackName']}, outbox {state['outbox']}\n"
        f"  try: aws --endpoint-url {state['endpoint']} stepfunctions list-state-machines"
    )
    _print(args, summary, text)
    return EXIT_OK


def cmd_local_status(args: argparse.Namespace) -> int:
    from sesflow.local import control

    state = control.status(find_root())
    if state is None:
        _print(args, {"running": False}, "sesflow local stack: not running")
        return EXIT_FAILED
    _print(args, {"running": True, **state},
           f"sesflow local stack: running at {state['endpoint']} (pid {state['pid']}), "
           f"stack {state['stackName']}")
    return EXIT_OK


def cmd_local_down(args: argparse.Namespace) -> int:
    from sesflow.local import control

    state = control.down(find_root())
    _print(args, {"stopped": state is not None},
           "sesflow local stack stopped" if state else "sesflow local stack: not running")
    return EXIT_OK


# ---------------------------------------------------------------- lambda / sfn
def cmd_invoke(args: argparse.Namespace) -> int:
    event = load_json_arg(args.event, "event file") if args.event else {}
    target = _target(args)
    name = target.function_name(args.function)  # TargetError: exit 2 (main)
    resp = target.clients.client("lambda").invoke(FunctionName=name, Payload=json.dumps(event).encode())
    payload = json.loads(resp["Payload"].read() or b"null")
    _print(args, {"function": args.function, "functionError": resp.get("FunctionError"), "payload": payload}
           if args.json else payload)
    return EXIT_FAILED if resp.get("FunctionError") else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    payload = load_json_arg(args.input, "--input") if args.input else {}
    target = _target(args)
    machine = target.state_machine_arn(args.machine)  # TargetError: exit 2 (main)
    sfn = target.clients.client("stepfunctions")
    arn = executions.start(sfn, machine, payload, args.name)
    executions.wait(sfn, arn, args.timeout)
    rep = executions.report(sfn, arn)
    text = executions.format_table(rep) + "\noutput: " + json.dumps(rep.output, indent=2)
    _print(args, rep.as_dict(), text)
    return EXIT_OK if rep.status == "SUCCEEDED" else EXIT_FAILED


def cmd_executions(args: argparse.Namespace) -> int:
    target = _target(args)
    sfn = target.clients.client("stepfunctions")
    machines = target.logical_state_machines()
    if args.machine:
        machines = {args.machine: target.state_machine_arn(args.machine)}
    rows = []
    for logical, arn in machines.items():
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            for ex in page["executions"]:
                name = ex.get("name") or ex["executionArn"].rsplit(":", 1)[-1]
                rows.append({"machine": logical, "name": name, "status": ex["status"],
                             "startDate": ex["startDate"], "executionArn": ex["executionArn"]})
    rows.sort(key=lambda r: r["startDate"], reverse=True)
    rows = rows[: args.limit]
    text = "\n".join(f"{r['startDate']:%Y-%m-%d %H:%M:%S}  {r['status']:<10} {r['machine']:<24} {r['name']}"
                     for r in rows) or "no executions"
    _print(args, rows, text)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    target = _target(args)
    sfn = target.clients.client("stepfunctions")
    try:
        arn = executions.execution_arn(sfn, target.logical_state_machines(), args.execution)
    except LookupError as exc:
        raise UsageError(str(exc)) from exc
    rep = executions.report(sfn, arn)
    if args.json and args.events:
        _print(args, executions.history(sfn, arn))
    else:
        _print(args, rep.as_dict(), executions.format_table(rep))
    return EXIT_OK


def cmd_outbox(args: argparse.Namespace) -> int:
    from sesflow.local.ses import outbox_entries

    target = _target(args)
    if not target.local:
        raise UsageError("the outbox exists only on the local stack")
    entries = outbox_entries(Path(target.state["outbox"]), args.last)
    text = "\n".join(
        f"{e['messageId'][:24]:<24}  {', '.join(e['destinations'])[:40]:<40}  {e['subject'][:50]}\n    {e['path']}"
        for e in entries
    ) or f"outbox is empty ({target.state['outbox']})"
    _print(args, entries, text)
    return EXIT_OK


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a flag given before or after the sub-command both count.
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output")
    common.add_argument("--stack", default=argparse.SUPPRESS,
                        help="target a deployed stack by name (default: the local stack)")
    common.add_argument("--region", default=argparse.SUPPRESS, help="AWS region of --stack")

    parser = argparse.ArgumentParser(prog="sesflow", description=__doc__, parents=[common])
    parser.set_defaults(json=False, stack=None, region=None)
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="the embedded local AWS", parents=[common])
    lsub = local.add_subparsers(dest="local_command", required=True)
    p = lsub.add_parser("up", help="start it in the background and deploy template.yaml", parents=[common])
    p.add_argument("--port", type=int, default=4577, help="TCP port on 127.0.0.1 (0: any free port)")
    p.add_argument("--ses-max-send-rate", type=float, default=None,
                   help="local SES answers TooManyRequestsException above N recipients per second")
    p.set_defaults(func=cmd_local_up)
    lsub.add_parser("status", help="is it running, where", parents=[common]).set_defaults(func=cmd_local_status)
    lsub.add_parser("down", help="stop it", parents=[common]).set_defaults(func=cmd_local_down)

    p = sub.add_parser("invoke", help="invoke a function by logical id (like sam local invoke)", parents=[common])
    p.add_argument("function", help="logical id in template.yaml, e.g. SendFunction")
    p.add_argument("-e", "--event", help="event JSON file (or inline JSON)")
    p.set_defaults(func=cmd_invoke)

    p = sub.add_parser("run", help="start an execution and wait for it", parents=[common])
    p.add_argument("machine", help="state machine logical id (e.g. SendStateMachine) or ARN")
    p.add_argument("--input", help="input JSON, inline or a file")
    p.add_argument("--name", help="execution name")
    p.add_argument("--timeout", type=float, default=300.0)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("executions", help="recent executions", parents=[common])
    p.add_argument("machine", nargs="?")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_executions)

    p = sub.add_parser("history", help="state-by-state history of one execution", parents=[common])
    p.add_argument("execution", help="execution name or ARN")
    p.add_argument("--events", action="store_true", help="with --json: the raw history events")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("outbox", help="messages the local SES accepted", parents=[common])
    p.add_argument("--last", type=int, default=None)
    p.set_defaults(func=cmd_outbox)

    for register in EXTRA_COMMANDS:
        register(sub, common)
    return parser


#: other modules add their sub-commands here (send, status, ...)
EXTRA_COMMANDS: list[Callable[[Any, argparse.ArgumentParser], None]] = []


def main(argv: list[str] | None = None) -> int:
    from sesflow import cli_campaign, cli_doctor, cli_send, cli_suppression  # noqa: F401 - register their commands
    from sesflow.local.control import LocalError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (UsageError, TargetError) as exc:
        print(f"sesflow: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LocalError as exc:
        print(f"sesflow: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TimeoutError as exc:
        print(f"sesflow: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
