"""The send state machine, through the real ASL on the local stack: one test per path."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from sesflow import executions
from sesflow.cli.send import tracking_item
from sesflow.local.ses import outbox_entries
from sesflow.target import Target

from ..conftest import load_event, start_stack, stop_stack
from ..helpers import (
    DAILY_QUOTA,
    SES_5XX,
    SES_503,
    THROTTLED,
    EventCapture,
    assert_status_chain,
    inject_ses_faults,
    poll,
    set_fault_plan,
    status_events,
)

pytestmark = pytest.mark.local

WELCOME = {"template": "welcome", "to": "success@simulator.amazonses.com", "data": {"name": "Ada", "product": "Acme"}}


def run(stack: Target, request: Any, name: str | None = None) -> executions.ExecutionReport:
    sfn = stack.clients.client("stepfunctions")
    arn = executions.start(sfn, stack.outputs["SendStateMachineArn"], request, name)
    executions.wait(sfn, arn, timeout=120)
    return executions.report(sfn, arn)


def visited(rep: executions.ExecutionReport) -> list[str]:
    return [s.name for s in rep.states]


def messages_for(stack: Target, email_id: str) -> list[dict[str, Any]]:
    return [e for e in outbox_entries(Path(stack.state["outbox"])) if e["tags"].get("emailId") == email_id]


def wait_for_status(stack: Target, email_id: str, wanted: str, timeout: float = 15.0) -> dict[str, Any]:
    item: dict[str, Any] = poll(
        lambda: (i := tracking_item(stack, email_id)) and i["status"] == wanted and i,
        timeout,
        what=f"{email_id} reaches {wanted}",
    )
    return item


@pytest.fixture(autouse=True)
def _subscribe(status_capture: EventCapture) -> None:
    """Capture status events from before the first send."""


# ---------------------------------------------------------------- happy path
def test_happy_path_sends_one_multipart_message_with_headers_and_tags(
    stack: Target, status_capture: EventCapture
) -> None:
    req = load_event("send-welcome.json") | {"emailId": "happy-0001"}
    rep = run(stack, req, name="happy-0001")
    assert rep.status == "SUCCEEDED"
    assert rep.output["status"] == "sent" and rep.output["emailId"] == "happy-0001"
    path = visited(rep)
    assert path[:5] == ["ValidateRequest", "IsRequestValid", "CheckSuppression", "IsSuppressed", "SendEmail"]
    # the delivery may be recorded before the send (two producers): then RecordSent's condition
    # fails, the send's details are added under the later status and nothing is announced
    assert path[5:] in (["RecordSent", "EmitStatus"], ["RecordSent", "RecordSentDetails", "Finish"])
    assert rep.transitions == len(path)  # no retries: 7 transitions on the common path

    [entry] = messages_for(stack, "happy-0001")
    assert entry["messageId"] == rep.output["messageId"]
    assert entry["configurationSet"] == stack.outputs["ConfigurationSetName"]
    assert entry["tags"] == {"emailId": "happy-0001", "template": "welcome", "topic": "transactional", "app": "signup"}
    msg = BytesParser(policy=policy.default).parsebytes(Path(entry["path"]).read_bytes())
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Subject"] == "Welcome to Acme, Ada!"
    assert msg["To"] == "Ada Lovelace <success@simulator.amazonses.com>"
    assert msg["From"] == "no-reply@example.com"
    assert "List-Unsubscribe" not in msg

    # the simulator delivers; SES's Delivery event reaches the feedback function (its Send event
    # is not routed there: the machine recorded the send)
    item = poll(
        lambda: (
            (i := tracking_item(stack, "happy-0001"))
            and i["status"] == "delivered"
            and len(i.get("timeline", [])) == 1
            and i
        ),
        what="delivered, the Delivery event recorded",
    )
    assert item["sentAt"] and item["messageId"] == rep.output["messageId"] and item["templateVersion"]
    assert item["recipient"] == "success@simulator.amazonses.com" and item["sendState"] == "sent"
    assert [json.loads(e)["event"] for e in item["timeline"]] == ["Delivery"]
    # two producers: the machine announces "sent", the feedback function "delivered"; when the
    # delivery is recorded first, the status goes queued -> delivered and "sent" is not announced
    events = status_events(status_capture, "happy-0001", lambda s: "delivered" in s)
    assert assert_status_chain(events) in (["sent", "delivered"], ["delivered"])
    for event in events:
        assert event["source"] == "sesflow" and event["detail-type"] == "Email Status Changed"
        assert event["detail"] | {"timestamp": None, "previousStatus": None, "sequence": None} == {
            "emailId": "happy-0001",
            "status": event["detail"]["status"],
            "previousStatus": None,
            "messageId": rep.output["messageId"],
            "template": "welcome",
            "topic": "transactional",
            "campaignId": None,
            "reason": None,
            "timestamp": None,
            "sequence": None,
        }


def test_newsletter_gets_one_click_unsubscribe_headers(stack: Target) -> None:
    req = load_event("send-newsletter.json") | {"emailId": "news-0001"}
    rep = run(stack, req)
    assert rep.output["status"] == "sent"
    [entry] = messages_for(stack, "news-0001")
    msg = BytesParser(policy=policy.default).parsebytes(Path(entry["path"]).read_bytes())
    assert msg["List-Unsubscribe"].startswith("<http://127.0.0.1:")
    assert "token=" in msg["List-Unsubscribe"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_same_email_id_twice_sends_one_message(stack: Target, status_capture: EventCapture) -> None:
    req = WELCOME | {"emailId": "twice-0001"}
    first = run(stack, req)
    second = run(stack, req)  # a second execution (another name): the ledger stops the send
    assert first.output["status"] == second.output["status"] == "sent"
    assert first.output["messageId"] == second.output["messageId"]
    # a repeat of a recorded send ends after ValidateRequest: nothing sent, recorded or emitted
    assert visited(second)[-1] == "Repeat" and "SendEmail" not in visited(second)
    assert len(messages_for(stack, "twice-0001")) == 1
    events = status_events(status_capture, "twice-0001", lambda s: "delivered" in s)
    assert assert_status_chain(events) in (["sent", "delivered"], ["delivered"])  # nothing announced twice


def test_concurrent_duplicates_send_once(stack: Target) -> None:
    sfn = stack.clients.client("stepfunctions")
    req = WELCOME | {"emailId": "dup-burst-0001"}
    arns = [executions.start(sfn, stack.outputs["SendStateMachineArn"], req) for _ in range(4)]
    outputs = []
    for arn in arns:
        executions.wait(sfn, arn, timeout=120)
        outputs.append(executions.report(sfn, arn).output)
    # one execution opened the item and sent it; a repeat that came while it ran ends queued at
    # once (the first records the outcome), one that came after returns the first result
    sent = [o for o in outputs if o["status"] == "sent"]
    assert sent and len({o["messageId"] for o in sent}) == 1
    for o in outputs:
        assert o["status"] == "sent" or (o["status"] == "queued" and o["reason"].startswith("a repeat of")), o
    assert len(messages_for(stack, "dup-burst-0001")) == 1
    item = wait_for_status(stack, "dup-burst-0001", "delivered")
    assert item["previousStatus"] == "sent" and item["statusSequence"] == 2  # queued -> sent -> delivered, no failed


# ---------------------------------------------------------------- other outcomes
def test_suppressed_address_is_skipped_and_recorded(stack: Target, status_capture: EventCapture) -> None:
    ddb = stack.clients.client("dynamodb")
    ddb.put_item(
        TableName=stack.outputs["SuppressionTableName"],
        Item={"address": {"S": "blocked@example.org"}, "topic": {"S": "*"}, "reason": {"S": "test"}},
    )
    rep = run(stack, WELCOME | {"to": "Blocked@Example.org", "emailId": "supp-0001"})
    assert rep.status == "SUCCEEDED"
    assert rep.output == {
        "emailId": "supp-0001",
        "status": "suppressed",
        "messageId": None,
        "reason": "the recipient is on the suppression list",
    }
    assert "SendEmail" not in visited(rep)
    assert messages_for(stack, "supp-0001") == []
    assert tracking_item(stack, "supp-0001")["status"] == "suppressed"
    events = status_events(status_capture, "supp-0001", lambda s: "suppressed" in s)
    assert assert_status_chain(events) == ["suppressed"]


def test_suppression_honours_topics(stack: Target) -> None:
    ddb = stack.clients.client("dynamodb")
    ddb.put_item(
        TableName=stack.outputs["SuppressionTableName"],
        Item={"address": {"S": "nonews@example.org"}, "topic": {"S": "newsletter"}},
    )
    news = load_event("send-newsletter.json") | {"to": "nonews@example.org", "emailId": "topic-news"}
    assert run(stack, news).output["status"] == "suppressed"
    assert run(stack, WELCOME | {"to": "nonews@example.org", "emailId": "topic-tx"}).output["status"] == "sent"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"to": "not-an-address"}, "to is not a valid address"),
        ({"to": "a@example.org\r\nBcc: victim@example.org"}, "must not contain CR, LF or NUL"),
        ({"toName": "Eve\nBcc: victim@example.org"}, "toName must not contain CR, LF or NUL"),
        ({"template": "../../secrets"}, "template must match"),
        ({"from": "ceo@evil.example"}, "from must belong to the sending identity"),
        ({"data": {"blob": "x" * 40_000}}, "data is"),
    ],
)
def test_bad_requests_are_rejected_with_their_reason(stack: Target, overrides: dict[str, Any], reason: str) -> None:
    email_id = f"rej-{uuid.uuid4().hex[:10]}"
    rep = run(stack, WELCOME | overrides | {"emailId": email_id})
    assert rep.status == "SUCCEEDED"
    assert rep.output["status"] == "rejected" and rep.output["emailId"] == email_id
    assert reason in rep.output["reason"]
    assert visited(rep) == ["ValidateRequest", "IsRequestValid", "RecordStatus", "EmitStatus"]
    item = tracking_item(stack, email_id)
    assert item["status"] == "rejected" and reason in item["reason"] and item["expiresAt"]
    assert messages_for(stack, email_id) == []


def test_rejected_request_without_usable_id_is_tracked_under_the_execution_name(stack: Target) -> None:
    rep = run(stack, {"emailId": "bad id!", "to": "x"}, name="exec-name-0001")
    assert rep.output["emailId"] == "exec-name-0001" and rep.output["status"] == "rejected"


def test_unknown_template_fails_with_reason(stack: Target) -> None:
    rep = run(stack, WELCOME | {"template": "no-such-template", "emailId": "tpl-missing"})
    assert rep.output["status"] == "failed"
    assert rep.output["reason"].startswith("TemplateNotFound: template 'no-such-template' not found")
    assert [s.error for s in rep.states if s.name == "SendEmail"] == ["TemplateNotFound"]
    assert tracking_item(stack, "tpl-missing")["status"] == "failed"


def test_missing_variable_fails_with_reason(stack: Target) -> None:
    rep = run(stack, WELCOME | {"data": {"name": "Ada"}, "emailId": "tpl-var"})
    assert rep.output == {
        "emailId": "tpl-var",
        "status": "failed",
        "messageId": None,
        "reason": "TemplateRenderError: template welcome: missing variable(s): product",
    }


def test_injection_attempts_in_data_are_inert(stack: Target) -> None:
    evil = "<script>alert(1)</script>{{ 7*7 }}{% raw %}"
    rep = run(stack, WELCOME | {"data": {"name": evil, "product": "Acme"}, "emailId": "inject-0001"})
    assert rep.output["status"] == "sent"
    [entry] = messages_for(stack, "inject-0001")
    msg = BytesParser(policy=policy.default).parsebytes(Path(entry["path"]).read_bytes())
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "{{ 7*7 }}" in text and "49" not in text


def test_sending_paused_ends_paused_and_a_later_request_can_send(stack: Target, status_capture: EventCapture) -> None:
    ses = stack.clients.client("sesv2")
    ses.put_account_sending_attributes(SendingEnabled=False)
    try:
        rep = run(stack, WELCOME | {"emailId": "paused-0001"})
    finally:
        ses.put_account_sending_attributes(SendingEnabled=True)
    assert rep.output["status"] == "paused"
    assert rep.output["reason"].startswith("SesSendingPaused: SendingPausedException")
    assert messages_for(stack, "paused-0001") == []
    again = run(stack, WELCOME | {"emailId": "paused-0001"})
    assert again.output["status"] == "sent"
    events = status_events(status_capture, "paused-0001", lambda s: "delivered" in s)
    assert assert_status_chain(events) in (["paused", "sent", "delivered"], ["paused", "delivered"])


def test_ses_rejection_is_failed(stack: Target) -> None:
    ses = stack.clients.client("sesv2")
    ses.put_configuration_set_sending_options(
        ConfigurationSetName=stack.outputs["ConfigurationSetName"], SendingEnabled=False
    )
    try:
        rep = run(stack, WELCOME | {"emailId": "cs-paused"})
    finally:
        ses.put_configuration_set_sending_options(
            ConfigurationSetName=stack.outputs["ConfigurationSetName"], SendingEnabled=True
        )
    assert rep.output["status"] == "paused"


def test_email_requested_event_starts_a_send(stack: Target) -> None:
    event = load_event("email-requested.json")
    stack.clients.client("events").put_events(
        Entries=[
            {
                "EventBusName": stack.outputs["EventBusName"],
                "Source": event["source"],
                "DetailType": event["detail-type"],
                "Detail": json.dumps(event["detail"]),
            }
        ]
    )
    item = poll(
        lambda: (i := tracking_item(stack, "evt-reset-0001")) and i["status"] not in ("queued", "sent") and i,
        timeout=30,
        what="the requested email reaches a final status",
    )
    assert item["status"] == "delivered" and item["sentAt"]
    assert len(messages_for(stack, "evt-reset-0001")) == 1


# ---------------------------------------------------------------- throttling
@pytest.fixture(scope="module")
def throttled_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    sdir = tmp_path_factory.mktemp("throttled")
    target = start_stack(sdir, rate=1)
    yield target
    stop_stack(sdir, target)


def test_throttled_sends_recover_and_each_goes_out_once(throttled_stack: Target) -> None:
    """Four sends at once against 1 email/s: SES throttles; the send step retries in place
    (backoff + jitter) and, past that, defers to a new execution. Every email goes out once."""
    stack = throttled_stack
    sfn = stack.clients.client("stepfunctions")
    ids = [f"thr-{i}" for i in range(4)]
    arns = [executions.start(sfn, stack.outputs["SendStateMachineArn"], WELCOME | {"emailId": i}) for i in ids]
    reports = []
    for arn in arns:
        executions.wait(sfn, arn, timeout=180)
        reports.append(executions.report(sfn, arn))
    assert {r.output["status"] for r in reports} <= {"sent", "deferred"}
    send_rows = [row for r in reports for row in r.states if row.name == "SendEmail"]
    assert sum(row.retries for row in send_rows) >= 1, "no SES throttling was retried"
    events = [e for arn in arns for e in executions.history(sfn, arn)]
    failures = [
        e["taskFailedEventDetails"]["error"]
        for e in events
        if e["type"] == "TaskFailed" and e["taskFailedEventDetails"].get("resourceType") == "lambda"
    ]
    assert failures and set(failures) == {"SesThrottled"}
    poll(
        lambda: all((i := tracking_item(stack, e)) and i.get("sendState") == "sent" for e in ids),
        timeout=120,
        what="every throttled email sent (deferred ones by a later execution)",
    )
    sent = [e["tags"]["emailId"] for e in outbox_entries(Path(stack.state["outbox"]))]
    assert sorted(sent) == ids


# ---------------------------------------------------------------- deferral (scripted SES faults)
def test_throttling_past_the_retries_defers_to_a_new_execution_that_sends(stack: Target) -> None:
    """An EXPRESS execution may not wait: after three in-place retries the send is deferred
    (status deferred, a one-time schedule), and the scheduled execution sends it."""
    to = f"defer{uuid.uuid4().hex[:6]}@example.org"
    inject_ses_faults(stack.state["endpoint"], THROTTLED | {"times": 4, "recipient": to})
    rep = run(stack, WELCOME | {"to": to, "emailId": "defer-0001"})
    assert rep.output["status"] == "deferred"
    assert "deferred to" in rep.output["reason"] and "(round 1 of 5)" in rep.output["reason"]
    [send_row] = [row for row in rep.states if row.name == "SendEmail"]
    assert send_row.retries == 3 and send_row.error.startswith("SesThrottled")
    assert "Defer" in visited(rep)
    item = wait_for_status(stack, "defer-0001", "delivered", timeout=30)
    assert item["sendState"] == "sent"
    assert len(messages_for(stack, "defer-0001")) == 1
    runs = [
        ex
        for ex in stack.clients.client("stepfunctions").list_executions(
            stateMachineArn=stack.outputs["SendStateMachineArn"]
        )["executions"]
    ]
    inputs = [
        json.loads(stack.clients.client("stepfunctions").describe_execution(executionArn=ex["executionArn"])["input"])
        for ex in runs
    ]
    assert [i.get("sendRound") for i in inputs if isinstance(i, dict) and i.get("emailId") == "defer-0001"].count(
        1
    ) == 1


def test_the_daily_quota_defers_without_retrying_in_place(stack: Target) -> None:
    to = f"quota{uuid.uuid4().hex[:6]}@example.org"
    inject_ses_faults(stack.state["endpoint"], DAILY_QUOTA | {"recipient": to})
    rep = run(stack, WELCOME | {"to": to, "emailId": "quota-0001"})
    assert rep.output["status"] == "deferred" and rep.output["reason"].startswith("SesDailyQuotaExceeded")
    [send_row] = [row for row in rep.states if row.name == "SendEmail"]
    assert send_row.retries == 0
    wait_for_status(stack, "quota-0001", "delivered", timeout=30)
    assert len(messages_for(stack, "quota-0001")) == 1


def test_the_last_round_fails_the_email_with_the_reason(stack: Target) -> None:
    to = f"rounds{uuid.uuid4().hex[:6]}@example.org"
    inject_ses_faults(stack.state["endpoint"], THROTTLED | {"times": 4, "recipient": to})
    rep = run(stack, WELCOME | {"to": to, "emailId": "rounds-0001", "sendRound": 5})  # the 5th deferred round
    assert rep.output == {
        "emailId": "rounds-0001",
        "status": "failed",
        "messageId": None,
        "reason": "SesThrottled: SES still refused after 5 deferred round(s)",
    }
    assert tracking_item(stack, "rounds-0001")["status"] == "failed"
    assert messages_for(stack, "rounds-0001") == []


def test_an_ses_503_is_retried_in_place(stack: Target) -> None:
    to = f"fivexx{uuid.uuid4().hex[:6]}@example.org"
    inject_ses_faults(stack.state["endpoint"], SES_503 | {"times": 2, "recipient": to})
    rep = run(stack, WELCOME | {"to": to, "emailId": "5xx-0001"})
    assert rep.output["status"] == "sent"
    [send_row] = [row for row in rep.states if row.name == "SendEmail"]
    assert send_row.retries == 2
    assert len(messages_for(stack, "5xx-0001")) == 1


def test_an_ses_503_past_the_retries_fails_and_the_email_can_be_sent_again(stack: Target) -> None:
    to = f"fivexx{uuid.uuid4().hex[:6]}@example.org"
    inject_ses_faults(stack.state["endpoint"], SES_503 | {"times": 3, "recipient": to})
    rep = run(stack, WELCOME | {"to": to, "emailId": "5xx-0002"})
    assert rep.output["status"] == "failed" and rep.output["reason"].startswith("SesTransientError: ServiceUnavailable")
    assert messages_for(stack, "5xx-0002") == []
    assert run(stack, WELCOME | {"to": to, "emailId": "5xx-0002"}).output["status"] == "sent"


def test_an_ses_500_is_an_unknown_outcome_and_never_sent_again(stack: Target) -> None:
    """SES may have accepted a message it answered 500 for (SendEmail is not idempotent)."""
    to = f"fivexx{uuid.uuid4().hex[:6]}@example.org"
    inject_ses_faults(stack.state["endpoint"], SES_5XX | {"times": 1, "recipient": to})
    rep = run(stack, WELCOME | {"to": to, "emailId": "5xx-0003"})
    assert rep.output["status"] == "failed" and rep.output["reason"].startswith("SesOutcomeUnknown: InternalFailure")
    [send_row] = [row for row in rep.states if row.name == "SendEmail"]
    assert send_row.retries == 0
    item = tracking_item(stack, "5xx-0003")
    assert (item["status"], item["sendState"]) == ("failed", "sending")  # the ledger stays held
    again = run(stack, WELCOME | {"to": to, "emailId": "5xx-0003"})
    assert again.output["status"] == "failed"
    assert messages_for(stack, "5xx-0003") == []


def test_a_refused_ledger_claim_reads_its_holder_from_the_refusal(stack: Target) -> None:
    """The send function has no dynamodb:GetItem: a refused claim returns the item that holds
    the ledger (ReturnValuesOnConditionCheckFailure). Here an earlier send's result is on the
    ledger but its status was never recorded: the send step returns that result, sends nothing,
    and RecordSent records it."""
    ddb = stack.clients.client("dynamodb")
    item = {"status": "failed", "sendState": "sent", "sendOwner": "arn:earlier", "messageId": "m-earlier-0001"}
    ddb.put_item(
        TableName=stack.outputs["TrackingTableName"],
        Item={"emailId": {"S": "held-0001"}, **{k: {"S": v} for k, v in item.items()}},
    )
    rep = run(stack, WELCOME | {"emailId": "held-0001"})
    assert rep.output == {"emailId": "held-0001", "status": "sent", "messageId": "m-earlier-0001", "reason": None}
    [send] = [row for row in rep.states if row.name == "SendEmail"]
    assert (send.status, send.error, send.attempts) == ("succeeded", "", 1)
    assert "RecordSent" in visited(rep) and messages_for(stack, "held-0001") == []
    assert tracking_item(stack, "held-0001")["status"] == "sent"


def test_a_validation_that_keeps_dying_puts_the_request_in_the_dead_letter_queue(stack: Target) -> None:
    """ValidateRequest retries a crashed or timed-out function; past the retries the request
    is not lost: it goes to the send dead-letter queue (an alarm watches it) and the execution fails."""
    endpoint = stack.state["endpoint"]
    crash = {"kind": "lambdaCrash", "function": "ValidateFunction", "when": "before", "p": 1.0, "times": 3}
    set_fault_plan(endpoint, 1, [crash])
    try:
        rep = run(stack, WELCOME | {"to": "dlq@example.org", "emailId": "dlq-0001"})
    finally:
        set_fault_plan(endpoint, 1, [])
    assert rep.status == "FAILED" and rep.error == "StatusNotRecorded"
    [validate] = [row for row in rep.states if row.name == "ValidateRequest"]
    assert validate.retries == 2
    sqs = stack.clients.client("sqs")
    url = stack.outputs["SendDeadLetterQueueUrl"]
    bodies = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    [body] = [b for b in bodies if b["state"].get("emailId") == "dlq-0001"]
    assert body["state"]["error"]["Error"] == "Runtime.ExitError" and body["execution"].endswith(rep.name)
    assert messages_for(stack, "dlq-0001") == []


def test_a_300_kib_newsletter_is_sent_whole(stack: Target) -> None:
    """The send step renders: the message never enters the state, so a body larger than
    Step Functions' 256 KiB (which the local stack enforces) goes out whole."""
    s3 = stack.clients.client("s3")
    bucket = stack.outputs["TemplatesBucketName"]
    s3.put_object(
        Bucket=bucket,
        Key="big-newsletter/metadata.json",
        Body=json.dumps({"subject": "Big {{ title }}", "topic": "newsletter"}).encode(),
    )
    s3.put_object(
        Bucket=bucket,
        Key="big-newsletter/template.html",
        Body=b"<html><body>{% for i in range(300) %}<p>{{ chunk }}</p>{% endfor %}</body></html>",
    )
    rep = run(
        stack,
        {
            "template": "big-newsletter",
            "topic": "newsletter",
            "to": "reader@example.org",
            "emailId": "big-0001",
            "data": {"title": "T", "chunk": "z" * 1024},
        },
    )
    assert rep.status == "SUCCEEDED" and rep.output["status"] == "sent", rep.output
    [entry] = messages_for(stack, "big-0001")
    msg = BytesParser(policy=policy.default).parsebytes(Path(entry["path"]).read_bytes())
    assert len(msg.get_body(("html",)).get_content()) > 300 * 1024


def test_an_ses_rejection_fails_the_email_and_a_retry_sends_nothing(stack: Target) -> None:
    to = f"rejected{uuid.uuid4().hex[:6]}@example.org"
    inject_ses_faults(
        stack.state["endpoint"], {"code": "MessageRejected", "message": "Illegal header.", "recipient": to}
    )
    rep = run(stack, WELCOME | {"to": to, "emailId": "ses-rej-0001"})
    assert rep.output["status"] == "failed"
    assert rep.output["reason"] == "SesMessageRejected: MessageRejected: Illegal header."
    assert [s.error for s in rep.states if s.name == "SendEmail"] == ["SesMessageRejected"]
    assert visited(rep)[-3:] == ["Failed", "RecordStatus", "EmitStatus"]
    assert tracking_item(stack, "ses-rej-0001")["sendState"] == "rejected"
    again = run(stack, WELCOME | {"to": to, "emailId": "ses-rej-0001"})  # the ledger remembers
    assert again.output["status"] == "failed" and "Illegal header." in again.output["reason"]
    assert messages_for(stack, "ses-rej-0001") == []


def test_subscription_mail_shows_the_unsubscribe_link_in_its_footer(stack: Target) -> None:
    rep = run(stack, load_event("send-newsletter.json") | {"emailId": "footer-0001"})
    [entry] = messages_for(stack, "footer-0001")
    msg = BytesParser(policy=policy.default).parsebytes(Path(entry["path"]).read_bytes())
    header = str(msg["List-Unsubscribe"])
    link = header[header.index("<") + 1 : header.index(">")]
    html = msg.get_body(("html",)).get_content()
    assert rep.output["status"] == "sent" and f'href="{link.replace("&", "&amp;")}"' in html
