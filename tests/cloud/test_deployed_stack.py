"""Against a deployed stack: set SESFLOW_CLOUD_STACK (and AWS credentials) to run.

    SESFLOW_CLOUD_STACK=sesflow-dev AWS_REGION=eu-west-1 .venv/bin/pytest tests/cloud

Sends go to the SES mailbox simulator only.
"""

from __future__ import annotations

import os
import uuid

import pytest

from sesflow.client import send_email
from sesflow.target import stack_target

pytestmark = pytest.mark.cloud

STACK = os.environ.get("SESFLOW_CLOUD_STACK")


def _credentials() -> bool:
    try:
        import boto3

        return boto3.session.Session().get_credentials() is not None
    except Exception:  # any failure means: no usable credentials
        return False


if not STACK or not _credentials():
    pytest.skip("no deployed stack (SESFLOW_CLOUD_STACK) or no AWS credentials", allow_module_level=True)


def test_send_to_the_mailbox_simulator() -> None:
    target = stack_target(STACK or "", os.environ.get("AWS_REGION"))
    result = send_email("welcome", "success@simulator.amazonses.com",
                        data={"name": "Cloud test", "product": "sesflow"}, email_id=f"cloud-{uuid.uuid4().hex}",
                        state_machine_arn=target.outputs["SendStateMachineArn"],
                        sfn_client=target.clients.client("stepfunctions"))
    assert result["status"] == "sent", result
