"""Error names shared by Python and the state machines.

Each class name is an error name that ``statemachines/*.asl.json`` retries or catches by
that exact name (Lambda reports ``errorType`` = the class name). See docs/architecture.md.
"""

from __future__ import annotations


class SesflowError(Exception):
    """Base class; never raised itself."""


class InvalidEmailRequest(SesflowError):
    """The request breaks the contract (bad address, CR/LF in a header field, too large...)."""


class TemplateNotFound(SesflowError):
    """No such template in the templates bucket (or a part of it is missing)."""


class TemplateRenderError(SesflowError):
    """The template failed to render (missing variable, sandbox violation, bad output)."""


class SesThrottled(SesflowError):
    """SES refused for rate: retry with backoff and full jitter, then wait and retry."""


class SesDailyQuotaExceeded(SesflowError):
    """The 24-hour sending quota is used up: wait long, then retry."""


class SesSendingPaused(SesflowError):
    """Sending is paused for the account or configuration set, or the account is suspended."""


class SesMessageRejected(SesflowError):
    """SES permanently refused this message; retrying cannot help."""


class SesConfigurationError(SesflowError):
    """The stack or account is set up so that SES cannot send (IAM denies ses:SendEmail,
    e.g. a sandbox account without ``SesSandbox=true``; an unverified identity or recipient;
    a missing configuration set). Not the message's fault: fix the set-up and resend."""


class SesTransientError(SesflowError):
    """SES did not take the request (a 503, a connection that never reached it): safe to retry."""


class SesOutcomeUnknown(SesflowError):
    """The request reached SES but no answer came back (a read timeout, a dropped connection) or
    SES answered with an internal error (500, 502, 504): SES may have sent the message. At most
    once: it is not sent again (ADR 0002), the email is failed with the reason."""


class SendInProgress(SesflowError):
    """Another execution holds the send ledger for this emailId; retried until it finishes."""


class EmailCancelled(SesflowError):
    """The email was cancelled before its scheduled send (``sesflow cancel``): the send ledger
    is closed, nothing is sent, the status stays ``cancelled``."""


class InvalidCampaign(InvalidEmailRequest):
    """The campaign request itself is unusable (not one of its rows)."""


class CampaignRejected(SesflowError):
    """An operator rejected the campaign at an approval gate (SendTaskFailure error name)."""


class CampaignWorkerCrashed(SesflowError):
    """Fault injection (FAULT_CRASH_AFTER_SENDS): a batch worker dies mid-batch."""


class InvalidSequence(InvalidEmailRequest):
    """A drip sequence definition or enrollment that cannot be used; the message says why."""


class InvalidWebhook(SesflowError):
    """A webhook subscription that cannot be used (URL, events, unknown id); the message says why."""


class CampaignWoken(SesflowError):
    """A campaign about to wait (window, daily cap, start time, pause) whose control word changed
    since it decided to: it does not wait, it decides again (``WaitForWindow``'s Catch)."""


class AwsThrottled(SesflowError):
    """An AWS service (DynamoDB, S3...) throttled or failed a call past the SDK's own retries;
    the campaign machine's steps retry it with a longer backoff."""


ASL_ERROR_NAMES = tuple(
    cls.__name__
    for cls in (
        InvalidEmailRequest,
        TemplateNotFound,
        TemplateRenderError,
        SesThrottled,
        SesDailyQuotaExceeded,
        SesSendingPaused,
        SesMessageRejected,
        SesConfigurationError,
        SesTransientError,
        SesOutcomeUnknown,
        SendInProgress,
        EmailCancelled,
        InvalidCampaign,
        CampaignRejected,
        CampaignWorkerCrashed,
        CampaignWoken,
        InvalidSequence,
        AwsThrottled,
    )
)
