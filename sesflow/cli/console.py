"""``sesflow console [--port P] [--open]``: the web console, on 127.0.0.1 only, until Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading
import webbrowser
from collections.abc import Callable

from sesflow.cli import inputs
from sesflow.cli.output import EXIT_OK


def cmd_console(args: argparse.Namespace) -> int:
    from sesflow.console.server import serve

    target = inputs.resolve_target(args)
    server, url = serve(target, args.port)
    where = "the local stack" if target.local else f"stack {target.stack_name}"
    print(f"sesflow console for {where}: {url}  (Ctrl-C stops it)", flush=True)
    if args.open:
        webbrowser.open(url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("console stopped", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
    return EXIT_OK


def register(add_parser: Callable[..., argparse.ArgumentParser], common: Callable[[], argparse.ArgumentParser]) -> None:
    p = add_parser(
        "console", help="the web console (executions, emails, campaigns, suppression, outbox)", parents=[common()]
    )
    p.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port; default 8765)")
    p.add_argument("--open", action="store_true", help="open it in the default browser")
    p.set_defaults(func=cmd_console)
