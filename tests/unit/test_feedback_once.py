"""Feedback effects survive the function dying at any point: campaign counters, suppression
entries (hits) and soft-bounce counts exactly once, the status event and the SES account
suppression list at least once, when Lambda's retry delivers the event again.

The deaths are injected around the handler's AWS calls (botocore's ``before-parameter-build``
and ``after-call`` events on the function's own clients), whatever calls the code makes: "dies
after call k" is the function killed once the k-th call has been answered, "dies before call
k" one killed (or throttled) before the k-th call is sent.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sesflow_core import feedback as fb
from sesflow_handlers import _common

from .conftest import SUPPRESSION, Aws, LambdaContext
from .test_handler_feedback import eventbridge, run, ses_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


class LambdaDied(Exception):
    """The invocation ended here (a crash, a timeout, an error Lambda retries)."""


@dataclass
class Calls:
    """Every AWS call the feedback function makes, numbered; kills it around one of them."""

    log: list[str] = field(default_factory=list)
    synced: list[dict[str, Any]] = field(default_factory=list)  # PutSuppressedDestination calls
    die: tuple[str, int] | None = None  # ("before" | "after", call number)
    hooks: dict[str, Callable[[str, dict[str, Any]], None]] = field(default_factory=dict)

    def before(self, name: str, params: dict[str, Any]) -> None:
        self.log.append(name)
        for hook in list(self.hooks.values()):
            hook(name, params)
        if self.die == ("before", len(self.log)):
            self.die = None
            raise LambdaDied(f"before {name}")

    def after(self, name: str) -> None:
        if self.die == ("after", len(self.log)):
            self.die = None
            raise LambdaDied(f"after {name}")


@pytest.fixture
def calls(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    """The function's clients, watched; SES account suppression sync on (recorded)."""
    monkeypatch.setenv("SYNC_ACCOUNT_SUPPRESSION", "true")
    state = Calls()
    for service in ("dynamodb", "events"):
        events = _common.client(service).meta.events

        def before(model: Any, params: dict[str, Any], service: str = service, **_: Any) -> None:
            state.before(f"{service}:{model.name}", params)

        def after(model: Any, service: str = service, **_: Any) -> None:
            state.after(f"{service}:{model.name}")

        events.register("before-parameter-build", before, unique_id="test-calls-before")
        events.register("after-call", after, unique_id="test-calls-after")

    def put_suppressed_destination(**kw: Any) -> dict[str, Any]:  # moto has no SES v2 suppression list
        state.before("sesv2:PutSuppressedDestination", kw)
        state.synced.append(kw)
        state.after("sesv2:PutSuppressedDestination")
        return {}

    monkeypatch.setattr(_common.client("sesv2"), "put_suppressed_destination", put_suppressed_destination)
    yield state


@dataclass(frozen=True)
class Case:
    kind: str  # Bounce, Complaint
    tracked_status: str  # the email's status before the event
    final_status: str
    counter: str
    topic: str  # the suppression entry written
    announced: bool  # the event changes the status: one status event
    bounce_type: tuple[str, str] = ("Permanent", "General")


CASES = {
    "permanent bounce": Case("Bounce", "sent", "bounced", "bounced", "*", True),
    "complaint": Case("Complaint", "delivered", "complained", "complained", "~subscription", True),
    # threshold 1 (set below): the first soft bounce is counted and suppresses
    "soft bounce": Case("Bounce", "delivered", "bounced", "bounced", "*", True, ("Transient", "MailboxFull")),
    # out of order: bounced ranks below complained, so the timeline only (no status event)
    "bounce after a complaint": Case("Bounce", "complained", "complained", "bounced", "*", False),
}


@dataclass
class Email:
    """One campaign email of its own (address, emailId, message, campaign): the cases of one
    test do not share a counter or a suppression entry."""

    n: int

    @property
    def address(self) -> str:
        return f"user{self.n}@example.org"

    @property
    def email_id(self) -> str:
        return f"once-{self.n}"

    @property
    def campaign(self) -> str:
        return f"camp-{self.n}"

    def event(self, case: Case, feedback_id: str = "fb-1") -> dict[str, Any]:
        obj = ses_event(case.kind, email_id=self.email_id, message_id=f"m-{self.n}", campaign=(self.campaign, "0"))
        obj["mail"]["destination"] = [self.address]
        if case.kind == "Bounce":
            obj["bounce"].update(
                feedbackId=feedback_id,
                bounceType=case.bounce_type[0],
                bounceSubType=case.bounce_type[1],
                bouncedRecipients=[{"emailAddress": self.address, "diagnosticCode": "smtp; 550"}],
            )
        else:
            obj["complaint"].update(feedbackId=feedback_id, complainedRecipients=[{"emailAddress": self.address}])
        return eventbridge(obj)

    def track(self, aws: Aws, case: Case) -> None:
        aws.put_item(
            self.email_id,
            status=case.tracked_status,
            messageId=f"m-{self.n}",
            recipient=self.address,
            template="newsletter",
            topic="newsletter",
            campaignId=self.campaign,
            statusSequence=2,
        )


def counter(aws: Aws, email: Email, name: str) -> int:
    value: int = aws.item(f"campaign#{email.campaign}#stage#0").get(name, 0)
    return value


def assert_applied_once(aws: Aws, calls: Calls, email: Email, case: Case, where: str) -> None:
    item = aws.item(email.email_id)
    assert len(aws.timeline(email.email_id)) == 1, where
    assert len(item["eventKeys"]) == 1, where
    assert not [k for k in item if k.startswith("pending")], f"{where}: {item}"  # nothing left to do
    assert item["status"] == case.final_status, where
    assert item["statusSequence"] == (3 if case.announced else 2), where
    assert counter(aws, email, case.counter) == 1, where
    entries = aws.suppressions()
    assert entries[(email.address, case.topic)]["hits"] == 1, where
    if case.bounce_type[0] == "Transient":
        assert len(entries[(email.address, "#soft-bounces")]["bounces"]) == 1, where
    mine = [e["detail"] for e in aws.events("Email Status Changed") if e["detail"]["emailId"] == email.email_id]
    if case.announced:  # at least once, and every copy the same event
        assert mine, f"{where}: the status event was lost"
        assert all(d | {"timestamp": 0} == mine[0] | {"timestamp": 0} for d in mine), where
        assert (mine[0]["status"], mine[0]["previousStatus"], mine[0]["sequence"]) == (
            case.final_status,
            case.tracked_status,
            3,
        ), where
    else:
        assert mine == [], where
    synced = [c for c in calls.synced if c["EmailAddress"] == email.address]
    assert synced, f"{where}: not on the account suppression list"
    assert all(c == synced[0] for c in synced), where


@pytest.mark.parametrize("name", CASES)
def test_the_function_dying_around_any_aws_call_loses_and_doubles_nothing(
    aws: Aws, ctx: LambdaContext, calls: Calls, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    case = CASES[name]
    monkeypatch.setenv("SOFT_BOUNCE_THRESHOLD", "1")
    reference = Email(0)
    reference.track(aws, case)
    run(ctx, reference.event(case))
    assert_applied_once(aws, calls, reference, case, "no fault")
    made = len(calls.log)
    assert made >= 2
    n = 0
    for when in ("before", "after"):
        for k in range(1, made + 1):
            n += 1
            email, where = Email(n), f"dies {when} call {k}"
            email.track(aws, case)
            calls.log.clear()
            calls.die = (when, k)
            with pytest.raises(LambdaDied):
                run(ctx, email.event(case))
            where += f" ({calls.log[k - 1]})"
            [retry] = run(ctx, email.event(case))  # Lambda's retry
            [duplicate] = run(ctx, email.event(case))  # and a duplicate delivery
            assert retry["duplicate"] is (when == "after" and k == made), where  # done only after the last
            assert duplicate["duplicate"] is True, where
            assert_applied_once(aws, calls, email, case, where)


def test_a_retry_that_finds_the_effects_pending_applies_them(aws: Aws, ctx: LambdaContext, calls: Calls) -> None:
    case, email = CASES["permanent bounce"], Email(1)
    email.track(aws, case)
    calls.die = ("after", 1)  # the tracking write
    with pytest.raises(LambdaDied):
        run(ctx, email.event(case))
    item = aws.item(email.email_id)
    assert item["pendingEffects"] == item["eventKeys"]
    assert counter(aws, email, "bounced") == 0 and aws.suppressions() == {}
    [retry] = run(ctx, email.event(case))
    assert retry == {
        "emailId": email.email_id,
        "event": "Bounce",
        "duplicate": False,
        "statusChanged": True,
        "tracked": True,
        "suppressed": 1,
        "resumed": True,
    }
    assert_applied_once(aws, calls, email, case, "retried")
    [again] = run(ctx, email.event(case))
    assert again["duplicate"] is True and "resumed" not in again


def test_a_duplicate_running_at_the_same_time_applies_nothing_twice(aws: Aws, ctx: LambdaContext, calls: Calls) -> None:
    """EventBridge delivers an event twice, at once: the second delivery finds the key pending
    and applies the effects while the first is still running; the first then finds them done."""
    case, email = CASES["complaint"], Email(2)
    email.track(aws, case)
    results: list[dict[str, Any]] = []

    def second_delivery(name: str, params: dict[str, Any]) -> None:
        if _counted_write(name, params):  # the first is about to write the counter
            del calls.hooks["second"]
            results.extend(run(ctx, email.event(case)))

    calls.hooks["second"] = second_delivery
    [first] = run(ctx, email.event(case))
    [second] = results
    assert sorted([first["duplicate"], second["duplicate"]]) == [False, True]
    assert_applied_once(aws, calls, email, case, "two at once")


def _counted_write(name: str, params: dict[str, Any]) -> bool:
    """A write of a campaign counter, a suppression entry or a soft-bounce count."""
    if name == "dynamodb:TransactWriteItems":
        return True
    key = params.get("Key", {}).get("emailId", {}).get("S", "")
    return name == "dynamodb:UpdateItem" and (params.get("TableName") == SUPPRESSION or key.startswith("campaign#"))


def test_two_soft_bounces_reach_the_threshold_even_when_counted_at_the_same_time(
    aws: Aws, ctx: LambdaContext, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threshold 3: one soft bounce counted; the second is being applied when the third is
    applied entirely. Both count, and the one that is counted third suppresses."""
    monkeypatch.setenv("SOFT_BOUNCE_THRESHOLD", "3")
    case = CASES["soft bounce"]
    emails = [Email(10), Email(11), Email(12)]
    for email in emails:
        email.track(aws, case)

    def event(i: int) -> dict[str, Any]:
        obj = emails[i].event(case, feedback_id=f"fb-soft-{i}")
        for recipient in obj["detail"]["bounce"]["bouncedRecipients"]:
            recipient["emailAddress"] = "soft@example.org"
        obj["detail"]["mail"]["destination"] = ["soft@example.org"]
        return obj

    run(ctx, event(0))
    third: list[dict[str, Any]] = []

    def third_bounce(name: str, params: dict[str, Any]) -> None:
        # the second bounce has read the count (or is about to write it): the third goes first
        if _counted_write(name, params):
            del calls.hooks["third"]
            third.extend(run(ctx, event(2)))

    calls.hooks["third"] = third_bounce
    [second] = run(ctx, event(1))
    assert [second["suppressed"], third[0]["suppressed"]] == [1, 0]
    entries = aws.suppressions()
    assert len(entries[("soft@example.org", "#soft-bounces")]["bounces"]) == 3
    assert entries[("soft@example.org", "*")]["hits"] == 1
    assert entries[("soft@example.org", "*")]["reason"] == "repeated soft bounces (Transient/MailboxFull)"


def test_two_soft_bounces_at_the_threshold_suppress(
    aws: Aws, ctx: LambdaContext, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFT_BOUNCE_THRESHOLD", "2")
    case = CASES["soft bounce"]
    first, second = Email(20), Email(21)
    for email in (first, second):
        email.track(aws, case)
    second_event = second.event(case, feedback_id="fb-soft-2")
    second_event["detail"]["bounce"]["bouncedRecipients"][0]["emailAddress"] = first.address
    assert run(ctx, first.event(case))[0]["suppressed"] == 0
    assert (first.address, "*") not in aws.suppressions()
    assert run(ctx, second_event)[0]["suppressed"] == 1
    assert aws.suppressions()[(first.address, "*")]["hits"] == 1
    assert [c["EmailAddress"] for c in calls.synced] == [first.address]


def test_a_conflicting_transaction_fails_the_invocation_and_the_retry_applies_it(
    aws: Aws, ctx: LambdaContext, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    case, email = CASES["permanent bounce"], Email(30)
    email.track(aws, case)
    ddb = _common.client("dynamodb")
    real = ddb.transact_write_items
    cancelled: list[list[str]] = []

    def conflict(**kw: Any) -> Any:
        monkeypatch.setattr(ddb, "transact_write_items", real)
        reasons = [{"Code": "None"}] + [{"Code": "TransactionConflict"}] * (len(kw["TransactItems"]) - 1)
        cancelled.append([next(iter(i)) for i in kw["TransactItems"]])
        raise ddb.exceptions.TransactionCanceledException(
            {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}, "CancellationReasons": reasons},
            "TransactWriteItems",
        )

    monkeypatch.setattr(ddb, "transact_write_items", conflict)
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        run(ctx, email.event(case))
    assert cancelled == [["Update", "Update", "Update"]]  # done, counter, suppression entry
    assert counter(aws, email, "bounced") == 0 and aws.suppressions() == {}
    [retry] = run(ctx, email.event(case))
    assert retry["resumed"] is True
    assert_applied_once(aws, calls, email, case, "after a conflict")


def test_an_event_of_this_stack_without_a_tracking_item_is_applied_once(
    aws: Aws, ctx: LambdaContext, calls: Calls
) -> None:
    """A bounce of this configuration set for an email whose tracking item is gone (expired):
    a marker item takes the place of the tracking item's pending key, whenever it dies."""
    case = CASES["permanent bounce"]
    run(ctx, Email(40).event(case))  # not tracked
    made = len(calls.log)
    for n, (when, k) in enumerate(((w, k) for w in ("before", "after") for k in range(1, made + 1)), 41):
        email, where = Email(n), f"dies {when} call {k}"
        calls.log.clear()
        calls.die = (when, k)
        with pytest.raises(LambdaDied):
            run(ctx, email.event(case))
        run(ctx, email.event(case))  # Lambda's retry
        [again] = run(ctx, email.event(case))
        assert again["duplicate"] is True, where
        assert counter(aws, email, "bounced") == 1, where
        assert aws.suppressions()[(email.address, "*")]["hits"] == 1, where
        assert [c for c in calls.synced if c["EmailAddress"] == email.address], where
        assert aws.item(email.email_id) == {}, where
    marker = aws.item(f"feedback#{fb.parse_envelope(Email(40).event(case))[0].key}")
    assert marker["expiresAt"] > 0 and "appliedAt" in marker


def test_an_event_without_effects_is_one_write(aws: Aws, ctx: LambdaContext, calls: Calls) -> None:
    """A single send's Send event changes no status and counts nothing: no pending key."""
    aws.put_item("plain-1", status="sent", messageId="m-p", recipient="a@example.org", statusSequence=1)
    event = copy.deepcopy(eventbridge(ses_event("Send", email_id="plain-1", message_id="m-p")))
    [result] = run(ctx, event)
    assert result["duplicate"] is False
    assert calls.log == ["dynamodb:UpdateItem"]
    assert "pendingEffects" not in aws.item("plain-1") and len(aws.timeline("plain-1")) == 1
