"""What every test may use to wait and to read what the stack produced.

Rules the tests keep (a fresh clone's first ``make test`` must pass):

* never sleep for a fixed time: :func:`poll` a condition until it holds, or fail with the
  last value seen;
* events from different producers (the send machine, the feedback function, the
  unsubscribe function) arrive in any order: compare them as sets, or order them by the
  per-email ``sequence`` every status event carries, never by arrival.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def poll(until: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> T:
    """Call ``until()`` until it returns something truthy; return that value.

    Raises AssertionError naming ``what`` and the last value when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = until()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not met in {timeout:g}s; last value: {last!r}")
        time.sleep(interval)


class EventCapture:
    """Every event of a bus that matches ``pattern``, captured through an SQS queue.

    One capture per (stack, pattern); events are kept for the whole session so that a
    test reading them late sees every one, whichever test's poll drained the queue.
    """

    def __init__(self, clients: Any, bus: str, pattern: dict[str, Any]) -> None:
        self._sqs = clients.client("sqs")
        events = clients.client("events")
        suffix = uuid.uuid4().hex[:8]
        self._url = self._sqs.create_queue(QueueName=f"capture-{suffix}")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule = f"capture-{suffix}"
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
        self.events: list[dict[str, Any]] = []

    def drain(self) -> list[dict[str, Any]]:
        """Move whatever the queue holds into :attr:`events`; return all events so far."""
        while True:
            msgs = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not msgs:
                return self.events
            for m in msgs:
                self.events.append(json.loads(m["Body"]))
                self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=m["ReceiptHandle"])

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for e in self.drain() if predicate(e)]


def statuses(events: list[dict[str, Any]]) -> set[str]:
    return {e["detail"]["status"] for e in events}


def in_sequence(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Status events of one email in the order their writes happened (``sequence``)."""
    return sorted(events, key=lambda e: e["detail"]["sequence"])


def assert_status_chain(events: list[dict[str, Any]], first_previous: str = "queued") -> list[str]:
    """The events of one email form one chain of status changes: each event's
    ``previousStatus`` is the status of the event before it (by ``sequence``), sequences
    strictly increase, and no status change is announced twice. Returns the statuses."""
    ordered = in_sequence(events)
    seqs = [e["detail"]["sequence"] for e in ordered]
    assert len(set(seqs)) == len(seqs), f"a sequence number was used twice: {seqs}"
    previous = first_previous
    for e in ordered:
        assert e["detail"]["previousStatus"] == previous, (previous, [ev["detail"] for ev in ordered])
        previous = e["detail"]["status"]
    return [e["detail"]["status"] for e in ordered]


def local_stats(endpoint: str) -> dict[str, Any]:
    """The local stack's request and invocation counters (``/_sesflow/stats``)."""
    import urllib.request

    with urllib.request.urlopen(f"{endpoint}/_sesflow/stats", timeout=10) as resp:
        stats: dict[str, Any] = json.loads(resp.read())
    return stats


def events_delivered(endpoint: str, timeout: float = 30.0) -> None:
    """Wait until the local EventBridge has delivered every event put so far to its Lambda
    and Step Functions targets (or dead-lettered it)."""
    poll(lambda: local_stats(endpoint)["deliveriesPending"] == 0, timeout, what="local event deliveries")


def inject_ses_faults(endpoint: str, *faults: dict[str, Any]) -> None:
    """The next SES SendEmail calls of the local stack fail with these errors, in order:
    ``{"code": "TooManyRequestsException", "message": "...", "status": 429, "times": 3}``."""
    import urllib.request

    req = urllib.request.Request(
        f"{endpoint}/_sesflow/faults", method="POST", data=json.dumps({"sesSendEmail": list(faults)}).encode()
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def clear_ses_faults(endpoint: str) -> None:
    import urllib.request

    with urllib.request.urlopen(
        urllib.request.Request(f"{endpoint}/_sesflow/faults", method="DELETE"), timeout=10
    ) as resp:
        resp.read()


THROTTLED = {"code": "TooManyRequestsException", "message": "Maximum sending rate exceeded.", "status": 429}
DAILY_QUOTA = {"code": "LimitExceededException", "message": "Daily message quota exceeded.", "status": 400}
SES_5XX = {"code": "InternalFailure", "message": "An internal error occurred.", "status": 500}
SES_503 = {"code": "ServiceUnavailable", "message": "Service Unavailable", "status": 503}


def set_fault_plan(endpoint: str, seed: int, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """Set the local stack's seeded fault plan (``sesflow/local/faults.py``): ``rules`` such as
    ``{"kind": "sesAcceptThenFail", "recipient": "x@example.org", "nth": [1]}``; ``[]`` turns it off."""
    import urllib.request

    req = urllib.request.Request(
        f"{endpoint}/_sesflow/faults", method="POST", data=json.dumps({"seed": seed, "rules": rules}).encode()
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        plan: dict[str, Any] = json.loads(resp.read())
    return plan


def fault_log(endpoint: str) -> list[dict[str, Any]]:
    """Every fault the plan injected so far, with what it hit (function, emailId, table, ...)."""
    import urllib.request

    with urllib.request.urlopen(f"{endpoint}/_sesflow/faults?log=1", timeout=10) as resp:
        log: list[dict[str, Any]] = json.loads(resp.read())["log"]
    return log


def status_events(
    capture: EventCapture, email_id: str, until: Callable[[set[str]], bool], timeout: float = 15.0
) -> list[dict[str, Any]]:
    """The status events of one email, once ``until(their statuses)`` holds."""

    def found() -> list[dict[str, Any]]:
        events = capture.matching(lambda e: e["detail"]["emailId"] == email_id)
        return events if until(statuses(events)) else []

    return poll(found, timeout, what=f"status events of {email_id}")


def canary_bounces(campaign_id: str, stages: tuple[float, ...], n: int) -> list[str]:
    """``n`` bouncing mailbox-simulator addresses that fall in a campaign's first stage, of this
    campaign only (a bounce suppresses its address for every later test of the shared stack)."""
    from sesflow_core import campaign as cp

    candidates = (f"bounce+{campaign_id}-{i}@simulator.amazonses.com" for i in range(40 * n))
    return [a for a in candidates if cp.stage_for(campaign_id, a, stages) == 0][:n]
