"""One-click unsubscribe (RFC 8058) in AWS: the delivered message cannot be read, so the
test builds the List-Unsubscribe URL the way the send function does (the stack's secret,
``make_token`` with the email id) and POSTs the one-click form to it, as a mail client would."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable

import pytest
from sesflow_core import unsubscribe as unsub

from sesflow.cli.suppression import entries
from sesflow.target import Target

from ..helpers import EventCapture, assert_status_chain
from .conftest import NEWSLETTER, send, status_events, wait_for_item

pytestmark = pytest.mark.cloud


def signing_secret(target: Target) -> bytes:
    """The secret that signs new tokens: ``current`` of the stack's UnsubscribeSecret."""
    value = target.clients.client("secretsmanager").get_secret_value(SecretId=target.physical_id("UnsubscribeSecret"))[
        "SecretString"
    ]
    return str(json.loads(value)["current"]).encode()


def unsubscribe_url(target: Target, token: str) -> str:
    """The List-Unsubscribe URL of the send function: the stack's UnsubscribeUrl + token."""
    base = target.outputs["UnsubscribeUrl"]
    return f"{base}{'&' if '?' in base else '?'}token={urllib.parse.quote(token, safe='')}"


def one_click_form() -> tuple[bytes, str]:
    """The RFC 8058 POST body as multipart/form-data (RFC 7578), and its Content-Type."""
    boundary = f"sesflow-{uuid.uuid4().hex}"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n'
        "\r\n"
        "One-Click\r\n"
        f"--{boundary}--\r\n"
    )
    return body.encode(), f"multipart/form-data; boundary={boundary}"


def http(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_one_click_unsubscribe(
    cloud: Target, status_capture: EventCapture, simulator_address: Callable[[str], str]
) -> None:
    address = simulator_address("success")
    out = send(cloud, address, NEWSLETTER["template"], NEWSLETTER["data"], topic=NEWSLETTER["topic"])
    assert out["status"] == "sent", out
    token = unsub.make_token(signing_secret(cloud), address, NEWSLETTER["topic"], email_id=out["emailId"])
    url = unsubscribe_url(cloud, token)

    code, page = http(url)  # GET shows a confirmation page and changes nothing (mail scanners follow links)
    assert code == 200, page
    assert entries(cloud, address) == []

    body, content_type = one_click_form()
    code, page = http(url, "POST", body, {"Content-Type": content_type})
    assert code == 200, f"one-click POST as multipart/form-data (RFC 8058 3.2): {code} {page}"
    assert "unsubscribed" in page
    [entry] = entries(cloud, address)  # written before the response
    assert (entry["topic"], entry["reason"]) == (NEWSLETTER["topic"], "unsubscribed"), entry
    wait_for_item(cloud, out["emailId"], lambda i: i["status"] == "unsubscribed", "reaches unsubscribed")
    events = status_events(status_capture, out["emailId"], lambda s: "unsubscribed" in s)
    assert assert_status_chain(events)[-1] == "unsubscribed"

    again = send(cloud, address, NEWSLETTER["template"], NEWSLETTER["data"], topic=NEWSLETTER["topic"])
    assert again["status"] == "suppressed", again
