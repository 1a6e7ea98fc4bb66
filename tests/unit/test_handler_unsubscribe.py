"""One-click unsubscribe behind a function URL: GET shows a page and changes nothing; POST
with a valid token suppresses the topic and records ``unsubscribed``; anything else is 4xx."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sesflow_core import unsubscribe as unsub
from sesflow_handlers import unsubscribe

from .conftest import ROOT, SECRET_CURRENT, SECRET_PREVIOUS, Aws, LambdaContext

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

ADDRESS = "reader@example.org"


def url_event(method: str, token: str | None, body: str = "List-Unsubscribe=One-Click") -> dict[str, Any]:
    """A Lambda function URL request (payload format 2.0)."""
    event: dict[str, Any] = json.loads((ROOT / "events" / "fn-unsubscribe.json").read_text())
    event["requestContext"]["http"]["method"] = method
    event["body"] = body
    if token is None:
        event.pop("queryStringParameters")
        event["rawQueryString"] = ""
    else:
        event["queryStringParameters"] = {"token": token}
        event["rawQueryString"] = f"token={token}"
    return event


def token(secret: str = SECRET_CURRENT, email_id: str | None = "u-1", **kw: Any) -> str:
    return unsub.make_token(secret.encode(), ADDRESS, "newsletter", email_id=email_id, **kw)


def call(ctx: LambdaContext, method: str, tok: str | None) -> dict[str, Any]:
    result: dict[str, Any] = unsubscribe.handler(url_event(method, tok), ctx)
    return result


def delivered(aws: Aws, email_id: str = "u-1") -> None:
    aws.put_item(
        email_id, status="delivered", recipient=ADDRESS, template="newsletter", topic="newsletter", statusSequence=2
    )


def test_get_shows_a_confirmation_page_and_changes_nothing(aws: Aws, ctx: LambdaContext) -> None:
    delivered(aws)
    tok = token()
    page = call(ctx, "GET", tok)
    assert page["statusCode"] == 200
    assert page["headers"]["Cache-Control"] == "no-store"
    assert "newsletter" in page["body"] and f'action="?token={tok}"' in page["body"]
    assert '<form method="post"' in page["body"]
    assert aws.suppressions() == {}
    assert aws.item("u-1")["status"] == "delivered"
    assert aws.events() == []


def test_post_with_a_valid_token_unsubscribes(aws: Aws, ctx: LambdaContext) -> None:
    delivered(aws)
    page = call(ctx, "POST", token())
    assert page["statusCode"] == 200 and "You are unsubscribed" in page["body"]
    entry = aws.suppressions()[(ADDRESS, "newsletter")]
    assert (entry["reason"], entry["sourceEvent"], entry["hits"]) == ("unsubscribed", "one-click", 1)
    item = aws.item("u-1")
    assert (item["status"], item["previousStatus"], item["statusSequence"]) == ("unsubscribed", "delivered", 3)
    assert item["reason"] == "unsubscribed from newsletter"
    [entry_] = aws.timeline("u-1")
    assert entry_["event"] == "Unsubscribe" and entry_["topic"] == "newsletter"
    [event] = aws.events("Email Status Changed")
    detail = event["detail"]
    assert (detail["emailId"], detail["status"], detail["previousStatus"], detail["sequence"]) == (
        "u-1",
        "unsubscribed",
        "delivered",
        3,
    )
    assert detail["topic"] == "newsletter" and detail["reason"] == "unsubscribed from newsletter"


def test_a_second_click_is_harmless(aws: Aws, ctx: LambdaContext) -> None:
    delivered(aws)
    tok = token()
    assert call(ctx, "POST", tok)["statusCode"] == 200
    assert call(ctx, "POST", tok)["statusCode"] == 200
    assert aws.suppressions()[(ADDRESS, "newsletter")]["hits"] == 2
    assert aws.item("u-1")["statusSequence"] == 3
    assert len(aws.timeline("u-1")) == 1
    assert len(aws.events("Email Status Changed")) == 1


def test_a_token_of_the_previous_key_still_works(aws: Aws, ctx: LambdaContext) -> None:
    assert call(ctx, "POST", token(SECRET_PREVIOUS, email_id=None))["statusCode"] == 200
    assert list(aws.suppressions()) == [(ADDRESS, "newsletter")]
    assert aws.events() == []  # no email to record it on


@pytest.mark.parametrize(
    ("tok", "code"),
    [
        (lambda: token("a-key-we-never-had"), 403),  # forged
        (lambda: token(now=time.time() - 100 * 86400), 403),  # expired (90 days)
        (lambda: "not-a-valid-token", 400),  # malformed
        (lambda: token()[:-3] + "!!!", 403),  # tampered signature
        (lambda: None, 400),  # no token at all
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_invalid_token_changes_nothing(aws: Aws, ctx: LambdaContext, tok: Any, code: int, method: str) -> None:
    delivered(aws)
    page = call(ctx, method, tok())
    assert page["statusCode"] == code
    assert "not valid" in page["body"]
    assert aws.suppressions() == {}
    assert aws.item("u-1")["status"] == "delivered"


@pytest.mark.parametrize("method", ["DELETE", "PUT"])
def test_other_methods_are_405(aws: Aws, ctx: LambdaContext, method: str) -> None:
    page = call(ctx, method, token())
    assert page == {"statusCode": 405, "headers": {"Allow": "GET, POST"}, "body": ""}
    assert aws.suppressions() == {}
