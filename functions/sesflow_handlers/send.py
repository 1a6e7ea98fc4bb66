"""SendEmail: minimal foundation handler (replaced by the send-machine issue)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import boto3

_sesv2 = boto3.client("sesv2")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    email_id = event.get("emailId") or str(uuid.uuid4())
    resp = _sesv2.send_email(
        FromEmailAddress=os.environ["DEFAULT_FROM_ADDRESS"],
        Destination={"ToAddresses": [event["to"]]},
        Content={
            "Simple": {
                "Subject": {"Data": event.get("subject", "Hello from sesflow")},
                "Body": {"Text": {"Data": event.get("text", "Hello.")}},
            }
        },
        ConfigurationSetName=os.environ["CONFIGURATION_SET"],
    )
    return {"emailId": email_id, "status": "sent", "messageId": resp["MessageId"]}
