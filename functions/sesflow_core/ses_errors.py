"""Classify an SES (v2) error into the error names the send machine retries or catches.

Real codes and messages (SES API reference, "Common errors" and SendEmail errors):

====================================  ==========================  ======================
code                                  message                     error name
====================================  ==========================  ======================
TooManyRequestsException (429)        Maximum sending rate        SesThrottled
                                      exceeded.
Throttling / ThrottlingException      Rate exceeded               SesThrottled
LimitExceededException                Daily message quota         SesDailyQuotaExceeded
                                      exceeded.
LimitExceededException                (other limits)              SesThrottled
SendingPausedException                                            SesSendingPaused
AccountSuspendedException                                         SesSendingPaused
AccessDeniedException / AccessDenied  (IAM: sandbox recipients    SesConfigurationError
                                      are authorised too)
MessageRejected                       Email address is not        SesConfigurationError
                                      verified. (sender, or a
                                      sandbox recipient)
MailFromDomainNotVerifiedException                                SesConfigurationError
NotFoundException (config set, ...)                               SesConfigurationError
MessageRejected                       (other)                     SesMessageRejected
BadRequestException                                               SesMessageRejected
ServiceUnavailable (503)                                          SesTransientError
InternalFailure, InternalServerError,                             SesOutcomeUnknown
RequestTimeout, any other 5xx
====================================  ==========================  ======================

SendEmail is not idempotent: an internal error or a timeout on SES's side can come after SES
accepted the message (the fault suite's "accept then fail"), so such an answer is an unknown
outcome and the email is not sent again (at most once, ADR 0002). Only a 503 says the service
did not take the request, and a connection error (ses.py) that it never got there: those
are retried.
"""

from __future__ import annotations

from .errors import (
    SesConfigurationError,
    SesDailyQuotaExceeded,
    SesflowError,
    SesMessageRejected,
    SesOutcomeUnknown,
    SesSendingPaused,
    SesThrottled,
    SesTransientError,
)

_THROTTLE_CODES = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException", "RequestLimitExceeded"})
_PAUSED_CODES = frozenset({"SendingPausedException", "AccountSuspendedException"})
_CONFIGURATION_CODES = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
        "ConfigurationSetDoesNotExistException",
    }
)
_REJECTED_CODES = frozenset({"MessageRejected", "BadRequestException", "InvalidParameterValue"})
_TRANSIENT_CODES = frozenset({"ServiceUnavailable", "ServiceUnavailableException"})
_UNKNOWN_OUTCOME_CODES = frozenset({"InternalFailure", "InternalServerError", "RequestTimeout"})


def classify(code: str, message: str = "", http_status: int | None = None) -> type[SesflowError]:
    """The error class for an SES error code/message/status."""
    msg = (message or "").lower()
    if "daily message quota exceeded" in msg:
        return SesDailyQuotaExceeded
    if code in _THROTTLE_CODES or "maximum sending rate exceeded" in msg or http_status == 429:
        return SesThrottled
    if code == "LimitExceededException":
        return SesThrottled
    if code in _PAUSED_CODES:
        return SesSendingPaused
    if code in _CONFIGURATION_CODES or "address is not verified" in msg:
        return SesConfigurationError
    if code in _REJECTED_CODES:
        return SesMessageRejected
    if code in _TRANSIENT_CODES or http_status == 503:
        return SesTransientError
    if code in _UNKNOWN_OUTCOME_CODES or (http_status is not None and http_status >= 500):
        return SesOutcomeUnknown
    return SesMessageRejected


SANDBOX_HINT = "; if the account is in the SES sandbox, deploy with SesSandbox=true and send only to verified addresses"


def to_exception(code: str, message: str = "", http_status: int | None = None) -> SesflowError:
    cls = classify(code, message, http_status)
    text = f"{code}: {message}" if message else code
    if cls is SesConfigurationError and (code.startswith("AccessDenied") or "not verified" in message.lower()):
        text += SANDBOX_HINT
    return cls(text)


RETRYABLE = (SesThrottled, SesDailyQuotaExceeded, SesTransientError, SesSendingPaused)
