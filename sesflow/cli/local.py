"""``sesflow local up|status|down``: the embedded local AWS."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from sesflow.cli.output import EXIT_FAILED, EXIT_OK, emit
from sesflow.target import find_root


def cmd_up(args: argparse.Namespace) -> int:
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
    emit(args, summary, text)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 1 when it is not running."""
    from sesflow.local import control

    state = control.status(find_root())
    if state is None:
        emit(args, {"running": False}, "sesflow local stack: not running")
        return EXIT_FAILED
    emit(
        args,
        {"running": True, **state},
        f"sesflow local stack: running at {state['endpoint']} (pid {state['pid']}), stack {state['stackName']}",
    )
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    from sesflow.local import control

    state = control.down(find_root())
    emit(
        args,
        {"stopped": state is not None},
        "sesflow local stack stopped" if state else "sesflow local stack: not running",
    )
    return EXIT_OK


def register(add_parser: Callable[..., argparse.ArgumentParser], common: Callable[[], argparse.ArgumentParser]) -> None:
    local = add_parser("local", help="the embedded local AWS", parents=[common()])
    sub = local.add_subparsers(dest="local_command", required=True)
    p = sub.add_parser("up", help="start it in the background and deploy template.yaml", parents=[common()])
    p.add_argument("--port", type=int, default=4577, help="TCP port on 127.0.0.1 (0: any free port)")
    p.add_argument(
        "--ses-max-send-rate",
        type=float,
        default=None,
        help="local SES answers TooManyRequestsException above N recipients per second",
    )
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("status", help="is it running, where (exit 1: not running)", parents=[common()])
    p.set_defaults(func=cmd_status)
    sub.add_parser("down", help="stop it", parents=[common()]).set_defaults(func=cmd_down)
