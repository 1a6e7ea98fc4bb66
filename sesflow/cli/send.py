"""``sesflow send``, ``sesflow status`` and ``sesflow cancel``: one email, its tracking item, and
cancelling it while it is scheduled."""

from __future__ import annotations

import argparse
import json
import mimetypes
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from sesflow_aws import campaign_flow
from sesflow_aws.dynamo import to_plain

from sesflow.cli import inputs
from sesflow.cli.output import EXIT_FAILED, EXIT_OK, UsageError, emit
from sesflow.client import cancel_email, send_email
from sesflow.target import Target

#: outcomes of ``sesflow send`` that exit 0 (deferred: a later execution sends it; scheduled:
#: a schedule sends it at ``--at``; queued: a repeat of a request another execution is sending,
#: ADR 0002); every other outcome (failed, rejected, paused) exits 1
OK_STATUSES: Final = frozenset({"sent", "suppressed", "deferred", "scheduled", "queued"})


def parse_tags(values: list[str] | None) -> dict[str, str] | None:
    """``--tag NAME=VALUE`` (repeatable) as a dict."""
    if not values:
        return None
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--tag {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def send_exit_code(result: dict[str, Any]) -> int:
    return EXIT_OK if result.get("status") in OK_STATUSES else EXIT_FAILED


def send_text(result: dict[str, Any]) -> str:
    line = f"{result.get('emailId')}: {result.get('status')}"
    if result.get("reason"):
        line += f" ({result['reason']})"
    if result.get("messageId"):
        line += f"\n  messageId {result['messageId']}"
    return line


def upload_attachments(target: Target, paths: list[str] | None, email_id: str) -> list[dict[str, Any]]:
    """``--attach FILE[:TYPE]``: upload each file to the stack's AttachmentsBucket (under
    ``uploads/<emailId>/``) and name it in the request; the type defaults from the extension."""
    out: list[dict[str, Any]] = []
    for spec in paths or []:
        path_text, _, ctype = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
        path = Path(path_text)
        if not path.is_file():
            raise UsageError(f"--attach: no such file {path_text}")
        ctype = ctype or mimetypes.guess_type(path.name)[0] or ""
        if not ctype:
            raise UsageError(f"--attach {path.name}: give its type, e.g. {path.name}:application/pdf")
        key = f"uploads/{email_id}/{path.name}"
        target.clients.client("s3").upload_file(str(path), target.outputs["AttachmentsBucketName"], key)
        out.append({"filename": path.name, "contentType": ctype, "s3": {"key": key}})
    return out


def cmd_send(args: argparse.Namespace) -> int:
    """Exit 0 sent/suppressed/deferred/scheduled, 1 otherwise. JSON: ``{emailId, status, messageId, reason}``."""
    data = inputs.load_json_object(args.data, "--data")
    tags = parse_tags(args.tag)
    target = inputs.resolve_target(args)
    arn = target.state_machine_arn("SendStateMachine")
    email_id = args.email_id or uuid.uuid4().hex
    files = upload_attachments(target, args.attach, email_id)
    result = send_email(
        args.template,
        args.to,
        state_machine_arn=arn,
        sfn_client=target.clients.client("stepfunctions"),
        timeout=args.timeout,
        data=data,
        to_name=args.to_name,
        email_id=email_id,
        topic=args.topic,
        from_=args.from_,
        reply_to=args.reply_to,
        tags=tags,
        send_at=args.at,
        locale=args.locale,
        attachments=files or None,
    )
    emit(args, result, send_text(result))
    return send_exit_code(result)


def tracking_item(target: Target, email_id: str) -> dict[str, Any] | None:
    """The email's tracking item, plain (native numbers), or None; a campaign email's claim
    shows what its batch's result chunk says (``sent`` with the messageId, ADR 0014)."""
    ddb, table = target.clients.client("dynamodb"), target.outputs["TrackingTableName"]
    item = ddb.get_item(TableName=table, Key={"emailId": {"S": email_id}}, ConsistentRead=True).get("Item")
    return None if item is None else campaign_flow.resolve(ddb, table, to_plain(item))


def status_view(item: dict[str, Any]) -> dict[str, Any]:
    """The tracking item as ``sesflow status`` shows it: timeline entries parsed, no eventKeys."""
    view = {k: v for k, v in item.items() if k != "eventKeys"}
    view["timeline"] = [json.loads(e) if isinstance(e, str) else e for e in item.get("timeline", [])]
    return view


def status_text(email_id: str, item: dict[str, Any]) -> str:
    lines = [f"{email_id}: {item.get('status')}" + (f" ({item['reason']})" if item.get("reason") else "")]
    keys = ("template", "topic", "recipient", "messageId", "campaignId", "createdAt", "scheduledFor", "sentAt")
    for key in (*keys, "updatedAt"):
        if item.get(key):
            lines.append(f"  {key:<12} {item[key]}")
    if item["timeline"]:
        lines.append("  timeline:")
        for e in item["timeline"]:
            extra = ", ".join(f"{k}={v}" for k, v in e.items() if k not in ("event", "at"))
            lines.append(f"    {e.get('at', ''):<26} {e.get('event', ''):<12} {extra}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 2 when there is no such email. JSON: the tracking item, numbers as numbers."""
    item = tracking_item(inputs.resolve_target(args), args.email_id)
    if item is None:
        raise UsageError(f"no tracking item for emailId {args.email_id!r}")
    view = status_view(item)
    emit(args, view, status_text(args.email_id, view))
    return EXIT_OK


def cancel_text(result: dict[str, Any]) -> str:
    if not result["cancelled"]:
        return f"{result['emailId']}: not cancelled: {result['reason']}"
    line = f"{result['emailId']}: cancelled" + (" (already)" if result.get("alreadyCancelled") else "")
    if result.get("scheduledFor"):
        line += f"; it was scheduled for {result['scheduledFor']}"
    return line


def cmd_cancel(args: argparse.Namespace) -> int:
    """Exit 0 cancelled (now or before), 1 not cancellable (being sent, sent, not scheduled),
    2 no such email. JSON: what ``sesflow.client.cancel_email`` returns."""
    target = inputs.resolve_target(args)
    result = cancel_email(
        args.email_id,
        reason=args.reason,
        tracking_table=target.outputs["TrackingTableName"],
        schedule_group=target.physical_id("ScheduleGroup", "AWS::Scheduler::ScheduleGroup"),
        event_bus=target.outputs["EventBusName"],
        aws=target.clients.client,
    )
    if not result["cancelled"] and result["status"] is None:
        raise UsageError(f"no tracking item for emailId {args.email_id!r}")
    emit(args, result, cancel_text(result))
    return EXIT_OK if result["cancelled"] else EXIT_FAILED


def register(add_parser: Callable[..., argparse.ArgumentParser], common: Callable[[], argparse.ArgumentParser]) -> None:
    p = add_parser(
        "send",
        help="send one email through the send state machine and wait (exit 1: failed, rejected or paused)",
        parents=[common()],
    )
    p.add_argument("--template", required=True)
    p.add_argument("--to", required=True)
    p.add_argument("--to-name")
    p.add_argument("--data", help="template variables: JSON, or @file")
    p.add_argument("--email-id", help="idempotency key (default: generated)")
    p.add_argument("--topic", help="default: transactional")
    p.add_argument("--from", dest="from_", help="sender override (must belong to the identity)")
    p.add_argument("--reply-to")
    p.add_argument("--tag", action="append", help="NAME=VALUE, repeatable")
    p.add_argument(
        "--at",
        metavar="ISO",
        help="send later: ISO 8601 with an offset, e.g. 2026-12-01T09:00:00+01:00, up to a year ahead "
        "(ends 'scheduled'; `sesflow cancel EMAIL_ID` cancels it)",
    )
    p.add_argument(
        "--attach",
        action="append",
        metavar="FILE[:TYPE]",
        help="attach a file (uploaded to the stack's AttachmentsBucket); repeatable",
    )
    p.add_argument("--locale", help="BCP 47 tag, e.g. de or pt-BR: the template's variant (falls back to the default)")
    p.add_argument("--timeout", type=float, default=300.0)
    p.set_defaults(func=cmd_send)

    p = add_parser("status", help="the tracking item of one email", parents=[common()])
    p.add_argument("email_id")
    p.set_defaults(func=cmd_status)

    p = add_parser(
        "cancel",
        help="cancel a scheduled email before it is sent (exit 1: being sent, sent or not scheduled)",
        parents=[common()],
    )
    p.add_argument("email_id")
    p.add_argument("--reason", help="recorded as the status reason (default: cancelled before its scheduled time)")
    p.set_defaults(func=cmd_cancel)
