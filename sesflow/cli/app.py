"""sesflow: the operator CLI. Local stack by default; --stack NAME for AWS.

--json, --stack and --region may be given before the command or after it (or between a
command and its sub-command); the one nearest the end wins.

Exit codes: 0 success; 1 it ran and failed (a function error, an execution that did not
succeed, an email that ended failed, rejected or paused, a failed doctor check, a campaign
that did not complete, an AWS error; suppression check: the address is suppressed; cancel:
the email is being sent, was sent or was not scheduled); 2 bad usage or input (argparse
errors, malformed JSON, an unknown function, email or campaign, no stack).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sesflow.cli import campaign, console, doctor, invoke, local, send, sequence, suppression, webhook
from sesflow.cli.output import EXIT_FAILED, EXIT_USAGE, UsageError, error
from sesflow.target import TargetError

#: every command module, in the order ``sesflow --help`` lists them
COMMANDS = (local, invoke, send, suppression, campaign, sequence, webhook, doctor, console)


def common_flags(top_level: bool = False) -> argparse.ArgumentParser:
    """A parent parser with the flags every command takes.

    The top level defaults them (``--json`` off, the local stack); each sub-command gets fresh
    actions defaulting to SUPPRESS, so a flag it was not given leaves the value parsed before
    it (the global one) alone."""
    default: Any = None if top_level else argparse.SUPPRESS
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="machine-readable output (JSON on stdout)",
    )
    common.add_argument("--stack", default=default, help="target a deployed stack by name (default: the local stack)")
    common.add_argument("--region", default=default, help="AWS region of --stack")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sesflow",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common_flags(top_level=True)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub.add_parser, common_flags)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run a parsed command; its errors become exit codes and one line on stderr."""
    from botocore.exceptions import BotoCoreError, ClientError

    from sesflow.local.control import LocalError

    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (UsageError, TargetError, LocalError) as exc:
        error(exc)
        return EXIT_USAGE
    except (TimeoutError, BotoCoreError, ClientError) as exc:
        error(exc)
        return EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2, the message already on stderr)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    return run(args)
