"""The SES adapter tells "not sent" from "maybe sent" (ADR 0002)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError
from sesflow_aws import ses
from sesflow_core import errors


class FakeSes:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def send_email(self, **_: Any) -> dict[str, str]:
        raise self.exc


def send(exc: Exception) -> None:
    ses.send_raw(
        FakeSes(exc), from_address="a@example.com", to="b@example.org", raw=b"x", tags=[], configuration_set="cs"
    )


def test_a_read_timeout_is_an_unknown_outcome_never_resent() -> None:
    with pytest.raises(errors.SesOutcomeUnknown):
        send(ReadTimeoutError(endpoint_url="https://email.us-east-1.amazonaws.com"))


def test_a_connection_closed_after_the_request_is_an_unknown_outcome() -> None:
    with pytest.raises(errors.SesOutcomeUnknown):
        send(ConnectionClosedError(endpoint_url="https://email.us-east-1.amazonaws.com"))


def test_a_connection_error_is_transient_the_request_never_reached_ses() -> None:
    with pytest.raises(errors.SesTransientError):
        send(EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com"))


def test_an_ses_error_is_classified_by_name() -> None:
    err = ClientError(
        {
            "Error": {"Code": "TooManyRequestsException", "Message": "Maximum sending rate exceeded."},
            "ResponseMetadata": {"HTTPStatusCode": 429},
        },
        "SendEmail",
    )
    with pytest.raises(errors.SesThrottled):
        send(err)
