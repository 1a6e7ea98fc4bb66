"""What the CLI prints and how it ends: text or JSON on stdout, errors on stderr, exit codes.

Exit codes, for every command:

* 0 (``EXIT_OK``): it worked (``sesflow send``: the email ended ``sent``, ``suppressed``,
  ``deferred`` or ``scheduled``; ``sesflow cancel``: it is cancelled);
* 1 (``EXIT_FAILED``): it ran and failed: a function error, an execution that did not succeed,
  an email that ended ``failed``, ``rejected`` or ``paused``, a failed doctor check, a campaign
  that did not complete, a timeout, an AWS error; ``suppression check``: the address is
  suppressed; ``cancel``: the email is being sent, was sent or was not scheduled;
* 2 (``EXIT_USAGE``): bad usage or input: argparse errors, malformed JSON, an unknown function,
  state machine, email or campaign, no stack to talk to.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TextIO

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


class UsageError(Exception):
    """Bad input from the user: printed on stderr, exit 2."""


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Path):
        return str(value)
    return str(value)


def dumps(data: Any) -> str:
    """``data`` as indented JSON: numbers stay numbers (a ``Decimal`` too), datetimes ISO 8601,
    sets sorted lists, bytes base64; anything else as its string."""
    return json.dumps(data, indent=2, default=_encode)


def json_wanted(args: argparse.Namespace) -> bool:
    """``--json`` given, before or after the command."""
    return bool(getattr(args, "json", False))


def emit(args: argparse.Namespace, data: Any, text: str | None = None, stream: TextIO | None = None) -> None:
    """Print ``data`` as JSON with ``--json`` (or when there is no ``text``), else ``text``."""
    out = stream or sys.stdout
    print(dumps(data) if json_wanted(args) or text is None else text, file=out)


def error(message: str | BaseException) -> None:
    """One line on stderr: ``sesflow: <message>``."""
    print(f"sesflow: {message}", file=sys.stderr)
