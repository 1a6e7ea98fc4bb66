"""SendEmail: at most once per emailId (the ledger), the error names the machine catches,
and the unsubscribe headers of subscription mail."""

from __future__ import annotations

import email
from email.message import Message
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from sesflow_core import errors
from sesflow_core import unsubscribe as unsub
from sesflow_handlers import _common, send

from .conftest import SECRET_CURRENT, UNSUBSCRIBE_URL, Aws, LambdaContext, normalised, ses_client_error

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

NEWSLETTER_DATA = {"title": "Acme monthly", "intro": "Hello!", "articles": []}


def run(ctx: LambdaContext, request: dict[str, Any], execution: str | None = "exec-1") -> dict[str, Any]:
    event: dict[str, Any] = {"request": request}
    if execution is not None:
        event["executionId"] = execution
    result: dict[str, Any] = send.handler(event, ctx)
    return result


def message(raw: Any) -> Message:
    return email.message_from_string(raw.raw_data)


def fail_ses_with(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> list[dict[str, Any]]:
    """SES (the handler's own cached client) answers every SendEmail with ``exc``."""
    calls: list[dict[str, Any]] = []

    def send_email(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        raise exc

    monkeypatch.setattr(_common.client("sesv2"), "send_email", send_email)
    return calls


def test_sent_once_with_the_ledger_completed(aws: Aws, ctx: LambdaContext) -> None:
    result = run(ctx, normalised(emailId="s-1"))
    assert result["emailId"] == "s-1" and result["duplicate"] is False
    [sent] = aws.sent()
    assert sent.source == "no-reply@example.com"
    assert sent.destinations[0] == "Ada@example.org"  # the domain normalised, the local part as given
    msg = message(sent)
    assert msg["Subject"] == "Welcome to Acme, Ada!"
    assert msg["From"] == "no-reply@example.com"  # DEFAULT_FROM_ADDRESS: neither the request nor the template name one
    assert msg["X-Sesflow-Email-Id"] == "s-1"
    assert msg["List-Unsubscribe"] is None  # transactional
    item = aws.item("s-1")
    assert item["sendState"] == "sent" and item["sendOwner"] == "exec-1"
    assert item["messageId"] == result["messageId"] == sent.id
    assert len(item["templateVersion"]) == 16
    assert "status" not in item  # RecordSent (the machine) moves the status, not this step


def test_a_second_call_is_a_duplicate_and_sends_nothing(aws: Aws, ctx: LambdaContext) -> None:
    first = run(ctx, normalised(emailId="s-2"))
    again = run(ctx, normalised(emailId="s-2"))  # a retried state
    other = run(ctx, normalised(emailId="s-2"), execution="exec-2")  # a second execution, same emailId
    assert again == other == {"emailId": "s-2", "messageId": first["messageId"], "duplicate": True}
    assert len(aws.sent()) == 1
    assert aws.item("s-2")["sendOwner"] == "exec-1"


def test_the_owner_defaults_to_the_lambda_request_id(aws: Aws, ctx: LambdaContext) -> None:
    run(ctx, normalised(emailId="s-3"), execution=None)
    assert aws.item("s-3")["sendOwner"] == ctx.aws_request_id


def test_a_ledger_held_by_another_execution_is_send_in_progress(aws: Aws, ctx: LambdaContext) -> None:
    aws.put_item("s-4", sendState="sending", sendOwner="exec-other")
    with pytest.raises(errors.SendInProgress):
        run(ctx, normalised(emailId="s-4"))
    assert aws.sent() == []
    assert aws.item("s-4")["sendOwner"] == "exec-other"


def test_a_ledger_held_by_this_execution_is_an_unknown_outcome_never_resent(aws: Aws, ctx: LambdaContext) -> None:
    aws.put_item("s-5", sendState="sending", sendOwner="exec-1")  # a previous attempt died after SendEmail
    with pytest.raises(errors.SesOutcomeUnknown, match="unknown outcome"):
        run(ctx, normalised(emailId="s-5"))
    assert aws.sent() == []
    assert aws.item("s-5")["sendState"] == "sending"


def test_a_read_timeout_keeps_the_ledger_held_so_the_retry_sends_nothing(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fail_ses_with(monkeypatch, ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"))
    with pytest.raises(errors.SesOutcomeUnknown):
        run(ctx, normalised(emailId="s-6"))
    item = aws.item("s-6")
    assert (item["sendState"], item["sendOwner"]) == ("sending", "exec-1")
    with pytest.raises(errors.SesOutcomeUnknown):
        run(ctx, normalised(emailId="s-6"))  # the machine's retry of the same execution
    assert len(calls) == 1


def test_a_missing_template_frees_the_ledger(aws: Aws, ctx: LambdaContext) -> None:
    with pytest.raises(errors.TemplateNotFound, match="'no-such-template'"):
        run(ctx, normalised(emailId="s-7", template="no-such-template"))
    item = aws.item("s-7")
    assert item["sendState"] == "retryable"
    assert "not found" in item["reason"]
    assert aws.sent() == []
    # once the template exists, a later run may send (another owner may take a retryable ledger)
    aws.put_template("no-such-template", "Hi {{ name }}", "<p>Hi {{ name }}</p>")
    assert run(ctx, normalised(emailId="s-7", template="no-such-template"), execution="exec-2")["duplicate"] is False
    assert len(aws.sent()) == 1


def test_a_template_that_cannot_render_frees_the_ledger(aws: Aws, ctx: LambdaContext) -> None:
    with pytest.raises(errors.TemplateRenderError, match="missing variable"):
        run(ctx, normalised(emailId="s-8", data={"name": "Ada"}))  # welcome needs product
    assert aws.item("s-8")["sendState"] == "retryable"
    assert aws.sent() == []


def test_ses_throttling_is_ses_throttled_and_the_ledger_is_retryable(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fail_ses_with(
        monkeypatch, ses_client_error("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
    )
    with pytest.raises(errors.SesThrottled, match="TooManyRequestsException"):
        run(ctx, normalised(emailId="s-9"))
    assert len(calls) == 1  # no SDK retries for SES: the machine retries by error name
    item = aws.item("s-9")
    assert item["sendState"] == "retryable"
    assert item["reason"] == "TooManyRequestsException: Maximum sending rate exceeded."
    assert aws.sent() == []


def test_the_daily_quota_is_its_own_error(aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch) -> None:
    fail_ses_with(monkeypatch, ses_client_error("LimitExceededException", "Daily message quota exceeded.", 400))
    with pytest.raises(errors.SesDailyQuotaExceeded):
        run(ctx, normalised(emailId="s-10"))
    assert aws.item("s-10")["sendState"] == "retryable"


def test_access_denied_is_a_configuration_error_with_the_sandbox_hint(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_ses_with(
        monkeypatch,
        ses_client_error("AccessDeniedException", "User is not authorized to perform ses:SendEmail", 403),
    )
    with pytest.raises(errors.SesConfigurationError) as caught:
        run(ctx, normalised(emailId="s-11"))
    assert "SesSandbox=true" in str(caught.value)
    item = aws.item("s-11")
    assert item["sendState"] == "retryable"  # resendable once the set-up is fixed
    assert "SesSandbox=true" in item["reason"]


def test_a_rejected_message_is_never_tried_again(aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fail_ses_with(monkeypatch, ses_client_error("MessageRejected", "Email address is blacklisted.", 400))
    with pytest.raises(errors.SesMessageRejected):
        run(ctx, normalised(emailId="s-12"))
    assert aws.item("s-12")["sendState"] == "rejected"
    with pytest.raises(errors.SesMessageRejected, match="blacklisted"):
        run(ctx, normalised(emailId="s-12"), execution="exec-2")
    assert len(calls) == 1


def test_a_newsletter_carries_one_click_unsubscribe_headers(aws: Aws, ctx: LambdaContext) -> None:
    run(ctx, normalised(emailId="s-13", template="newsletter", topic="newsletter", data=NEWSLETTER_DATA))
    msg = message(aws.sent()[0])
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    header = msg["List-Unsubscribe"]
    assert header.startswith(f"<{UNSUBSCRIBE_URL}?token=") and header.endswith(">")
    token = header[len(f"<{UNSUBSCRIBE_URL}?token=") : -1]
    sub = unsub.verify_token([SECRET_CURRENT.encode()], token)  # signed with the secret's current key
    assert (sub.address, sub.topic, sub.email_id) == ("ada@example.org", "newsletter", "s-13")


def test_the_unsubscribe_mailto_and_an_url_with_a_query(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNSUBSCRIBE_URL", "https://u.example.com/x?stack=dev")
    monkeypatch.setenv("UNSUBSCRIBE_MAILTO", "unsubscribe@example.com")
    run(ctx, normalised(emailId="s-14", template="newsletter", topic="newsletter", data=NEWSLETTER_DATA))
    header = message(aws.sent()[0])["List-Unsubscribe"]
    url, mailto = header.split(", ")
    assert url.startswith("<https://u.example.com/x?stack=dev&token=")
    assert mailto == "<mailto:unsubscribe@example.com?subject=unsubscribe>"


def test_no_unsubscribe_url_without_the_setting(aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNSUBSCRIBE_URL", "")
    run(ctx, normalised(emailId="s-15", template="newsletter", topic="newsletter", data=NEWSLETTER_DATA))
    msg = message(aws.sent()[0])
    assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None


def test_an_aws_error_before_the_ses_call_leaves_the_email_sendable(
    aws: Aws, ctx: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = _common.client("s3")
    real_get_object = s3.get_object

    def slow_down(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject")

    monkeypatch.setattr(s3, "get_object", slow_down)
    with pytest.raises(ClientError):
        run(ctx, normalised(emailId="s-16"))
    assert aws.sent() == []  # SES was never called
    monkeypatch.setattr(s3, "get_object", real_get_object)
    result = run(ctx, normalised(emailId="s-16"), execution="exec-2")  # the producer's retry
    assert result["duplicate"] is False
    assert len(aws.sent()) == 1
