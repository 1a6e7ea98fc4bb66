"""The send state machine, through the real ASL on the local stack: one test per path."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from sesflow import executions
from sesflow.cli_send import tracking_item
from sesflow.local.ses import outbox_entries
from sesflow.target import Target

from ..conftest import load_event, start_stack, stop_stack
from ..helpers import EventCapture, assert_status_chain, poll, statuses

pytestmark = pytest.mark.local

WELCOME = {"template": "welcome", "to": "success@simulator.amazonses.com",
           "data": {"name": "Ada", "product": "Acme"}}


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
    item: dict[str, Any] = poll(lambda: (i := tracking_item(stack, email_id)) and i["status"] == wanted and i,
                                timeout, what=f"{email_id} reaches {wanted}")
    return item


def status_events(capture: EventCapture, email_id: str, until: Callable[[set[str]], bool],
                  timeout: float = 15.0) -> list[dict[str, Any]]:
    """The status events of one email, once ``until(their statuses)`` holds."""
    def found() -> list[dict[str, Any]]:
        events = capture.matching(lambda e: e["detail"]["emailId"] == email_id)
        return events if until(statuses(events)) else []

    return poll(found, timeout, what=f"status events of {email_id}")


@pytest.fixture(autouse=True)
def _subscribe(status_capture: EventCapture) -> None:
    """Capture status events from before the first send."""


# ---------------------------------------------------------------- happy path
def test_happy_path_sends_one_multipart_message_with_headers_and_tags(stack: Target,
                                                                    status_capture: EventCapture) -> None:
    req = load_event("send-welcome.json") | {"emailId": "happy-0001"}
    rep = run(stack, req, name="happy-0001")
    assert rep.status == "SUCCEEDED"
    assert rep.output["status"] == "sent" and rep.output["emailId"] == "happy-0001"
    path = visited(rep)
    assert path[:6] == ["ValidateRequest", "IsRequestValid", "CheckSuppression", "IsSuppressed",
                        "RenderEmail", "SendEmail"]
    # the delivery may be recorded before the send (two producers): then the send's details are
    # added under the later status and nothing is announced
    assert path[6:] in (["RecordSent", "EmitStatus"], ["RecordSentDetails", "Finish"])
    assert rep.transitions <= 8

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

    # the simulator delivers; SES's Send and Delivery events reach the feedback function in any order
    item = poll(lambda: (i := tracking_item(stack, "happy-0001")) and i["status"] == "delivered"
                and len(i.get("timeline", [])) == 2 and i, what="delivered, both SES events recorded")
    assert item["sentAt"] and item["messageId"] == rep.output["messageId"] and item["templateVersion"]
    assert item["recipient"] == "success@simulator.amazonses.com" and item["sendState"] == "sent"
    assert sorted(json.loads(e)["event"] for e in item["timeline"]) == ["Delivery", "Send"]
    # two producers: the machine announces "sent", the feedback function "delivered"; when the
    # delivery is recorded first, the status goes queued -> delivered and "sent" is not announced
    events = status_events(status_capture, "happy-0001", lambda s: "delivered" in s)
    assert assert_status_chain(events) in (["sent", "delivered"], ["delivered"])
    for event in events:
        assert event["source"] == "sesflow" and event["detail-type"] == "Email Status Changed"
        assert event["detail"] | {"timestamp": None, "previousStatus": None, "sequence": None} == {
            "emailId": "happy-0001", "status": event["detail"]["status"], "previousStatus": None,
            "messageId": rep.output["messageId"], "template": "welcome", "topic": "transactional",
            "campaignId": None, "reason": None, "timestamp": None, "sequence": None}


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
    assert "Finish" in visited(second)  # nothing recorded or emitted twice
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
    assert {o["status"] for o in outputs} == {"sent"}
    assert len({o["messageId"] for o in outputs}) == 1
    assert len(messages_for(stack, "dup-burst-0001")) == 1


# ---------------------------------------------------------------- other outcomes
def test_suppressed_address_is_skipped_and_recorded(stack: Target, status_capture: EventCapture) -> None:
    ddb = stack.clients.client("dynamodb")
    ddb.put_item(TableName=stack.outputs["SuppressionTableName"],
                 Item={"address": {"S": "blocked@example.org"}, "topic": {"S": "*"}, "reason": {"S": "test"}})
    rep = run(stack, WELCOME | {"to": "Blocked@Example.org", "emailId": "supp-0001"})
    assert rep.status == "SUCCEEDED"
    assert rep.output == {"emailId": "supp-0001", "status": "suppressed", "messageId": None,
                          "reason": "the recipient is on the suppression list"}
    assert "RenderEmail" not in visited(rep) and "SendEmail" not in visited(rep)
    assert messages_for(stack, "supp-0001") == []
    assert tracking_item(stack, "supp-0001")["status"] == "suppressed"
    events = status_events(status_capture, "supp-0001", lambda s: "suppressed" in s)
    assert assert_status_chain(events) == ["suppressed"]


def test_suppression_honours_topics(stack: Target) -> None:
    ddb = stack.clients.client("dynamodb")
    ddb.put_item(TableName=stack.outputs["SuppressionTableName"],
                 Item={"address": {"S": "nonews@example.org"}, "topic": {"S": "newsletter"}})
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
    assert [s.error for s in rep.states if s.name == "RenderEmail"] == ["TemplateNotFound"]
    assert tracking_item(stack, "tpl-missing")["status"] == "failed"


def test_missing_variable_fails_with_reason(stack: Target) -> None:
    rep = run(stack, WELCOME | {"data": {"name": "Ada"}, "emailId": "tpl-var"})
    assert rep.output == {"emailId": "tpl-var", "status": "failed", "messageId": None,
                          "reason": "TemplateRenderError: template welcome: missing variable(s): product"}


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


def test_sending_paused_ends_paused_and_a_later_request_can_send(stack: Target,
                                                                status_capture: EventCapture) -> None:
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
    ses.put_configuration_set_sending_options(ConfigurationSetName=stack.outputs["ConfigurationSetName"],
                                              SendingEnabled=False)
    try:
        rep = run(stack, WELCOME | {"emailId": "cs-paused"})
    finally:
        ses.put_configuration_set_sending_options(ConfigurationSetName=stack.outputs["ConfigurationSetName"],
                                                  SendingEnabled=True)
    assert rep.output["status"] == "paused"


def test_email_requested_event_starts_a_send(stack: Target) -> None:
    event = load_event("email-requested.json")
    stack.clients.client("events").put_events(Entries=[{
        "EventBusName": stack.outputs["EventBusName"], "Source": event["source"],
        "DetailType": event["detail-type"], "Detail": json.dumps(event["detail"])}])
    item = poll(lambda: (i := tracking_item(stack, "evt-reset-0001")) and i["status"] not in ("queued", "sent") and i,
                timeout=30, what="the requested email reaches a final status")
    assert item["status"] == "delivered" and item["sentAt"]
    assert len(messages_for(stack, "evt-reset-0001")) == 1


# ---------------------------------------------------------------- throttling
@pytest.fixture(scope="module")
def throttled_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    sdir = tmp_path_factory.mktemp("throttled")
    target = start_stack(sdir, rate=1)
    yield target
    stop_stack(sdir, target)


def test_throttled_sends_recover_and_the_history_shows_the_retries(throttled_stack: Target) -> None:
    stack = throttled_stack
    sfn = stack.clients.client("stepfunctions")
    arns = [executions.start(sfn, stack.outputs["SendStateMachineArn"], WELCOME | {"emailId": f"thr-{i}"})
            for i in range(4)]
    reports = []
    for arn in arns:
        executions.wait(sfn, arn, timeout=180)
        reports.append(executions.report(sfn, arn))
    assert [r.output["status"] for r in reports] == ["sent"] * 4
    send_rows = [row for r in reports for row in r.states if row.name == "SendEmail"]
    assert sum(row.retries for row in send_rows) >= 1, "no SES throttling was retried"
    events = [e for arn in arns for e in executions.history(sfn, arn)]
    failures = [e["taskFailedEventDetails"]["error"] for e in events
                if e["type"] == "TaskFailed" and e["taskFailedEventDetails"].get("resourceType") == "lambda"]
    assert failures and set(failures) == {"SesThrottled"}
    assert len(outbox_entries(Path(stack.state["outbox"]))) == 4


def test_an_unverified_identity_is_a_configuration_error_and_a_resend_works(stack: Target) -> None:
    """SES refuses the sender (or, in the sandbox, the recipient): the set-up is wrong, not
    the message, so the email is failed with the reason and the same emailId can be sent
    once the set-up is fixed."""
    ses = stack.clients.client("ses")
    identities = [stack.state["parameters"]["SenderIdentity"], stack.state["parameters"]["DefaultFromAddress"]]
    for identity in identities:
        ses.delete_identity(Identity=identity)
    try:
        rep = run(stack, WELCOME | {"emailId": "unverified-0001"})
    finally:
        ses.verify_domain_identity(Domain=identities[0])
        ses.verify_email_identity(EmailAddress=identities[1])
    assert rep.output["status"] == "failed"
    assert rep.output["reason"].startswith("SesConfigurationError: MessageRejected: Email address is not verified")
    assert "SesSandbox=true" in rep.output["reason"]
    assert [s.error for s in rep.states if s.name == "SendEmail"] == ["SesConfigurationError"]
    assert tracking_item(stack, "unverified-0001")["sendState"] == "retryable"
    again = run(stack, WELCOME | {"emailId": "unverified-0001"})
    assert again.output["status"] == "sent"
    assert len(messages_for(stack, "unverified-0001")) == 1
