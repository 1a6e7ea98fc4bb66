"""``sesflow suppression list|add|remove|check``: the stack's suppression list."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from sesflow_core import suppression as sp
from sesflow_core.request import InvalidEmailRequest, parse_address

from sesflow import cli


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _address(value: str) -> str:
    try:
        return parse_address(value, "address").normalized
    except InvalidEmailRequest as exc:
        raise cli.UsageError(str(exc)) from exc


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    des = TypeDeserializer()
    return {k: des.deserialize(v) for k, v in sorted(item.items())}


def entries(target: Any, address: str | None = None) -> list[dict[str, Any]]:
    ddb = target.clients.client("dynamodb")
    table = target.outputs["SuppressionTableName"]
    items: list[dict[str, Any]] = []
    if address:
        pages = ddb.get_paginator("query").paginate(
            TableName=table, KeyConditionExpression="address = :a",
            ExpressionAttributeValues={":a": {"S": address}}, ConsistentRead=True)
    else:
        pages = ddb.get_paginator("scan").paginate(TableName=table)
    for page in pages:
        items.extend(_plain(i) for i in page["Items"])
    return [i for i in items if not str(i["topic"]).startswith("#")]


def cmd_list(args: argparse.Namespace) -> int:
    rows = entries(cli._target(args), _address(args.address) if args.address else None)
    text = "\n".join(f"{r['address']:<40} {r['topic']:<16} {r.get('reason', '')}  (last {r.get('lastSeen', '?')})"
                     for r in rows) or "the suppression list is empty"
    cli._print(args, rows, text)
    return cli.EXIT_OK


def cmd_add(args: argparse.Namespace) -> int:
    target = cli._target(args)
    address = _address(args.address)
    target.clients.client("dynamodb").update_item(
        TableName=target.outputs["SuppressionTableName"],
        Key={"address": {"S": address}, "topic": {"S": args.topic}},
        UpdateExpression=sp.ENTRY_UPDATE,
        ExpressionAttributeValues=sp.entry_values(args.reason, "manual", _now()),
    )
    cli._print(args, {"added": address, "topic": args.topic, "reason": args.reason},
               f"suppressed {address} for {args.topic}: {args.reason}")
    return cli.EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    target = cli._target(args)
    address = _address(args.address)
    ddb = target.clients.client("dynamodb")
    table = target.outputs["SuppressionTableName"]
    old = ddb.delete_item(TableName=table, Key={"address": {"S": address}, "topic": {"S": args.topic}},
                          ReturnValues="ALL_OLD").get("Attributes")
    if old is None:
        raise cli.UsageError(f"{address} is not suppressed for {args.topic}")
    # keep who lifted it and why, next to the address (not matched by CheckSuppression)
    ddb.put_item(TableName=table, Item={
        "address": {"S": address}, "topic": {"S": f"#removed:{args.topic}"},
        "reason": {"S": args.reason}, "removedAt": {"S": _now()},
        "previous": {"S": json.dumps(_plain(old), default=str)},
    })
    cli._print(args, {"removed": address, "topic": args.topic, "reason": args.reason},
               f"removed {address} ({args.topic}) from the suppression list: {args.reason}")
    return cli.EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    address = _address(args.address)
    matching = [e for e in entries(cli._target(args), address) if sp.topic_matches(e["topic"], args.topic)]
    verdict = {"address": address, "topic": args.topic, "suppressed": bool(matching), "entries": matching}
    text = (f"{address} is suppressed for {args.topic}: " + "; ".join(f"{e['topic']} ({e.get('reason')})"
                                                                    for e in matching)
            if matching else f"{address} may receive {args.topic} mail")
    cli._print(args, verdict, text)
    return cli.EXIT_FAILED if matching else cli.EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("suppression", help="the suppression list", parents=[common])
    ssub = p.add_subparsers(dest="suppression_command", required=True)
    q = ssub.add_parser("list", help="entries (all, or one address)", parents=[common])
    q.add_argument("address", nargs="?")
    q.set_defaults(func=cmd_list)
    for name, func, helptext in (("add", cmd_add, "suppress an address"),
                                 ("remove", cmd_remove, "lift a suppression")):
        q = ssub.add_parser(name, help=helptext, parents=[common])
        q.add_argument("address")
        q.add_argument("--topic", default=sp.ALL_TOPICS,
                       help="a topic, '*' for every topic (default), '~subscription' for all but transactional")
        q.add_argument("--reason", required=True)
        q.set_defaults(func=func)
    q = ssub.add_parser("check", help="would a send to this address on this topic be suppressed (exit 1: yes)",
                        parents=[common])
    q.add_argument("address")
    q.add_argument("--topic", default="transactional")
    q.set_defaults(func=cmd_check)


cli.EXTRA_COMMANDS.append(register)
