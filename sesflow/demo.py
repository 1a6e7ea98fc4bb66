"""``make demo``: the main job, end to end, on the embedded local AWS.

Starts a local stack (SES limited to 2 emails/s so throttling shows), then: a welcome
mail, a newsletter with one-click unsubscribe headers (and a one-click unsubscribe), the
feedback loop (a bounce suppresses the address; the next send is skipped), a bad request
rejected with its reason, and a burst of sends that SES throttles and the state machine
recovers. Then it serves the console (``sesflow console``) on the demo's stack until Ctrl-C
(``--no-console``: it ends at once, for CI), and stops the stack it started.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import urllib.request
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from sesflow import executions
from sesflow.cli.send import tracking_item
from sesflow.local import control
from sesflow.local.ses import outbox_entries
from sesflow.target import Target, find_root, local_target

RATE = 2


def _say(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m")


def _send(target: Target, request: dict[str, Any], name: str | None = None) -> executions.ExecutionReport:
    sfn = target.clients.client("stepfunctions")
    arn = executions.start(sfn, target.outputs["SendStateMachineArn"], request, name)
    executions.wait(sfn, arn, timeout=180)
    return executions.report(sfn, arn)


def _show(rep: executions.ExecutionReport) -> None:
    path = " -> ".join(s.name for s in rep.states)
    print(f"   path:   {path}")
    print(f"   result: {json.dumps(rep.output)}")


def _headers(target: Target, email_id: str, names: tuple[str, ...]) -> None:
    for entry in outbox_entries(Path(target.state["outbox"])):
        if entry["tags"].get("emailId") == email_id:
            msg = BytesParser(policy=policy.default).parsebytes(Path(entry["path"]).read_bytes())
            for name in names:
                print(f"   {name}: {msg[name]}")
            print(f"   parts: {[p.get_content_type() for p in msg.iter_parts()]}")
            print(f"   file:  {entry['path']}")


def _wait_sent(target: Target, email_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    item: dict[str, Any] = {}
    while time.monotonic() < deadline:
        item = tracking_item(target, email_id) or {}
        if item.get("sendState") == "sent":
            return item
        time.sleep(0.2)
    return item


def _wait_status(target: Target, email_id: str, wanted: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    item: dict[str, Any] = {}
    while time.monotonic() < deadline:
        item = tracking_item(target, email_id) or {}
        if item.get("status") == wanted:
            break
        time.sleep(0.05)
    return item


def _unsubscribe_url(target: Target, email_id: str) -> str:
    for entry in outbox_entries(Path(target.state["outbox"])):
        if entry["tags"].get("emailId") == email_id:
            msg = BytesParser(policy=policy.default).parsebytes(Path(entry["path"]).read_bytes())
            header = str(msg["List-Unsubscribe"])
            return header[header.index("<") + 1 : header.index(">")]
    raise LookupError(email_id)


def _campaign(target: Target) -> bool:
    from sesflow.cli.campaign import progress, status_text, wait_for

    rows = ["email,name"] + [f"reader{i}@example.org,Reader {i}" for i in range(40)]
    rows += ["not-an-address,Broken", "reader7@example.org,Duplicate", "bounce@simulator.amazonses.com,Bounced"]
    key = "uploads/demo-campaign.csv"
    target.clients.client("s3").put_object(
        Bucket=target.outputs["CampaignsBucketName"], Key=key, Body="\n".join(rows).encode()
    )
    payload = {
        "campaignId": "demo-campaign",
        "template": "newsletter",
        "topic": "newsletter",
        "recipients": {"key": key},
        "data": {"title": "Acme monthly", "intro": "Hello!", "articles": []},
        "stages": [1, 10, 100],
        "gate": {"observeSeconds": 1, "minSample": 100},
    }
    arn = target.clients.client("stepfunctions").start_execution(
        stateMachineArn=target.outputs["CampaignStateMachineArn"], name="demo-campaign", input=json.dumps(payload)
    )["executionArn"]
    print("   43 rows (1 invalid, 1 duplicate, 1 already suppressed by the bounce above), SES at 2/s")
    result = wait_for(target, "demo-campaign", arn, show=True)
    print("   " + status_text(progress(target, "demo-campaign")).replace("\n", "\n   "))
    return bool(result.get("status") == "completed")


def run_demo(target: Target) -> bool:
    events = find_root() / "events"
    ok = True

    _say("1. A welcome email (transactional)")
    rep = _send(target, json.loads((events / "send-welcome.json").read_text()) | {"emailId": "demo-welcome"})
    _show(rep)
    _headers(target, "demo-welcome", ("From", "To", "Subject"))
    ok &= rep.output["status"] == "sent"

    _say("2. A newsletter: subscription mail gets RFC 8058 one-click unsubscribe headers")
    rep = _send(target, json.loads((events / "send-newsletter.json").read_text()) | {"emailId": "demo-news"})
    _show(rep)
    _headers(target, "demo-news", ("Subject", "List-Unsubscribe", "List-Unsubscribe-Post"))
    ok &= rep.output["status"] == "sent"
    url = _unsubscribe_url(target, "demo-news")
    request = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - the local endpoint
        print(f"   one-click POST to the List-Unsubscribe URL: HTTP {resp.status}")
    item = _wait_status(target, "demo-news", "unsubscribed")
    print(f"   status {item.get('status')!r}; the next newsletter to this address would be suppressed")
    ok &= item.get("status") == "unsubscribed"

    _say("3. The feedback loop: a bounce suppresses the address, the next send is skipped")
    welcome = json.loads((events / "send-welcome.json").read_text())
    rep = _send(target, welcome | {"emailId": "demo-bounce", "to": "bounce@simulator.amazonses.com"})
    print(f"   send to bounce@simulator.amazonses.com: {rep.output['status']}")
    item = _wait_status(target, "demo-bounce", "bounced")
    print(f"   SES Bounce event -> feedback function -> status {item.get('status')!r} ({item.get('reason')})")
    rep = _send(target, welcome | {"emailId": "demo-suppressed", "to": "bounce@simulator.amazonses.com"})
    _show(rep)
    ok &= item.get("status") == "bounced" and rep.output["status"] == "suppressed"

    _say("4. A bad request is rejected with its reason")
    rep = _send(target, json.loads((events / "send-invalid.json").read_text()) | {"emailId": "demo-rejected"})
    _show(rep)
    ok &= rep.output["status"] == "rejected"

    _say(f"5. A burst of 6 sends against SES limited to {RATE}/s: throttled, retried (or deferred), all sent once")
    sfn = target.clients.client("stepfunctions")
    base = json.loads((events / "send-password-reset.json").read_text())
    arns = [
        executions.start(sfn, target.outputs["SendStateMachineArn"], base | {"emailId": f"demo-burst-{i}"})
        for i in range(6)
    ]
    for arn in arns:
        executions.wait(sfn, arn, timeout=180)
        rep = executions.report(sfn, arn)
        send = next(s for s in rep.states if s.name == "SendEmail")
        print(
            f"   {rep.output['emailId']}: {rep.output['status']:<8} after {send.retries} SesThrottled "
            f"retr{'y' if send.retries == 1 else 'ies'} ({send.duration_ms or 0:.0f} ms in SendEmail)"
        )
        ok &= rep.output["status"] in ("sent", "deferred")
    for i in range(6):  # a deferred send goes out in a later execution (a one-time schedule)
        item = _wait_sent(target, f"demo-burst-{i}")
        ok &= item.get("sendState") == "sent"
    burst = [
        e
        for e in outbox_entries(Path(target.state["outbox"]))
        if e["tags"].get("emailId", "").startswith("demo-burst-")
    ]
    print(f"   {len(burst)} burst messages in the outbox, one per email")
    ok &= sorted(e["tags"]["emailId"] for e in burst) == [f"demo-burst-{i}" for i in range(6)]

    _say("6. A staged campaign: 1 % canary, 10 %, then everyone; gates between the stages")
    ok &= _campaign(target)

    _say("The outbox (what the local SES accepted)")
    entries = outbox_entries(Path(target.state["outbox"]))
    for e in entries[:10]:
        print(f"   {e['tags'].get('emailId', '?'):<40} {e['subject'][:50]}")
    if len(entries) > 10:
        print(f"   ... and {len(entries) - 10} campaign messages")
    print(f"   {len(entries)} messages in {target.state['outbox']}")
    print(
        "\nTry it yourself:  .venv/bin/sesflow local up && .venv/bin/sesflow send --template welcome "
        '--to success@simulator.amazonses.com --data \'{"name": "Ada", "product": "Acme"}\''
    )
    return bool(ok)


def console(target: Target, port: int) -> None:
    """Serve the console on the demo's stack until Ctrl-C (any free port when ``port`` is taken)."""
    from sesflow.console.server import serve

    try:
        server, url = serve(target, port)
    except OSError:
        server, url = serve(target, 0)
    _say("The console: every run, email and campaign of this demo")
    print(f"   {url}   (open it in a browser; Ctrl-C stops the console and the local stack)", flush=True)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C, and a plain `kill` too, end it cleanly (the local stack is stopped); a shell that
    # starts it in the background leaves SIGINT ignored, so its handler is set here
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print()
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sesflow.demo", description=__doc__)
    parser.add_argument(
        "--no-console", action="store_true", help="end after the demo (CI) instead of serving the console"
    )
    parser.add_argument("--port", type=int, default=8765, help="the console's port on 127.0.0.1 (default 8765)")
    args = parser.parse_args(argv)
    root = find_root()
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-demo-"))
    print(f"Starting the embedded local AWS (template.yaml -> SAM translator -> CloudFormation), state in {sdir}")
    state, _ = control.up(root, port=0, ses_max_send_rate=RATE, sdir=sdir)
    print(f"   endpoint {state['endpoint']}, stack {state['stackName']}, ready in {state['startupSeconds']} s")
    try:
        target = local_target(root, sdir)
        ok = run_demo(target)
        print("DEMO OK" if ok else "DEMO FAILED", flush=True)
        if not args.no_console:
            console(target, args.port)
    finally:
        control.down(root, sdir=sdir)
        print("\nLocal stack stopped (the outbox stays for you to read).")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
