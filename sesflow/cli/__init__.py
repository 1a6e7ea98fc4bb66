"""``sesflow``: the operator CLI (``sesflow = "sesflow.cli:main"``).

:mod:`sesflow.cli.app` builds the parser and registers each command module's sub-commands;
the command modules (``local``, ``invoke``, ``send``, ``suppression``, ``campaign``,
``doctor``) print through :mod:`sesflow.cli.output` and never import ``app``.
"""

from sesflow.cli.app import main

__all__ = ["main"]
