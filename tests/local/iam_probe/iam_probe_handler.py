"""A function the local IAM tests deploy with a role of the stack (tests/local/test_local_iam.py):
it reports who it runs as and makes the DynamoDB write it is asked for, with the handlers'
own clients (``sesflow_handlers._common.client``)."""

from __future__ import annotations

from typing import Any

from sesflow_handlers._common import client


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    identity: str = client("sts").get_caller_identity()["Arn"]
    if event.get("table"):
        client("dynamodb").update_item(
            TableName=event["table"],
            Key=event["key"],
            UpdateExpression="SET probedBy = :who",
            ExpressionAttributeValues={":who": {"S": identity}},
        )
    return {"identity": identity}
