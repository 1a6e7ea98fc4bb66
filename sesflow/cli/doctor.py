"""``sesflow doctor``: what would stop mail going out, for the local stack or ``--stack NAME``.

Exit 0 when no check fails (warnings allowed), 1 when one does, 2 when there is no usable
stack. JSON: ``{ok, checks: [{name, status, detail, hint}]}``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from sesflow import doctor
from sesflow.cli import inputs
from sesflow.cli.output import EXIT_FAILED, EXIT_OK, emit
from sesflow.target import Target, TargetError

MARKS = {doctor.PASS: "ok  ", doctor.WARN: "WARN", doctor.FAIL: "FAIL"}


def diagnose(target: Target, resolver: doctor.Resolver) -> list[doctor.Check]:
    """Read the stack's outputs, ask SES and DNS, run every check."""
    outputs = target.outputs
    missing = [k for k in ("SenderIdentity", "ConfigurationSetName") if not outputs.get(k)]
    if missing:
        raise TargetError(f"stack {target.stack_name} has no {' or '.join(missing)} output; is it a sesflow stack?")
    facts = doctor.fetch(
        target.clients.client("sesv2"),
        sender_identity=outputs["SenderIdentity"],
        from_address=outputs.get("DefaultFromAddress", ""),
        config_set=outputs["ConfigurationSetName"],
        region=target.clients.region,
        local=target.local,
    )
    return doctor.run_checks(facts, resolver)


def format_text(target: Target, checks: list[doctor.Check]) -> str:
    where = "local stack" if target.local else f"{target.clients.region}"
    lines = [f"sesflow doctor: {target.stack_name} ({where})"]
    width = max(len(c.name) for c in checks)
    for c in checks:
        lines.append(f"  {MARKS[c.status]}  {c.name:<{width}}  {c.detail}")
        if c.status != doctor.PASS:
            lines.append(f"        {'':<{width}}  fix: {c.hint}")
    failed = sum(c.status == doctor.FAIL for c in checks)
    warned = sum(c.status == doctor.WARN for c in checks)
    verdict = "mail can go out" if not failed else "something stops or will stop mail going out"
    lines.append(f"{failed} failed, {warned} warning{'s' if warned != 1 else ''}: {verdict}")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace, resolver: doctor.Resolver | None = None) -> int:
    target = inputs.resolve_target(args)  # TargetError: exit 2
    checks = diagnose(target, resolver if resolver is not None else doctor.default_resolver())
    result = doctor.report(checks)
    emit(args, result, format_text(target, checks))
    return EXIT_OK if result["ok"] else EXIT_FAILED


def register(add_parser: Callable[..., argparse.ArgumentParser], common: Callable[[], argparse.ArgumentParser]) -> None:
    p = add_parser(
        "doctor",
        parents=[common()],
        help="check SES account, identity, configuration set and DNS (SPF, DKIM, DMARC) (exit 1: a check failed)",
    )
    p.set_defaults(func=cmd_doctor)
