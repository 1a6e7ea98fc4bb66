"""``make demo``: the main job, end to end, on the embedded local AWS.

Starts a local stack (SES limited to 2 emails/s so throttling shows), then: a welcome
mail, a newsletter with one-click unsubscribe headers, a suppressed address skipped, a bad
request rejected with its reason, and a burst of sends that SES throttles and the state
machine recovers. Stops the stack it started.
"""

from __future__ import annotations

import json
import sys
import tempfile
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from sesflow import executions
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

    _say("3. A suppressed address is skipped (no render, no SES call)")
    target.clients.client("dynamodb").put_item(
        TableName=target.outputs["SuppressionTableName"],
        Item={"address": {"S": "bounced@example.org"}, "topic": {"S": "*"}, "reason": {"S": "demo"}},
    )
    rep = _send(target, json.loads((events / "send-welcome.json").read_text())
                | {"emailId": "demo-suppressed", "to": "bounced@example.org"})
    _show(rep)
    ok &= rep.output["status"] == "suppressed"

    _say("4. A bad request is rejected with its reason")
    rep = _send(target, json.loads((events / "send-invalid.json").read_text()) | {"emailId": "demo-rejected"})
    _show(rep)
    ok &= rep.output["status"] == "rejected"

    _say(f"5. A burst of 6 sends against SES limited to {RATE}/s: throttled, retried, all sent")
    sfn = target.clients.client("stepfunctions")
    base = json.loads((events / "send-password-reset.json").read_text())
    arns = [executions.start(sfn, target.outputs["SendStateMachineArn"], base | {"emailId": f"demo-burst-{i}"})
            for i in range(6)]
    for arn in arns:
        executions.wait(sfn, arn, timeout=180)
        rep = executions.report(sfn, arn)
        send = next(s for s in rep.states if s.name == "SendEmail")
        print(f"   {rep.output['emailId']}: {rep.output['status']:<5} after {send.retries} SesThrottled "
              f"retr{'y' if send.retries == 1 else 'ies'} ({send.duration_ms or 0:.0f} ms in SendEmail)")
        ok &= rep.output["status"] == "sent"

    _say("The outbox (what the local SES accepted)")
    entries = outbox_entries(Path(target.state["outbox"]))
    for e in entries:
        print(f"   {e['tags'].get('emailId', '?'):<16} {e['subject'][:50]}")
    print(f"   {len(entries)} messages in {target.state['outbox']}")
    print("\nTry it yourself:  .venv/bin/sesflow local up && .venv/bin/sesflow send --template welcome "
          "--to success@simulator.amazonses.com --data '{\"name\": \"Ada\", \"product\": \"Acme\"}'")
    return ok


def main() -> int:
    root = find_root()
    sdir = Path(tempfile.mkdtemp(prefix="sesflow-demo-"))
    print(f"Starting the embedded local AWS (template.yaml -> SAM translator -> CloudFormation), state in {sdir}")
    state, _ = control.up(root, port=0, ses_max_send_rate=RATE, sdir=sdir)
    print(f"   endpoint {state['endpoint']}, stack {state['stackName']}, ready in {state['startupSeconds']} s")
    try:
        ok = run_demo(local_target(root, sdir))
    finally:
        control.down(root, sdir=sdir)
        print("\nLocal stack stopped (the outbox stays for you to read).")
    print("DEMO OK" if ok else "DEMO FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
