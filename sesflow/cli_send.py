"""``sesflow send`` and ``sesflow status``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sesflow import cli
from sesflow.client import send_email

OK_STATUSES = {"sent", "suppressed", "deferred"}  # deferred: a later execution sends it


def _tags(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise cli.UsageError(f"--tag {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def cmd_send(args: argparse.Namespace) -> int:
    data = cli.load_json_arg(args.data, "--data") if args.data else {}
    if not isinstance(data, dict):
        raise cli.UsageError("--data must be a JSON object")
    target = cli._target(args)
    arn = target.state_machine_arn("SendStateMachine")
    result = send_email(
        args.template, args.to, state_machine_arn=arn, sfn_client=target.clients.client("stepfunctions"),
        timeout=args.timeout, data=data, to_name=args.to_name, email_id=args.email_id,
        topic=args.topic, from_=args.from_, reply_to=args.reply_to, tags=_tags(args.tag),
    )
    print(json.dumps(result, indent=2))
    return cli.EXIT_OK if result.get("status") in OK_STATUSES else cli.EXIT_USAGE


def tracking_item(target: Any, email_id: str) -> dict[str, Any] | None:
    from boto3.dynamodb.types import TypeDeserializer

    item = target.clients.client("dynamodb").get_item(
        TableName=target.outputs["TrackingTableName"], Key={"emailId": {"S": email_id}},
        ConsistentRead=True,
    ).get("Item")
    if item is None:
        return None
    des = TypeDeserializer()
    return {k: des.deserialize(v) for k, v in sorted(item.items())}


def cmd_status(args: argparse.Namespace) -> int:
    item = tracking_item(cli._target(args), args.email_id)
    if item is None:
        raise cli.UsageError(f"no tracking item for emailId {args.email_id!r}")
    item.pop("eventKeys", None)
    item["timeline"] = [json.loads(e) for e in item.get("timeline", [])]
    lines = [f"{args.email_id}: {item.get('status')}" + (f" ({item['reason']})" if item.get("reason") else "")]
    for key in ("template", "topic", "recipient", "messageId", "campaignId", "createdAt", "sentAt", "updatedAt"):
        if item.get(key):
            lines.append(f"  {key:<11} {item[key]}")
    if item["timeline"]:
        lines.append("  timeline:")
        for e in item["timeline"]:
            extra = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "at"))
            lines.append(f"    {e.get('at', ''):<26} {e.get('event', ''):<12} {extra}")
    cli._print(args, item, "\n".join(lines))
    return cli.EXIT_OK


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("send", help="send one email through the send state machine and wait", parents=[common])
    p.add_argument("--template", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--to-name")
    p.add_argument("--data", help="template variables: JSON, or @file")
    p.add_argument("--email-id", help="idempotency key (default: generated)")
    p.add_argument("--topic", help="default: transactional")
    p.add_argument("--from", dest="from_", help="sender override (must belong to the identity)")
    p.add_argument("--reply-to")
    p.add_argument("--tag", action="append", help="NAME=VALUE, repeatable")
    p.add_argument("--timeout", type=float, default=300.0)
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("status", help="the tracking item of one email", parents=[common])
    p.add_argument("email_id")
    p.set_defaults(func=cmd_status)


cli.EXTRA_COMMANDS.append(register)
