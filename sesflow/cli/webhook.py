"""``sesflow webhook add|list|remove|test|replay|rotate-secret``: signed webhooks.

Subscribers and their signing secrets live in the stack's webhook secret (Secrets Manager);
the dispatcher reads it through a one-minute cache, so a change reaches deliveries within a
minute. A secret is shown once, when it is made (``add``, ``rotate-secret``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from sesflow_aws import events as bus_events
from sesflow_aws import webhooks as store
from sesflow_core import webhooks as wh
from sesflow_core.clock import now_iso
from sesflow_core.errors import InvalidWebhook

from sesflow.cli import inputs
from sesflow.cli.output import EXIT_OK, UsageError, emit
from sesflow.target import Target


def _secret_arn(target: Target) -> str:
    arn = target.outputs.get("WebhookSecretArn")
    if not arn:
        raise UsageError(f"stack {target.stack_name} has no webhooks: deploy it with the parameter Webhooks=true")
    return arn


def _registry(target: Target) -> wh.Registry:
    return store.read_registry(target.clients.client("secretsmanager"), _secret_arn(target))


def _save(target: Target, registry: wh.Registry) -> None:
    store.write_registry(target.clients.client("secretsmanager"), _secret_arn(target), registry)


def _checked(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except InvalidWebhook as exc:
        raise UsageError(str(exc)) from None


def cmd_add(args: argparse.Namespace) -> int:
    """JSON: the hook with its secret (shown this once)."""
    target = inputs.resolve_target(args)
    # the local stack delivers to test receivers on 127.0.0.1 (over http); a deployed stack
    # only to public https URLs
    _checked(lambda: wh.check_url(args.url, allow_loopback=target.local))
    registry = _registry(target)
    events = [e for group in args.events for e in group.split(",") if e.strip()]
    hook = _checked(lambda: registry.add(args.url, events, now_iso(), args.description or ""))
    _save(target, registry)
    out = {**hook.public(), "secret": hook.secret}
    emit(
        args,
        out,
        f"webhook {hook.id}: {hook.url} ({', '.join(hook.events)})\n"
        f"signing secret (shown once; verify webhook-signature with it): {hook.secret}",
    )
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """JSON: the hooks (no secrets) and the dead-letter queue's depth."""
    target = inputs.resolve_target(args)
    hooks = [h.public() for h in _registry(target).hooks.values()]
    dead = int(
        target.clients.client("sqs").get_queue_attributes(
            QueueUrl=target.outputs["WebhookDeadLetterQueueUrl"], AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]["ApproximateNumberOfMessages"]
    )
    lines = [f"{h['id']}  {h['url']}  {', '.join(h['events'])}  {h['description']}".rstrip() for h in hooks]
    lines.append(f"dead-lettered deliveries: {dead}" + (" (sesflow webhook replay)" if dead else ""))
    emit(args, {"webhooks": hooks, "deadLettered": dead}, "\n".join(lines) if hooks else "no webhooks\n" + lines[-1])
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    target = inputs.resolve_target(args)
    registry = _registry(target)
    hook = _checked(lambda: registry.get(args.hook))
    del registry.hooks[hook.id]
    _save(target, registry)
    emit(args, {"removed": hook.id, "url": hook.url}, f"removed webhook {hook.id} ({hook.url})")
    return EXIT_OK


def cmd_rotate(args: argparse.Namespace) -> int:
    """A new secret; the old one keeps signing beside it for 24 hours (or not: --expire-previous)."""
    target = inputs.resolve_target(args)
    registry = _registry(target)
    hook = _checked(lambda: registry.rotate(args.hook, time.time(), args.expire_previous))
    _save(target, registry)
    until = "no longer signs" if args.expire_previous else "also signs for 24 hours"
    emit(
        args,
        {"id": hook.id, "secret": hook.secret, "previousSecretValidFor": 0 if args.expire_previous else 86400},
        f"webhook {hook.id}: new signing secret (shown once): {hook.secret}\nthe previous secret {until}",
    )
    return EXIT_OK


def cmd_test(args: argparse.Namespace) -> int:
    """A ``Webhook Test`` event on the stack's bus: it takes the deliveries' path, to this hook only."""
    target = inputs.resolve_target(args)
    hook = _checked(lambda: _registry(target).get(args.hook))
    bus_events.put(
        target.clients.client("events"),
        target.outputs["EventBusName"],
        wh.TEST_EVENT,
        {"hookId": hook.id, "message": "a test event from sesflow webhook test", "timestamp": now_iso()},
    )
    emit(args, {"sent": wh.TEST_EVENT, "hookId": hook.id}, f"sent a {wh.TEST_EVENT} event to {hook.id} ({hook.url})")
    return EXIT_OK


def _replay_body(body: dict[str, Any], hook_filter: str | None, now: float) -> dict[str, Any] | None:
    """What to queue again for one dead-lettered message (None: not this hook's)."""
    if "delivery" in body:
        hook = str(body["delivery"].get("hook"))
        if hook_filter and hook != hook_filter:
            return None
        replays = int(body["delivery"].get("replayed", 0)) + 1
        return {
            "delivery": {"hook": hook, "attempt": 1, "firstAttempt": now, "replayed": replays},
            "event": body["event"],
        }
    # an event the rule or the queue gave up on: to every matching hook, or to the one named
    if hook_filter:
        return {"delivery": {"hook": hook_filter, "attempt": 1, "firstAttempt": now, "replayed": 1}, "event": body}
    return body


def cmd_replay(args: argparse.Namespace) -> int:
    """Move dead-lettered deliveries back to the webhook queue (each with a fresh retry budget)."""
    target = inputs.resolve_target(args)
    sqs = target.clients.client("sqs")
    dead_url, queue_url = target.outputs["WebhookDeadLetterQueueUrl"], target.outputs["WebhookQueueUrl"]
    seen: set[str] = set()
    skipped: list[str] = []
    replayed = 0
    while args.max is None or replayed < args.max:
        messages = sqs.receive_message(QueueUrl=dead_url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
            "Messages", []
        )
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            seen.add(m["MessageId"])
            again = _replay_body(json.loads(m["Body"]), args.hook, time.time())
            if again is None or (args.max is not None and replayed >= args.max):
                skipped.append(m["ReceiptHandle"])
                continue
            if not args.dry_run:
                sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(again, default=str))
                sqs.delete_message(QueueUrl=dead_url, ReceiptHandle=m["ReceiptHandle"])
            else:
                skipped.append(m["ReceiptHandle"])
            replayed += 1
    for handle in skipped:  # back in view at once for the next replay
        sqs.change_message_visibility(QueueUrl=dead_url, ReceiptHandle=handle, VisibilityTimeout=0)
    verb = "would replay" if args.dry_run else "replayed"
    emit(args, {"replayed": 0 if args.dry_run else replayed, "matching": replayed}, f"{verb} {replayed} deliveries")
    return EXIT_OK


def register(add_parser: Callable[..., argparse.ArgumentParser], common: Callable[[], argparse.ArgumentParser]) -> None:
    p = add_parser("webhook", help="signed webhooks for status, campaign and sequence events", parents=[common()])
    sub = p.add_subparsers(dest="webhook_command", required=True)
    q = sub.add_parser("add", help="subscribe a URL (https) to events", parents=[common()])
    q.add_argument("url")
    q.add_argument(
        "--events",
        action="append",
        required=True,
        help=f"event types or patterns, repeatable or comma-separated: {', '.join(wh.EVENT_TYPES)}, '*'",
    )
    q.add_argument("--description", default="")
    q.set_defaults(func=cmd_add)
    q = sub.add_parser("list", help="the subscribers (no secrets) and the dead-letter count", parents=[common()])
    q.set_defaults(func=cmd_list)
    for name, func, helptext in (
        ("remove", cmd_remove, "unsubscribe a webhook"),
        ("test", cmd_test, "send a Webhook Test event to one webhook through the delivery path"),
        ("rotate-secret", cmd_rotate, "a new signing secret; the previous one also signs for 24 hours"),
    ):
        q = sub.add_parser(name, help=helptext, parents=[common()])
        q.add_argument("hook", help="the webhook id (wh_...)")
        if name == "rotate-secret":
            q.add_argument("--expire-previous", action="store_true", help="stop signing with the previous secret now")
        q.set_defaults(func=func)
    q = sub.add_parser("replay", help="send dead-lettered deliveries again", parents=[common()])
    q.add_argument("--hook", help="only this webhook's deliveries")
    q.add_argument("--max", type=int, help="at most this many")
    q.add_argument("--dry-run", action="store_true", help="count, do not move")
    q.set_defaults(func=cmd_replay)
