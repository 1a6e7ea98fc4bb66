"""The feedback loop in AWS: each SES mailbox-simulator address ends in its documented
status, bounces and complaints land on the stack's suppression list, and a bounced
address is suppressed at the next send."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sesflow.cli.suppression import entries
from sesflow.target import Target

from ..helpers import EventCapture, assert_status_chain, poll
from .conftest import FEEDBACK_TIMEOUT, INTERVAL, send, status_events, wait_for_item

pytestmark = pytest.mark.cloud

#: simulator mailbox -> final status, the bounce (type, subtype; None: any subtype) of a bounce,
#: and the topic of the suppression entry it leaves (None: none; "complaint": the stack's
#: ComplaintSuppressionScope, "~subscription" by default)
CASES: list[tuple[str, str, tuple[str, str | None] | None, str | None]] = [
    ("success", "delivered", None, None),
    ("bounce", "bounced", ("Permanent", None), "*"),
    ("ooto", "delivered", None, None),
    ("complaint", "complained", None, "complaint"),
    ("suppressionlist", "bounced", ("Permanent", "OnAccountSuppressionList"), "*"),
]


@pytest.mark.parametrize(("mailbox", "final", "bounce", "suppression_topic"), CASES, ids=[c[0] for c in CASES])
def test_mailbox_simulator(
    cloud: Target,
    cloud_parameters: dict[str, str],
    status_capture: EventCapture,
    simulator_address: Callable[[str], str],
    mailbox: str,
    final: str,
    bounce: tuple[str, str | None] | None,
    suppression_topic: str | None,
) -> None:
    address = simulator_address(mailbox)
    out = send(cloud, address)
    assert out["status"] == "sent", out
    item = wait_for_item(cloud, out["emailId"], lambda i: i["status"] == final, f"reaches {final}")
    if bounce:
        bounce_type, subtype = bounce
        assert item.get("bounceType") == bounce_type, item
        assert subtype is None or item.get("bounceSubType") == subtype, item

    if suppression_topic is None:
        assert entries(cloud, address) == []
    else:
        expected = (
            cloud_parameters.get("ComplaintSuppressionScope", "~subscription")
            if suppression_topic == "complaint"
            else suppression_topic
        )
        # the feedback function writes the entry after the tracking item: wait for it
        found = poll(
            lambda: entries(cloud, address), FEEDBACK_TIMEOUT, INTERVAL, what=f"suppression entries of {address}"
        )
        assert [e["topic"] for e in found] == [expected], found

    # the status events (send machine and feedback function, any arrival order) form one
    # chain by sequence that ends in the final status
    events = status_events(status_capture, out["emailId"], lambda s: final in s)
    assert assert_status_chain(events)[-1] == final


def test_bounce_then_the_next_send_is_suppressed(cloud: Target, simulator_address: Callable[[str], str]) -> None:
    address = simulator_address("bounce")
    first = send(cloud, address)
    assert first["status"] == "sent", first
    wait_for_item(cloud, first["emailId"], lambda i: i["status"] == "bounced", "reaches bounced")
    poll(lambda: entries(cloud, address), FEEDBACK_TIMEOUT, INTERVAL, what=f"suppression entries of {address}")

    second = send(cloud, address)
    assert second["status"] == "suppressed", second
    assert second["messageId"] is None
