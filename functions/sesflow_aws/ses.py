"""SES v2 SendEmail of a raw MIME message, its errors classified by name (ses_errors)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError
from sesflow_core import ses_errors
from sesflow_core.errors import SesOutcomeUnknown, SesTransientError


def send_raw(
    sesv2: Any,
    *,
    from_address: str,
    to: str,
    raw: bytes,
    tags: list[dict[str, str]],
    configuration_set: str,
    reply_to: str | None = None,
) -> str:
    """Send; return the SES MessageId or raise the classified sesflow error."""
    kwargs: dict[str, Any] = {
        "FromEmailAddress": from_address,
        "Destination": {"ToAddresses": [to]},
        "Content": {"Raw": {"Data": raw}},
        "EmailTags": tags,
        "ConfigurationSetName": configuration_set,
    }
    if reply_to:
        kwargs["ReplyToAddresses"] = [reply_to]
    try:
        resp = sesv2.send_email(**kwargs)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise ses_errors.to_exception(err.get("Code", ""), err.get("Message", ""), status) from None
    except (ConnectTimeoutError, EndpointConnectionError) as exc:  # the request never reached SES
        raise SesTransientError(f"{type(exc).__name__}: {exc}") from None
    except BotoCoreError as exc:  # read timeout, connection closed: SES may have accepted it
        raise SesOutcomeUnknown(f"{type(exc).__name__}: {exc}") from None
    message_id: str = resp["MessageId"]
    return message_id


def account_max_send_rate(sesv2: Any) -> float:
    return float(sesv2.get_account()["SendQuota"]["MaxSendRate"])
