"""``sesflow suppression list|add|remove|check``: the stack's suppression list."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from sesflow_aws import suppression as suppression_store
from sesflow_aws.dynamo import to_plain
from sesflow_core import suppression as sp
from sesflow_core.clock import now_iso
from sesflow_core.errors import InvalidEmailRequest
from sesflow_core.request import parse_address

from sesflow.cli import inputs
from sesflow.cli.output import EXIT_FAILED, EXIT_OK, UsageError, emit
from sesflow.target import Target


def normalized_address(value: str) -> str:
    """The address as the suppression table keys it; a malformed one is bad input (exit 2)."""
    try:
        return parse_address(value, "address").normalized
    except InvalidEmailRequest as exc:
        raise UsageError(str(exc)) from exc


def entries(target: Target, address: str | None = None) -> list[dict[str, Any]]:
    """Suppression entries (all, or one address's), plain; removal records (``#...`` topics) left out."""
    ddb = target.clients.client("dynamodb")
    table = target.outputs["SuppressionTableName"]
    if address:
        pages = ddb.get_paginator("query").paginate(
            TableName=table,
            KeyConditionExpression="address = :a",
            ExpressionAttributeValues={":a": {"S": address}},
            ConsistentRead=True,
        )
    else:
        pages = ddb.get_paginator("scan").paginate(TableName=table)
    items = [to_plain(i) for page in pages for i in page["Items"]]
    return [i for i in items if not str(i["topic"]).startswith("#")]


def cmd_list(args: argparse.Namespace) -> int:
    """JSON: the entries."""
    rows = entries(inputs.resolve_target(args), normalized_address(args.address) if args.address else None)
    text = "\n".join(
        f"{r['address']:<40} {r['topic']:<16} {r.get('reason', '')}  (last {r.get('lastSeen', '?')})" for r in rows
    )
    emit(args, rows, text or "the suppression list is empty")
    return EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    """JSON: ``{added, topic, reason}``."""
    target = inputs.resolve_target(args)
    address = normalized_address(args.address)
    suppression_store.add(
        target.clients.client("dynamodb"),
        target.outputs["SuppressionTableName"],
        address,
        args.topic,
        args.reason,
        "manual",
    )
    emit(
        args,
        {"added": address, "topic": args.topic, "reason": args.reason},
        f"suppressed {address} for {args.topic}: {args.reason}",
    )
    return EXIT_OK


def remove(target: Target, address: str, topic: str, reason: str) -> dict[str, Any]:
    """Lift one suppression, keeping who lifted it and why (``#removed:<topic>``); none is bad input."""
    ddb = target.clients.client("dynamodb")
    table = target.outputs["SuppressionTableName"]
    old = ddb.delete_item(
        TableName=table, Key={"address": {"S": address}, "topic": {"S": topic}}, ReturnValues="ALL_OLD"
    ).get("Attributes")
    if old is None:
        raise UsageError(f"{address} is not suppressed for {topic}")
    # keep who lifted it and why, next to the address (not matched by CheckSuppression)
    ddb.put_item(
        TableName=table,
        Item={
            "address": {"S": address},
            "topic": {"S": f"#removed:{topic}"},
            "reason": {"S": reason},
            "removedAt": {"S": now_iso()},
            "previous": {"S": json.dumps(to_plain(old), default=str)},
        },
    )
    return {"removed": address, "topic": topic, "reason": reason}


def cmd_remove(args: argparse.Namespace) -> int:
    """Exit 2 when there is no such entry. JSON: ``{removed, topic, reason}``."""
    address = normalized_address(args.address)
    result = remove(inputs.resolve_target(args), address, args.topic, args.reason)
    emit(args, result, f"removed {address} ({args.topic}) from the suppression list: {args.reason}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 1 when the address is suppressed for the topic. JSON: ``{address, topic, suppressed, entries}``."""
    address = normalized_address(args.address)
    matching = [e for e in entries(inputs.resolve_target(args), address) if sp.topic_matches(e["topic"], args.topic)]
    verdict = {"address": address, "topic": args.topic, "suppressed": bool(matching), "entries": matching}
    if matching:
        found = "; ".join(f"{e['topic']} ({e.get('reason')})" for e in matching)
        text = f"{address} is suppressed for {args.topic}: {found}"
    else:
        text = f"{address} may receive {args.topic} mail"
    emit(args, verdict, text)
    return EXIT_FAILED if matching else EXIT_OK


def register(add_parser: Callable[..., argparse.ArgumentParser], common: Callable[[], argparse.ArgumentParser]) -> None:
    p = add_parser("suppression", help="the suppression list", parents=[common()])
    sub = p.add_subparsers(dest="suppression_command", required=True)
    q = sub.add_parser("list", help="entries (all, or one address)", parents=[common()])
    q.add_argument("address", nargs="?")
    q.set_defaults(func=cmd_list)
    for name, func, helptext in (
        ("add", cmd_add, "suppress an address"),
        ("remove", cmd_remove, "lift a suppression"),
    ):
        q = sub.add_parser(name, help=helptext, parents=[common()])
        q.add_argument("address")
        q.add_argument(
            "--topic",
            default=sp.ALL_TOPICS,
            help="a topic, '*' for every topic (default), '~subscription' for all but transactional",
        )
        q.add_argument("--reason", required=True)
        q.set_defaults(func=func)
    q = sub.add_parser(
        "check", help="would a send to this address on this topic be suppressed (exit 1: yes)", parents=[common()]
    )
    q.add_argument("address")
    q.add_argument("--topic", default="transactional")
    q.set_defaults(func=cmd_check)
