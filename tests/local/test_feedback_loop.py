"""The feedback loop on the local stack: mailbox simulator -> EventBridge -> feedback
function -> tracking, suppression list, counters, status events; one-click unsubscribe."""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sesflow_core import unsubscribe as unsub

from sesflow import executions
from sesflow.cli.send import tracking_item
from sesflow.cli.suppression import entries
from sesflow.target import Target

from ..conftest import load_event
from ..helpers import EventCapture, assert_status_chain, events_delivered, poll, status_events
from .test_send_machine import messages_for

pytestmark = pytest.mark.local

WELCOME = {"template": "welcome", "data": {"name": "Ada", "product": "Acme"}}
NEWS = {k: v for k, v in load_event("send-newsletter.json").items() if k != "to"}


@pytest.fixture(autouse=True)
def _subscribe(status_capture: EventCapture) -> None:
    """Capture status events from before the first send."""


def send(stack: Target, to: str, base: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    sfn = stack.clients.client("stepfunctions")
    req = (base or WELCOME) | {"to": to, "emailId": extra.pop("emailId", f"fb-{uuid.uuid4().hex[:12]}")} | extra
    arn = executions.start(sfn, stack.outputs["SendStateMachineArn"], req)
    executions.wait(sfn, arn, timeout=60)
    output: dict[str, Any] = executions.report(sfn, arn).output
    return output


def wait_for(
    stack: Target, email_id: str, predicate: Callable[[dict[str, Any]], Any], timeout: float = 15.0
) -> dict[str, Any]:
    """Poll the tracking item until ``predicate(item)``; fail with the last item seen."""
    item: dict[str, Any] = poll(
        lambda: (i := tracking_item(stack, email_id)) and predicate(i) and i,
        timeout,
        what=f"{email_id}: condition on the tracking item",
    )
    return item


def suppression_entries(stack: Target, address: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The address's suppression entries, once there are any (the feedback function writes
    them after the tracking item)."""
    found: list[dict[str, Any]] = poll(
        lambda: entries(stack, address), timeout, what=f"suppression entries of {address}"
    )
    return found


def timeline(item: dict[str, Any]) -> list[str]:
    return [json.loads(e)["event"] for e in item.get("timeline", [])]


def invoke_feedback(stack: Target, event: dict[str, Any]) -> dict[str, Any]:
    tags = event.get("detail", {}).get("mail", {}).get("tags")
    if tags is not None:  # SES tags every event with the configuration set the email went through
        tags["ses:configuration-set"] = [stack.outputs["ConfigurationSetName"]]
    resp = stack.clients.client("lambda").invoke(
        FunctionName=stack.function_name("FeedbackFunction"), Payload=json.dumps(event).encode()
    )
    payload: dict[str, Any] = json.loads(resp["Payload"].read())
    assert not resp.get("FunctionError"), payload
    return payload


# ---------------------------------------------------------------- mailbox simulator, end to end
def test_bounce_is_recorded_and_the_next_send_is_suppressed(stack: Target, status_capture: EventCapture) -> None:
    address = f"bounce+{uuid.uuid4().hex[:8]}@simulator.amazonses.com"
    first = send(stack, address)
    assert first["status"] == "sent"
    item = wait_for(stack, first["emailId"], lambda i: i["status"] == "bounced" and len(timeline(i)) == 1)
    assert (item["bounceType"], item["bounceSubType"]) == ("Permanent", "General")
    assert "550 5.1.1" in item["diagnosticCode"]
    # SES's Send event is not routed to the feedback function: the send step recorded the send
    assert timeline(item) == ["Bounce"] and item["sentAt"]
    [entry] = suppression_entries(stack, address)
    assert entry["topic"] == "*" and entry["reason"].startswith("permanent bounce")
    events = status_events(status_capture, first["emailId"], lambda s: "bounced" in s)
    assert assert_status_chain(events) in (["sent", "bounced"], ["bounced"])

    second = send(stack, address)
    assert second["status"] == "suppressed"
    assert messages_for(stack, second["emailId"]) == []


def test_complaint_after_delivery_suppresses_subscription_mail_only(stack: Target) -> None:
    address = f"complaint+{uuid.uuid4().hex[:8]}@simulator.amazonses.com"
    first = send(stack, address)
    item = wait_for(stack, first["emailId"], lambda i: i["status"] == "complained" and len(timeline(i)) == 2)
    assert item["complaintFeedbackType"] == "abuse"
    assert sorted(timeline(item)) == ["Complaint", "Delivery"]  # SES events arrive in any order
    assert suppression_entries(stack, address)[0]["topic"] == "~subscription"
    assert send(stack, address, NEWS)["status"] == "suppressed"
    assert send(stack, address)["status"] == "sent"


@pytest.mark.parametrize(
    ("address", "final"),
    [
        ("success@simulator.amazonses.com", "delivered"),
        ("success+label@simulator.amazonses.com", "delivered"),
        ("ooto@simulator.amazonses.com", "delivered"),
        ("someone@example.org", "delivered"),
    ],
)
def test_deliveries(stack: Target, address: str, final: str) -> None:
    out = send(stack, address)
    item = wait_for(stack, out["emailId"], lambda i: i["status"] == final)
    assert item["previousStatus"] in ("sent", "queued")  # "queued": the delivery was recorded before the send


def test_account_suppression_list_bounce(stack: Target) -> None:
    address = f"suppressionlist+{uuid.uuid4().hex[:8]}@simulator.amazonses.com"
    out = send(stack, address)
    item = wait_for(stack, out["emailId"], lambda i: i["status"] == "bounced")
    assert item["bounceSubType"] == "OnAccountSuppressionList"
    assert suppression_entries(stack, address)[0]["topic"] == "*"


def test_campaign_counters(stack: Target) -> None:
    cid = f"camp{uuid.uuid4().hex[:8]}"
    for to in ("success@simulator.amazonses.com", f"bounce+{cid}@simulator.amazonses.com"):
        send(stack, to, campaignId=cid, stage=1)
    counters = wait_for(stack, f"campaign#{cid}#stage#1", lambda i: i.get("bounced") == 1)
    assert "sent" not in counters and "delivered" not in counters  # counted by the campaign sender / not at all


# ---------------------------------------------------------------- duplicates, order, envelopes
def _bounce_event(
    message_id: str, email_id: str | None, address: str, feedback_id: str, bounce_type: str = "Permanent"
) -> dict[str, Any]:
    event = copy.deepcopy(load_event("fn-feedback.json"))
    detail = event["detail"]
    detail["mail"]["messageId"] = message_id
    detail["mail"]["destination"] = [address]
    if email_id:
        detail["mail"]["tags"]["emailId"] = [email_id]
    else:
        detail["mail"].pop("tags")
    detail["bounce"]["feedbackId"] = feedback_id
    detail["bounce"]["bounceType"] = bounce_type
    detail["bounce"]["bounceSubType"] = "General" if bounce_type == "Permanent" else "MailboxFull"
    detail["bounce"]["bouncedRecipients"][0]["emailAddress"] = address
    return event


def _delivery_event(message_id: str, email_id: str, address: str) -> dict[str, Any]:
    event = _bounce_event(message_id, email_id, address, "x")
    detail = event["detail"]
    detail.pop("bounce")
    detail["eventType"] = "Delivery"
    detail["delivery"] = {"timestamp": "2026-11-23T10:00:00.500Z", "recipients": [address]}
    event["detail-type"] = "Email Delivered"
    return event


def test_duplicate_and_out_of_order_events_are_harmless(stack: Target) -> None:
    address = f"dup{uuid.uuid4().hex[:6]}@example.org"
    out = send(stack, address)
    wait_for(stack, out["emailId"], lambda i: i["status"] == "delivered")
    bounce = _bounce_event(out["messageId"], out["emailId"], address, "fb-dup-1")
    first = invoke_feedback(stack, bounce)["results"][0]
    again = invoke_feedback(stack, bounce)["results"][0]
    assert first["duplicate"] is False and first["statusChanged"] is True
    assert again["duplicate"] is True
    late_delivery = invoke_feedback(stack, _delivery_event(out["messageId"], out["emailId"], address))["results"][0]
    assert late_delivery["statusChanged"] is False
    item = tracking_item(stack, out["emailId"])
    assert item["status"] == "bounced"
    assert timeline(item).count("Bounce") == 1
    assert entries(stack, address)[0]["hits"] == 1


def test_sns_identity_notification_finds_the_email_by_message_id(stack: Target) -> None:
    address = f"sns{uuid.uuid4().hex[:6]}@example.org"
    out = send(stack, address)
    wait_for(stack, out["emailId"], lambda i: i["status"] == "delivered")
    detail = _bounce_event(out["messageId"], None, address, "fb-sns-1")["detail"]
    detail["notificationType"] = detail.pop("eventType")
    envelope = {"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "Message": json.dumps(detail)}}]}
    [result] = invoke_feedback(stack, envelope)["results"]
    assert result["emailId"] == out["emailId"] and result["statusChanged"]
    assert tracking_item(stack, out["emailId"])["status"] == "bounced"


def test_soft_bounces_suppress_at_the_threshold(stack: Target) -> None:
    address = f"soft{uuid.uuid4().hex[:6]}@example.org"
    out = send(stack, address)
    for i in range(2):
        invoke_feedback(stack, _bounce_event(out["messageId"], out["emailId"], address, f"soft-{i}", "Transient"))
    assert entries(stack, address) == []
    invoke_feedback(stack, _bounce_event(out["messageId"], out["emailId"], address, "soft-2", "Transient"))
    [entry] = entries(stack, address)
    assert entry["topic"] == "*" and "soft bounces" in entry["reason"]


def test_not_an_ses_event_is_a_function_error(stack: Target) -> None:
    resp = stack.clients.client("lambda").invoke(
        FunctionName=stack.function_name("FeedbackFunction"), Payload=b'{"hello": "world"}'
    )
    assert resp.get("FunctionError")
    assert json.loads(resp["Payload"].read())["errorType"] == "FeedbackParseError"


# ---------------------------------------------------------------- one-click unsubscribe
def _secret(stack: Target) -> bytes:
    arn = stack.physical_id("UnsubscribeSecret")
    value = stack.clients.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    return str(json.loads(value)["current"]).encode()


def _http(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _unsubscribe_url(stack: Target, email_id: str) -> str:
    [entry] = messages_for(stack, email_id)
    from email import policy
    from email.parser import BytesParser
    from pathlib import Path

    msg = BytesParser(policy=policy.default).parsebytes(Path(entry["path"]).read_bytes())
    header = str(msg["List-Unsubscribe"])
    return header[header.index("<") + 1 : header.index(">")]


def test_one_click_unsubscribe(stack: Target) -> None:
    address = f"reader{uuid.uuid4().hex[:6]}@example.org"
    out = send(stack, address, NEWS)
    url = _unsubscribe_url(stack, out["emailId"])
    assert url.startswith(stack.outputs["UnsubscribeUrl"])

    code, page = _http(url)  # GET never unsubscribes (mail scanners follow links)
    assert code == 200 and 'method="post"' in page
    assert entries(stack, address) == []

    code, page = _http(url, "POST", b"List-Unsubscribe=One-Click")
    assert code == 200 and "unsubscribed" in page
    [entry] = entries(stack, address)
    assert (entry["topic"], entry["reason"]) == ("newsletter", "unsubscribed")
    wait_for(stack, out["emailId"], lambda i: i["status"] == "unsubscribed")
    assert send(stack, address, NEWS)["status"] == "suppressed"
    assert send(stack, address)["status"] == "sent"  # transactional mail still goes


def test_forged_expired_and_malformed_tokens_change_nothing(stack: Target) -> None:
    base = stack.outputs["UnsubscribeUrl"]
    secret = _secret(stack)
    address = f"victim{uuid.uuid4().hex[:6]}@example.org"
    forged = unsub.make_token(b"not-the-secret", address, "newsletter")
    expired = unsub.make_token(secret, address, "newsletter", now=time.time() - 10, ttl=1)
    for token, code in ((forged, 403), (expired, 403), ("garbage", 400)):
        got, _ = _http(f"{base}?token={token}", "POST", b"List-Unsubscribe=One-Click")
        assert got == code, token
    good = unsub.make_token(secret, address, "newsletter")
    assert _http(f"{base}?token={good}", "DELETE")[0] == 405
    assert entries(stack, address) == []


def _multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
            for k, v in fields.items()
        )
        + f"--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("encoding", ["multipart", "octet-stream", "empty"])
def test_any_post_with_a_valid_token_unsubscribes(stack: Target, encoding: str) -> None:
    """RFC 8058: the POST SHOULD be multipart/form-data and MAY be urlencoded; clients vary,
    so the signed token alone decides (the local function URL base64-encodes such bodies as
    Lambda does)."""
    address = f"mp{uuid.uuid4().hex[:6]}@example.org"
    token = unsub.make_token(_secret(stack), address, "newsletter")
    body, ctype = {
        "multipart": _multipart({"List-Unsubscribe": "One-Click"}),
        "octet-stream": (b"\x00\xffList-Unsubscribe=One-Click", "application/octet-stream"),
        "empty": (b"", "text/plain"),
    }[encoding]
    req = urllib.request.Request(
        f"{stack.outputs['UnsubscribeUrl']}?token={token}", data=body, method="POST", headers={"Content-Type": ctype}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200 and "unsubscribed" in resp.read().decode()
    [entry] = entries(stack, address)
    assert (entry["topic"], entry["reason"]) == ("newsletter", "unsubscribed")


# ---------------------------------------------------------------- several stacks in one account
def test_a_bounce_in_another_stack_leaves_this_one_untouched(stack: Target) -> None:
    """Every stack's SES events reach the same default bus: each stack handles its own only."""
    from sesflow.local import deploy
    from sesflow.local.server import local_parameters

    from ..conftest import ROOT

    name = f"sesflow-other-{uuid.uuid4().hex[:6]}"
    other_dep = deploy.deploy(stack.clients, ROOT, name, local_parameters(stack.state["port"]))
    deploy.upload_templates(stack.clients, ROOT, other_dep.outputs["TemplatesBucketName"])
    other = Target(stack.clients, name, other_dep.outputs, other_dep.resources, True, stack.state)
    try:
        cid = f"shared{uuid.uuid4().hex[:6]}"  # the same campaign id in both stacks
        address = f"bounce+{cid}@simulator.amazonses.com"
        out = send(other, address, campaignId=cid, stage=1)
        assert out["status"] == "sent"
        wait_for(other, out["emailId"], lambda i: i["status"] == "bounced")
        assert suppression_entries(other, address)[0]["topic"] == "*"
        wait_for(other, f"campaign#{cid}#stage#1", lambda i: i.get("bounced") == 1)
        # this stack saw the same events on the default bus and changed nothing
        events_delivered(stack.state["endpoint"])  # both stacks' rules had their chance
        assert entries(stack, address) == []
        assert tracking_item(stack, out["emailId"]) is None
        assert tracking_item(stack, f"campaign#{cid}#stage#1") is None
    finally:
        stack.clients.client("cloudformation").delete_stack(StackName=name)


def test_the_function_ignores_events_of_other_configuration_sets_and_untracked_notifications(stack: Target) -> None:
    address = f"foreign{uuid.uuid4().hex[:6]}@example.org"
    event = _bounce_event("0100-foreign-msg", "foreign-email-1", address, "fb-foreign-1")
    event["detail"]["mail"]["tags"]["ses:configuration-set"] = ["someone-elses-configuration-set"]
    resp = stack.clients.client("lambda").invoke(
        FunctionName=stack.function_name("FeedbackFunction"), Payload=json.dumps(event).encode()
    )
    assert json.loads(resp["Payload"].read())["results"][0]["ignored"] == "another configuration set"
    # an identity notification (no tags at all) for an email this stack does not track
    detail = _bounce_event("0100-unknown-msg", None, address, "fb-foreign-2")["detail"]
    detail["notificationType"] = detail.pop("eventType")
    [result] = invoke_feedback(stack, detail)["results"]
    assert result["ignored"] == "not tracked by this stack"
    assert entries(stack, address) == []


# ---------------------------------------------------------------- asynchronous invocation failures
def _queue_messages(stack: Target, output: str) -> list[dict[str, Any]]:
    sqs = stack.clients.client("sqs")
    msgs = sqs.receive_message(QueueUrl=stack.outputs[output], MaxNumberOfMessages=10, VisibilityTimeout=0).get(
        "Messages", []
    )
    return [json.loads(m["Body"]) for m in msgs]


def test_a_feedback_function_error_is_retried_twice_then_kept_in_the_failures_queue(stack: Target) -> None:
    """EventBridge invokes the function asynchronously: the rule's dead-letter queue gets only
    events it could not deliver; a function error is Lambda's to retry (twice), then the
    invocation record goes to the function's on-failure destination instead of being lost."""
    marker = f"broken-{uuid.uuid4().hex[:8]}"
    detail = {
        "eventType": "Bounce",
        "bounce": {"feedbackId": marker},
        "mail": {"tags": {"ses:configuration-set": [stack.outputs["ConfigurationSetName"]]}},
    }  # no messageId
    stack.clients.client("events").put_events(
        Entries=[{"Source": "aws.ses", "DetailType": "Email Bounced", "Detail": json.dumps(detail)}]
    )

    def failure_record() -> dict[str, Any] | None:
        found = [
            r
            for r in _queue_messages(stack, "FeedbackFailuresQueueUrl")
            if r["requestPayload"]["detail"]["bounce"]["feedbackId"] == marker
        ]
        return found[0] if found else None

    record = poll(failure_record, timeout=30, what="the failed invocation in the failures queue")
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"]["errorType"] == "FeedbackParseError"
    events_delivered(stack.state["endpoint"])
    assert not [
        e
        for e in _queue_messages(stack, "FeedbackDeadLetterQueueUrl")
        if e.get("detail", {}).get("bounce", {}).get("feedbackId") == marker
    ]
