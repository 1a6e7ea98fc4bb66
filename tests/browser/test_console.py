"""The console in a real browser, against the shared local stack."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from sesflow import executions
from sesflow.cli.campaign import progress
from sesflow.cli.send import tracking_item
from sesflow.target import Target

from ..helpers import THROTTLED, canary_bounces, inject_ses_faults, poll
from .conftest import Page

pytestmark = pytest.mark.local

WELCOME = {"template": "welcome", "to": "success@simulator.amazonses.com", "data": {"name": "Ada", "product": "Acme"}}
REJECTED = {"code": "MessageRejected", "message": "Email address is not verified.", "status": 400}
#: what the data of an email may carry: markup and template syntax, none of it may run or be evaluated
PROBE = '<script>new Image().src="/pwned-script"</script><img src="/pwned-img" onerror="location=\'/pwned\'">{{ 7*7 }}'


def send(stack: Target, request: dict[str, Any]) -> executions.ExecutionReport:
    sfn = stack.clients.client("stepfunctions")
    arn = executions.start(sfn, stack.outputs["SendStateMachineArn"], request, request["emailId"])
    executions.wait(sfn, arn, timeout=120)
    return executions.report(sfn, arn)


def execution_path(rep: executions.ExecutionReport) -> str:
    return "/execution?arn=" + urllib.parse.quote(rep.arn, safe="")


def graph_states(page: Page, cls: str) -> set[str]:
    return set(page.page.eval_on_selector_all(f"svg.graph g.state.{cls}", "els => els.map(e => e.dataset.state)"))


def no_console_errors(page: Page) -> None:
    assert page.errors == [], page.errors


def start_campaign(stack: Target, rows: list[str], **overrides: Any) -> tuple[str, str]:
    cid = overrides.pop("campaignId", f"ui{uuid.uuid4().hex[:10]}")
    key = f"uploads/{cid}/recipients.csv"
    stack.clients.client("s3").put_object(
        Bucket=stack.outputs["CampaignsBucketName"], Key=key, Body="\n".join(["email,name", *rows]).encode()
    )
    payload = {
        "campaignId": cid,
        "template": "newsletter",
        "topic": "newsletter",
        "recipients": {"key": key},
        "data": {"title": "T", "intro": "I", "articles": []},
        "gate": {"observeSeconds": 1, "minSample": 1000},
        **overrides,
    }
    arn = stack.clients.client("stepfunctions").start_execution(
        stateMachineArn=stack.outputs["CampaignStateMachineArn"], name=cid, input=json.dumps(payload)
    )["executionArn"]
    return cid, arn


def campaign_status(stack: Target, cid: str) -> str | None:
    try:
        return str(progress(stack, cid)["status"])
    except Exception:
        return None


# ---------------------------------------------------------------- executions and their graphs
def test_a_successful_send_highlights_exactly_the_states_visited(stack: Target, page: Page) -> None:
    rep = send(stack, WELCOME | {"emailId": f"ui-ok-{uuid.uuid4().hex[:8]}"})
    assert rep.status == "SUCCEEDED"
    page.go(execution_path(rep))
    assert graph_states(page, "visited") == {s.name for s in rep.states}
    assert graph_states(page, "failed") == set()
    # a state may fail and be caught on a successful path (RecordSent, when the delivery event
    # was recorded first): marked exactly where the history says so
    assert graph_states(page, "caught") == {s.name for s in rep.states if s.status == "caught"}
    taken = page.page.eval_on_selector_all("svg.graph path.edge.taken", "els => els.map(e => e.dataset.to)")
    assert "(end)" in taken and set(taken) - {"(end)"} <= {s.name for s in rep.states}
    assert page.page.inner_text("#execution-status") == "SUCCEEDED"
    page.page.get_by_role("link", name=re.compile("email ui-ok-")).click()  # the email it concerns
    assert page.page.inner_text("#email-status") in ("sent", "delivered")
    page.shot("execution-succeeded")
    no_console_errors(page)


def send_with_fault(stack: Target, fault: dict[str, Any], times: int, name: str) -> executions.ExecutionReport:
    """A send whose SES calls fail ``times`` times with ``fault`` (its own recipient)."""
    to = f"ui{name}{uuid.uuid4().hex[:6]}@example.org"
    inject_ses_faults(stack.state["endpoint"], fault | {"times": times, "recipient": to})
    return send(stack, WELCOME | {"to": to, "emailId": f"ui-{name}-{uuid.uuid4().hex[:8]}"})


def test_a_throttled_send_shows_its_retries_on_the_state(stack: Target, page: Page) -> None:
    rep = send_with_fault(stack, THROTTLED, 2, "throttled")
    [row] = [s for s in rep.states if s.name == "SendEmail"]
    assert row.retries == 2
    page.go(execution_path(rep))
    badge = page.page.locator('svg.graph g.state[data-state="SendEmail"] g.retries')
    assert badge.get_attribute("data-retries") == "2"
    assert page.page.locator('#states tr[data-state="SendEmail"] td.retries').inner_text() == "2"
    page.shot("execution-throttled")
    no_console_errors(page)


def test_a_failed_send_marks_the_state_that_failed(stack: Target, page: Page) -> None:
    rep = send_with_fault(stack, REJECTED, 1, "failed")
    assert rep.output["status"] == "failed"
    page.go(execution_path(rep))
    assert graph_states(page, "caught") == {"SendEmail"}  # it failed there; the Catch took it on
    assert "Failed" in graph_states(page, "visited")
    title = page.page.locator('svg.graph g.state[data-state="SendEmail"] title').text_content()
    assert title is not None and "caught" in title
    no_console_errors(page)


def test_executions_are_listed_searched_and_paged(stack: Target, page: Page) -> None:
    email_id = f"ui-find-{uuid.uuid4().hex[:8]}"
    send(stack, WELCOME | {"emailId": email_id})
    page.go("/executions")
    page.page.get_by_label("Search").fill(email_id)
    page.page.get_by_role("button", name="Show").click()
    assert page.page.get_by_role("link", name=email_id).count() >= 2  # the execution and the email
    page.go("/executions?q=" + urllib.parse.quote("no such/name <x>"))  # no execution can have it
    assert "No execution, email or campaign has exactly this name" in page.page.inner_text("main")
    page.go("/executions")
    page.page.get_by_label("Status").select_option("SUCCEEDED")
    page.page.get_by_role("button", name="Show").click()
    assert page.page.locator("table.list tbody tr").count() >= 1
    page.shot("executions")
    no_console_errors(page)


# ---------------------------------------------------------------- one email
def test_an_email_page_shows_the_bounce_the_suppression_and_the_message(stack: Target, page: Page) -> None:
    email_id = f"ui-bounce-{uuid.uuid4().hex[:8]}"
    to = f"bounce+{uuid.uuid4().hex[:6]}@simulator.amazonses.com"
    send(stack, WELCOME | {"emailId": email_id, "to": to})
    poll(lambda: (tracking_item(stack, email_id) or {}).get("status") == "bounced", timeout=30, what="bounced")
    poll(
        lambda: page.go(f"/emails/{email_id}") and "suppressed for" in page.page.inner_text("#suppression-decisions"),
        timeout=30,
        what="the suppression decision on the page",
    )
    assert page.page.inner_text("#email-status") == "bounced"
    timeline = page.page.inner_text("#timeline")
    assert "SES" in timeline and "bounce" in timeline.lower() and "SendEmail" in timeline
    frame = page.page.frame_locator("iframe#preview")
    assert "Ada" in frame.locator("body").inner_text()
    assert page.page.get_attribute("iframe#preview", "sandbox") == ""
    page.shot("email-bounced")
    no_console_errors(page)


def test_markup_and_template_syntax_in_the_data_never_run(stack: Target, page: Page) -> None:
    email_id = f"ui-probe-{uuid.uuid4().hex[:8]}"
    rep = send(stack, WELCOME | {"emailId": email_id, "data": {"name": PROBE, "product": PROBE}})
    assert rep.output["status"] == "sent"
    page.go(f"/emails/{email_id}")
    text = page.page.frame_locator("iframe#preview").locator("body").inner_text()
    assert "{{ 7*7 }}" in text and "49" not in text  # data is data: not evaluated by the renderer
    page.go(execution_path(rep))  # the probe is in the input shown on the page: escaped, inert
    page.page.wait_for_load_state("networkidle")  # anything the page would fetch, it has asked for
    assert not [u for u in page.loaded if "pwned" in u], page.loaded
    no_console_errors(page)


def test_a_script_in_a_message_does_not_run_in_the_preview(stack: Target, page: Page) -> None:
    """A message whose HTML carries scripts, handlers and remote images (put in the outbox as the
    local SES would): the sandboxed iframe and its CSP run none of it and fetch nothing."""
    email_id = f"ui-script-{uuid.uuid4().hex[:8]}"
    send(stack, WELCOME | {"emailId": email_id})
    outbox = Path(stack.state["outbox"])
    stem = f"999999-probe{uuid.uuid4().hex[:8]}"
    html = (
        "<html><body><h1>probe</h1>" + PROBE + '<img src="https://tracker.example/pixel.gif">'
        '<a href="javascript:location=\'/pwned-link\'">x</a><form action="/pwned-form"></form>'
        '<iframe src="/pwned-frame"></iframe><meta http-equiv="refresh" content="0;url=/pwned-refresh"></body></html>'
    )
    raw = (
        f"From: a@example.org\r\nTo: b@example.org\r\nSubject: probe\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n"
    )
    meta = {
        "messageId": stem,
        "timestamp": time.time(),
        "from": "a@example.org",
        "destinations": ["b@example.org"],
        "configurationSet": "",
        "tags": {"emailId": email_id},
    }  # as the local SES writes it
    (outbox / f"{stem}.eml").write_text(raw)
    (outbox / f"{stem}.json").write_text(json.dumps(meta))
    try:
        page.go(f"/emails/{email_id}")
        frame = page.page.frame_locator("iframe#preview")
        assert frame.locator("h1").inner_text() == "probe"
        page.page.wait_for_load_state("networkidle")  # anything the preview would fetch, it has asked for
        assert not [u for u in page.loaded if "pwned" in u or "tracker.example" in u], page.loaded
        assert any(b.startswith("https://tracker.example/") and b.endswith("csp") for b in page.blocked), page.blocked
        assert not [u for u in page.requests if "pwned-script" in u or "pwned-link" in u]  # no script ran
        assert page.page.url.endswith(f"/emails/{email_id}")
        # what the browser reports here is only the CSP refusing the probe's loads
        assert all("Content Security Policy" in e or "sandboxed" in e for e in page.errors), page.errors
    finally:  # the outbox is the shared stack's: leave it as the local SES wrote it
        (outbox / f"{stem}.eml").unlink()
        (outbox / f"{stem}.json").unlink()


# ---------------------------------------------------------------- campaigns
def test_a_campaign_page_shows_the_counts_of_campaign_status(stack: Target, page: Page) -> None:
    cid, arn = start_campaign(stack, [f"uic{i}@example.org,C" for i in range(30)], stages=[20, 100])
    executions.wait(stack.clients.client("stepfunctions"), arn, timeout=180)
    page.go(f"/campaigns/{cid}")
    expected = progress(stack, cid)
    assert page.page.inner_text("#campaign-status") == expected["status"] == "completed"
    rows = page.page.locator("#stages tbody tr")
    assert rows.count() == len(expected["stages"])
    for i, stage in enumerate(expected["stages"]):
        row = rows.nth(i)
        for key in ("planned", "sent", "suppressed", "failed", "bounced", "complained"):
            assert row.locator(f"td.{key}").inner_text() == str(stage[key]), (key, stage)
    page.go("/campaigns")
    assert page.page.get_by_role("link", name=cid).count() == 1
    page.go(f"/campaigns/{cid}")
    page.shot("campaign")
    no_console_errors(page)


def test_pause_and_resume_from_the_page_take_effect(stack: Target, page: Page) -> None:
    cid, arn = start_campaign(
        stack, [f"uip{i}@example.org,P" for i in range(60)], stages=[100], maxSendRate=5, batchSize=5
    )
    poll(lambda: campaign_status(stack, cid) == "running", timeout=60, what="running")
    page.go(f"/campaigns/{cid}")
    page.page.click("#action-pause")
    assert "Pause campaign" in page.page.inner_text("h1")  # it asks first
    page.page.click("#confirm")
    assert "Done: pause" in page.page.inner_text("main")
    poll(lambda: campaign_status(stack, cid) == "paused", timeout=60, what="paused")
    page.go(f"/campaigns/{cid}")
    assert page.page.inner_text("#campaign-status") == "paused"
    page.shot("campaign-paused")
    page.page.click("#action-resume")
    page.page.click("#confirm")
    executions.wait(stack.clients.client("stepfunctions"), arn, timeout=180)
    page.go(f"/campaigns/{cid}")
    assert page.page.inner_text("#campaign-status") == "completed"
    assert sum(s["sent"] for s in progress(stack, cid)["stages"]) == 60
    no_console_errors(page)


def test_a_campaign_halted_by_its_gate_says_why(stack: Target, page: Page) -> None:
    cid = f"uihalt{uuid.uuid4().hex[:8]}"
    stages = (10.0, 100.0)
    bounces = canary_bounces(cid, stages, 6)
    _, arn = start_campaign(
        stack,
        [f"{a},B" for a in bounces] + [f"uih{i}@example.org,G" for i in range(150)],
        campaignId=cid,
        stages=list(stages),
        gate={"observeSeconds": 10, "minSample": 5, "maxBounceRate": 0.05},
    )
    executions.wait(stack.clients.client("stepfunctions"), arn, timeout=240)
    page.go(f"/campaigns/{cid}")
    assert page.page.inner_text("#campaign-status") == "halted"
    assert page.page.inner_text("#campaign-reason").startswith("bounce rate")
    assert page.page.locator('#gates li[data-action="halt"]').count() == 1
    page.shot("campaign-halted")
    no_console_errors(page)


# ---------------------------------------------------------------- suppression, outbox, safety, a11y
def test_suppression_add_search_and_remove(stack: Target, page: Page) -> None:
    address = f"uisupp{uuid.uuid4().hex[:6]}@example.org"
    page.go("/suppression")
    page.page.get_by_label("Address", exact=True).fill(address)
    page.page.get_by_label("Reason").fill("asked by phone")
    page.page.get_by_role("button", name="Add…").click()
    page.page.click("#confirm")
    assert address in page.page.inner_text("#suppression") and "asked by phone" in page.page.inner_text("#suppression")
    page.shot("suppression")
    page.page.get_by_role("button", name=f"remove {address} (*)").click()
    page.page.click("#confirm")
    assert address not in page.page.inner_text("#suppression")
    no_console_errors(page)


def test_a_post_without_the_csrf_token_is_refused(stack: Target, console: str) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{console}/suppression/add", data=b"address=x%40example.org&confirm=yes", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 403
    host = urllib.request.Request(f"{console}/executions", headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(host, timeout=10)
    assert err.value.code == 421


def test_outbox_lists_what_the_local_ses_accepted(stack: Target, page: Page) -> None:
    email_id = f"ui-outbox-{uuid.uuid4().hex[:8]}"
    send(stack, WELCOME | {"emailId": email_id})
    page.go("/outbox")
    assert page.page.get_by_role("link", name=email_id).count() == 1
    page.shot("outbox")
    no_console_errors(page)


def test_keyboard_navigation_and_labels(stack: Target, page: Page) -> None:
    for path in ("/executions", "/campaigns", "/suppression", "/outbox"):
        page.go(path)
        page.page.keyboard.press("Tab")
        assert page.page.evaluate("document.activeElement.className") == "skip"
        page.page.keyboard.press("Enter")
        assert page.page.evaluate("document.activeElement.id") == "main"
        unlabelled = page.page.eval_on_selector_all(
            "input:not([type=hidden]), select, button, iframe",
            "els => els.filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')"
            " && !e.title && !e.textContent.trim()).map(e => e.outerHTML)",
        )
        assert unlabelled == [], (path, unlabelled)
    no_console_errors(page)


def test_against_a_deployed_stack_there_is_no_outbox_and_no_message_copy(stack: Target) -> None:
    """``--stack NAME``: the same pages from the same API calls; what only the local SES has
    (the outbox, the message as sent) is said to be absent, not broken."""
    import urllib.error
    import urllib.request

    from sesflow.console.server import serve

    deployed = Target(stack.clients, stack.stack_name, stack.outputs, stack.resources, local=False)
    email_id = f"ui-deployed-{uuid.uuid4().hex[:8]}"
    send(stack, WELCOME | {"emailId": email_id})
    server, url = serve(deployed, 0)
    try:
        with urllib.request.urlopen(f"{url}emails/{email_id}", timeout=30) as resp:
            body = resp.read().decode()
        assert "SES keeps no copy of a message" in body and 'href="/outbox"' not in body
        with urllib.request.urlopen(f"{url}executions?q={email_id}", timeout=30) as resp:
            assert f"/emails/{email_id}" in resp.read().decode()
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}outbox", timeout=30)
        assert err.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
