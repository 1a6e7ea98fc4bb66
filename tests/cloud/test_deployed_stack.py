"""Against a deployed stack: set SESFLOW_CLOUD_STACK (and AWS credentials) to run.

    SESFLOW_CLOUD_STACK=sesflow-dev AWS_REGION=eu-west-1 make test-cloud

Sends go to the SES mailbox simulator only. The fixtures (and why a test skips) are in
tests/cloud/conftest.py; the feedback loop, one-click unsubscribe and a staged campaign
have their own modules here.
"""

from __future__ import annotations

import pytest

from sesflow.cli.send import tracking_item
from sesflow.target import Target

from .conftest import SIMULATOR, send

pytestmark = pytest.mark.cloud


def test_send_to_the_mailbox_simulator(cloud: Target, run_id: str) -> None:
    result = send(cloud, f"success@{SIMULATOR}", email_id=f"cloud-{run_id}-smoke")
    assert result["status"] == "sent", result
    assert result["messageId"]
    item = tracking_item(cloud, result["emailId"])
    assert item is not None and item["recipient"] == f"success@{SIMULATOR}", item
