"""Local SES v2: an outbox of ``.eml`` files, the maximum sending rate, event publishing,
scripted faults (``set_faults``) and the seeded fault plan's SES kinds (:mod:`.faults`).

Every message accepted by ``SendEmail`` is written, full MIME, to
``<state dir>/outbox/<n>-<MessageId>.eml`` with a ``.json`` beside it (configuration set,
tags, envelope). With a maximum sending rate set, a send that would take the last second
above that many recipients is refused with ``TooManyRequestsException`` /
"Maximum sending rate exceeded.", as SES does.

Event publishing and the mailbox simulator: after a send, SES events (Send, then Delivery,
Bounce, Complaint) are published to the configuration set's event destinations
(EventBridge bus or SNS topic), shaped as SES publishes them. Recipients at
``simulator.amazonses.com`` behave as in SES (labels such as ``bounce+x@`` too):
``success`` delivers, ``bounce`` bounces permanently, ``ooto`` delivers, ``complaint``
delivers then complains, ``suppressionlist`` bounces with ``OnAccountSuppressionList``.
Every other recipient is delivered.
"""

from __future__ import annotations

import base64
import email
import functools
import itertools
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections import deque
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.sesv2.responses import SESV2Response
from sesflow_core.feedback import DETAIL_TYPES

from . import faults

RECIPIENT_LIMIT = 50


class SesError(JsonRESTError):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(code, message)
        self.code = status


class _Settings:
    outbox: Path | None = None
    max_send_rate: float | None = None
    account_sending_enabled: bool = True


SETTINGS = _Settings()
_counter = itertools.count(1)
_rate_lock = threading.Lock()
_recent: deque[tuple[float, int]] = deque()


#: configuration set name -> its event destinations (CloudFormation EventDestination shape)
EVENT_DESTINATIONS: dict[str, list[dict[str, Any]]] = {}
SIMULATOR_DOMAIN = "simulator.amazonses.com"
MAX_MESSAGE_BYTES = 40 * 1024 * 1024
_EVENT_TYPES = {
    "send": "Send",
    "reject": "Reject",
    "bounce": "Bounce",
    "complaint": "Complaint",
    "delivery": "Delivery",
    "deliverydelay": "DeliveryDelay",
    "renderingfailure": "Rendering Failure",
    "open": "Open",
    "click": "Click",
}


def add_event_destination(config_set: str, destination: dict[str, Any]) -> None:
    EVENT_DESTINATIONS.setdefault(config_set, []).append(destination)


#: the MaxSendRate GetAccount reports when no limit is set (none is enforced then): what this
#: process keeps up with, so a campaign plans as few workers as on an AWS account of that rate
#: (5 workers x 4 senders; 1,000/s planned 21 x 4 senders, more than 2 cores run, and their
#: batches ran out of time and were sent again and again)
UNLIMITED_REPORTED_RATE = 200.0


def configure(outbox: Path, max_send_rate: float | None) -> None:
    outbox.mkdir(parents=True, exist_ok=True)
    SETTINGS.outbox = outbox
    SETTINGS.max_send_rate = max_send_rate
    existing = sorted(outbox.glob("*.eml"))
    global _counter
    _counter = itertools.count(len(existing) + 1)


def local_client(service: str, region: str = "us-east-1") -> Any:
    """A boto3 client for this very server (used by code running inside it); one per service,
    region and port (boto3 clients are thread-safe; making one costs milliseconds of CPU)."""
    return _local_client(service, region, os.environ["MOTO_PORT"])


@functools.lru_cache(maxsize=64)
def _local_client(service: str, region: str, port: str) -> Any:
    import boto3

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the local emulator accepts any key
    )


def queue_url_from_arn(arn: str) -> str:
    account, name = arn.split(":")[4:6]
    return f"http://127.0.0.1:{os.environ['MOTO_PORT']}/{account}/{name}"


def verify_identity(account_id: str, region: str, identity: str) -> None:
    from moto.ses.models import ses_backends

    backend = ses_backends[account_id][region]
    if "@" in identity:
        backend.verify_email_identity(identity)
    else:
        backend.verify_domain(identity)


#: scripted faults: the next SendEmail calls answer these errors, in order (tests, chaos)
FAULTS: deque[dict[str, Any]] = deque()
_faults_lock = threading.Lock()


def set_faults(faults: list[dict[str, Any]]) -> None:
    """Queue faults for the next SendEmail calls: ``{"code", "message", "status", "times"}``
    (``times`` consecutive calls each)."""
    with _faults_lock:
        for fault in faults:
            for _ in range(int(fault.get("times", 1))):
                FAULTS.append(
                    {
                        "code": fault["code"],
                        "message": fault.get("message", ""),
                        "status": int(fault.get("status", 400)),
                        "recipient": str(fault.get("recipient", "")).lower(),
                    }
                )


def clear_faults() -> int:
    with _faults_lock:
        n = len(FAULTS)
        FAULTS.clear()
        return n


def _next_fault(recipients: list[str]) -> None:
    """Raise the first queued fault that applies to this send (a fault with a ``recipient``
    applies only to sends to that address, so other traffic cannot consume it)."""
    wanted = {r.lower() for r in recipients}
    with _faults_lock:
        fault = next((f for f in FAULTS if not f["recipient"] or f["recipient"] in wanted), None)
        if fault is not None:
            FAULTS.remove(fault)
    if fault is not None:
        raise SesError(fault["code"], fault["message"], fault["status"])


def _throttle(recipients: int) -> None:
    rate = SETTINGS.max_send_rate
    if not rate:
        return
    with _rate_lock:
        now = time.monotonic()
        while _recent and now - _recent[0][0] >= 1.0:
            _recent.popleft()
        in_window = sum(n for _, n in _recent)
        if in_window + recipients > rate:
            raise SesError("TooManyRequestsException", "Maximum sending rate exceeded.", 429)
        _recent.append((now, recipients))


def _simple_to_mime(source: str, destination: dict[str, list[str]], simple: dict[str, Any]) -> bytes:
    msg = EmailMessage()
    msg["From"] = source
    if destination.get("ToAddresses"):
        msg["To"] = ", ".join(destination["ToAddresses"])
    if destination.get("CcAddresses"):
        msg["Cc"] = ", ".join(destination["CcAddresses"])
    msg["Subject"] = simple["Subject"]["Data"]
    body = simple.get("Body", {})
    if "Text" in body:
        msg.set_content(body["Text"]["Data"])
    if "Html" in body:
        if "Text" in body:
            msg.add_alternative(body["Html"]["Data"], subtype="html")
        else:
            msg.set_content(body["Html"]["Data"], subtype="html")
    return msg.as_bytes()


def _headers(raw: bytes) -> Any:
    """The message's headers (the compat32 parser: several times faster than the default
    policy's, and the local SES only reads header values). ``headersonly``: a multipart
    message's boundary is not compiled into a regular expression (a new one per message, each
    evicting another from ``re``'s cache)."""
    from email.parser import BytesParser

    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    return BytesParser().parsebytes(head + b"\r\n\r\n", headersonly=True)


def _write_outbox(message_id: str, raw: bytes, meta: dict[str, Any]) -> Path | None:
    """Write the message as received (no re-serialisation: that would refold headers),
    with the headers SES adds when they are absent."""
    if SETTINGS.outbox is None:
        return None
    parsed = _headers(raw)
    added = b""
    if "Date" not in parsed:
        added += f"Date: {formatdate(usegmt=True)}\r\n".encode()
    if "Message-ID" not in parsed:
        added += f"Message-ID: <{message_id}@email.amazonses.com>\r\n".encode()
    stem = f"{next(_counter):06d}-{message_id}"
    path = SETTINGS.outbox / f"{stem}.eml"
    path.write_bytes(added + raw)
    (SETTINGS.outbox / f"{stem}.json").write_text(json.dumps(meta, indent=2))
    return path


_ORIGINAL_SEND_EMAIL = SESV2Response.send_email


def _check_message(recipients: list[str], raw: bytes | None) -> None:
    """What SES refuses of any message: no recipient, more than 50, more than 40 MB (SES v2:
    attachments and their encoding included)."""
    if not recipients:
        raise SesError("BadRequestException", "Missing required header 'To'.")
    if len(recipients) > RECIPIENT_LIMIT:
        raise SesError("MessageRejected", "Recipient count exceeds 50.")
    if raw is not None and len(raw) > MAX_MESSAGE_BYTES:
        raise SesError("MessageRejected", f"Message length is more than {MAX_MESSAGE_BYTES} bytes long: {len(raw)}.")


def _send_email(self: SESV2Response) -> str:
    params = json.loads(self.body)
    destination = params.get("Destination", {})
    content = params.get("Content", {})
    recipients = [
        *destination.get("ToAddresses", []),
        *destination.get("CcAddresses", []),
        *destination.get("BccAddresses", []),
    ]
    raw: bytes | None = None
    if "Raw" in content:
        raw = base64.b64decode(content["Raw"]["Data"])
        if not recipients:
            parsed = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
            recipients = [a.addr_spec for h in ("To", "Cc") for a in (parsed[h].addresses if parsed[h] else ())]
    _next_fault(recipients)
    planned = faults.ses_send_email(recipients, params.get("EmailTags", []))
    if planned is not None and planned[0] != "sesAcceptThenFail":
        raise SesError(*planned[1:])
    _check_message(recipients, raw)

    from moto.ses.models import ses_backends

    if not SETTINGS.account_sending_enabled:
        raise SesError("SendingPausedException", "Sending is paused for this account.")
    backend = ses_backends[self.current_account][self.region]
    config_set = params.get("ConfigurationSetName")
    if config_set:
        cs = backend.config_sets.get(config_set)
        if cs is None:
            raise SesError("NotFoundException", f"Configuration set <{config_set}> does not exist.", 404)
        if cs.enabled.get("SendingEnabled") is False:
            raise SesError(
                "SendingPausedException",
                f"Sending is paused for this configuration set: {config_set}",
            )
    source = params.get("FromEmailAddress")
    if source is None and raw is not None:
        parsed = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        source = str(parsed["From"] or "")
    _, source_address = parseaddr(source or "")
    if not source_address or not backend._is_verified_address(source_address):
        raise SesError(
            "MessageRejected",
            "Email address is not verified. The following identities failed the check in "
            f"region {self.region.upper()}: {source_address or '(none)'}",
        )
    _throttle(len(recipients))

    if raw is None:
        response = _ORIGINAL_SEND_EMAIL(self)
        message_id = json.loads(response)["MessageId"]
        raw = _simple_to_mime(source or "", destination, content.get("Simple", {}))
    else:
        # raw messages are recorded here directly: moto's send_raw_email would parse the whole
        # MIME message again only to re-check what was checked above
        from moto.ses.models import RawMessage
        from moto.ses.utils import get_random_message_id

        message_id = get_random_message_id()
        backend.sent_message_count += len(recipients)
        backend.sent_messages.append(RawMessage(message_id, source, recipients, raw.decode("utf-8", "replace")))
        response = json.dumps({"MessageId": message_id})
    _write_outbox(
        message_id,
        raw,
        {
            "messageId": message_id,
            "timestamp": time.time(),
            "from": source,
            "destinations": recipients,
            "configurationSet": config_set,
            "tags": {t["Name"]: t["Value"] for t in params.get("EmailTags", [])},
        },
    )
    if config_set and EVENT_DESTINATIONS.get(config_set):
        _PUBLISHER.submit(
            _simulate(
                self.current_account,
                self.region,
                message_id,
                source or "",
                recipients,
                raw,
                config_set,
                params.get("EmailTags", []),
            ),
            self.current_account,
            self.region,
        )
    if planned is not None:  # accepted, then the answer is lost: the caller sees an error
        raise SesError(*planned[1:])
    return response


# ---------------------------------------------------------------- event publishing
def _mailbox_behaviour(address: str) -> str:
    local, _, domain = address.lower().rpartition("@")
    if domain != SIMULATOR_DOMAIN:
        return "success"
    return local.split("+", 1)[0]


def _engagements(address: str, raw: bytes, mail: dict[str, Any]) -> list[dict[str, Any]]:
    """Open and Click events for a simulator address whose label asks for them
    (``success+open@``, ``success+click@``, ``success+open-click@``), as SES publishes them
    when open/click tracking is on: :func:`_publish` drops them for a configuration set whose
    event destination does not match open/click (SES adds no pixel and rewrites no link then).
    A click takes the message's first http(s) link without ``ses:no-track``."""
    local, _, domain = address.lower().rpartition("@")
    if domain != SIMULATOR_DOMAIN or "+" not in local:
        return []
    wanted = set(local.split("+", 1)[1].split("-"))
    agent = "Mozilla/5.0 (sesflow local mailbox simulator)"
    out: list[dict[str, Any]] = []
    if "open" in wanted:
        out.append(
            {
                "eventType": "Open",
                "mail": mail,
                "open": {"ipAddress": "127.0.0.1", "timestamp": _now_iso(), "userAgent": agent},
            }
        )
    link = _first_tracked_link(raw) if "click" in wanted else None
    if link:
        out.append(
            {
                "eventType": "Click",
                "mail": mail,
                "click": {
                    "ipAddress": "127.0.0.1",
                    "timestamp": _now_iso(),
                    "userAgent": agent,
                    "link": link,
                    "linkTags": {},
                },
            }
        )
    return out


_LINK = re.compile(r"<a\b([^>]*)>", re.IGNORECASE)
_HREF = re.compile(r"""href\s*=\s*["']?(https?://[^"'\s>]+)""", re.IGNORECASE)


def _first_tracked_link(raw: bytes) -> str | None:
    message = email.message_from_bytes(raw)
    for part in message.walk():
        if part.get_content_type() != "text/html":
            continue
        html = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8", "replace")  # type: ignore[union-attr]
        for attrs in _LINK.findall(html):
            found = _HREF.search(attrs)
            if found and "ses:no-track" not in attrs.lower():
                return found.group(1)
    return None


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


def _simulate(
    account: str,
    region: str,
    message_id: str,
    source: str,
    recipients: list[str],
    raw: bytes,
    config_set: str,
    email_tags: list[dict[str, str]],
) -> list[tuple[float, str, dict[str, Any]]]:
    """(delay, config set, SES event) for each event SES would publish for this message."""
    parsed = _headers(raw)
    _, from_addr = parseaddr(source)
    tags: dict[str, list[str]] = {
        "ses:configuration-set": [config_set],
        "ses:source-ip": ["127.0.0.1"],
        "ses:from-domain": [from_addr.rpartition("@")[2]],
        "ses:caller-identity": ["sesflow-local"],
        "ses:outgoing-ip": ["127.0.0.1"],
    }
    for t in email_tags:
        tags[t["Name"]] = [t["Value"]]
    mail = {
        "timestamp": _now_iso(),
        "source": source,
        "sourceArn": f"arn:aws:ses:{region}:{account}:identity/{from_addr.rpartition('@')[2]}",
        "sendingAccountId": account,
        "messageId": message_id,
        "destination": recipients,
        "headersTruncated": False,
        "headers": [{"name": k, "value": str(v)} for k, v in parsed.items()],
        "commonHeaders": {
            "from": [str(parsed["From"] or source)],
            "to": [str(parsed["To"] or "")],
            "messageId": message_id,
            "subject": str(parsed["Subject"] or ""),
        },
        "tags": tags,
    }
    events: list[tuple[float, str, dict[str, Any]]] = [
        (0.0, config_set, {"eventType": "Send", "mail": mail, "send": {}})
    ]
    mta = "dsn; a8-70.smtp-out.amazonses.com"
    for rcpt in recipients:
        kind = _mailbox_behaviour(rcpt)
        ts = _now_iso()
        if kind in ("bounce", "suppressionlist"):
            on_list = kind == "suppressionlist"
            events.append(
                (
                    0.05,
                    config_set,
                    {
                        "eventType": "Bounce",
                        "mail": mail,
                        "bounce": {
                            "feedbackId": f"{message_id}-{uuid.uuid4().hex[:8]}-000000",
                            "bounceType": "Permanent",
                            "bounceSubType": "OnAccountSuppressionList" if on_list else "General",
                            "bouncedRecipients": [
                                {
                                    "emailAddress": rcpt,
                                    "action": "failed",
                                    "status": "5.1.1",
                                    "diagnosticCode": (
                                        "Amazon SES did not send the message to this address because it is on "
                                        "the suppression list for your account."
                                    )
                                    if on_list
                                    else "smtp; 550 5.1.1 user unknown",
                                }
                            ],
                            "timestamp": ts,
                            "reportingMTA": mta,
                        },
                    },
                )
            )
            continue
        events.append(
            (
                0.05,
                config_set,
                {
                    "eventType": "Delivery",
                    "mail": mail,
                    "delivery": {
                        "timestamp": ts,
                        "processingTimeMillis": 420,
                        "recipients": [rcpt],
                        "smtpResponse": "250 2.6.0 Message received",
                        "reportingMTA": "a8-70.smtp-out.amazonses.com",
                    },
                },
            )
        )
        for engagement in _engagements(rcpt, raw, mail):
            events.append((0.1, config_set, engagement))
        if kind == "complaint":
            events.append(
                (
                    0.15,
                    config_set,
                    {
                        "eventType": "Complaint",
                        "mail": mail,
                        "complaint": {
                            "feedbackId": f"{message_id}-{uuid.uuid4().hex[:8]}-000000",
                            "complaintSubType": None,
                            "complainedRecipients": [{"emailAddress": rcpt}],
                            "timestamp": _now_iso(),
                            "userAgent": "Amazon SES Mailbox Simulator",
                            "complaintFeedbackType": "abuse",
                            "arrivalDate": ts,
                        },
                    },
                )
            )
    return events


def _publish(account: str, region: str, config_set: str, event: dict[str, Any]) -> None:
    for dest in EVENT_DESTINATIONS.get(config_set, []):
        if str(dest.get("Enabled", True)).lower() == "false":
            continue
        types = {_EVENT_TYPES.get(str(t).replace("_", "").lower()) for t in dest.get("MatchingEventTypes", [])}
        if event["eventType"] not in types:
            continue
        if "EventBridgeDestination" in dest:
            from moto.events.models import events_backends

            bus_arn = dest["EventBridgeDestination"]["EventBusArn"]
            events_backends[account][region].put_events(
                [
                    {
                        "Source": "aws.ses",
                        "DetailType": DETAIL_TYPES.get(event["eventType"], "Email Event"),
                        "Detail": json.dumps(event),
                        "EventBusName": bus_arn,
                        "Resources": [f"arn:aws:ses:{region}:{account}:configuration-set/{config_set}"],
                    }
                ]
            )
        elif "SnsDestination" in dest:
            local_client("sns", region).publish(TopicArn=dest["SnsDestination"]["TopicARN"], Message=json.dumps(event))


class _Publisher:
    """Publishes simulated SES events in order, off the request thread (SES is async too).

    Each event is due a short time after its send; the publisher sleeps only until an event
    is due, so a burst of sends never piles up the delays."""

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[float, str, str, str, dict[str, Any]]] = queue.Queue()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """Events submitted and not yet published."""
        return self._queue.unfinished_tasks

    def submit(
        self, events: list[tuple[float, str, dict[str, Any]]], account: str = "123456789012", region: str = "us-east-1"
    ) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ses-events", daemon=True)
            self._thread.start()
        now = time.monotonic()
        for delay, config_set, event in events:
            self._queue.put((now + delay, account, region, config_set, event))

    def _run(self) -> None:
        while True:
            due, account, region, config_set, event = self._queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                _publish(account, region, config_set, event)
            except Exception:  # a lost local event must not stop the publisher
                logging.getLogger("sesflow.local").exception("publishing an SES event failed")
            finally:
                self._queue.task_done()


_PUBLISHER = _Publisher()


def _put_configuration_set_sending_options(self: SESV2Response) -> str:
    """SES v2 PutConfigurationSetSendingOptions (pause/resume one configuration set)."""
    from moto.ses.models import ses_backends

    name = self.path.split("/configuration-sets/", 1)[1].split("/", 1)[0]
    cs = ses_backends[self.current_account][self.region].config_sets.get(name)
    if cs is None:
        raise SesError("NotFoundException", f"Configuration set <{name}> does not exist.", 404)
    cs.enabled = {"SendingEnabled": bool(json.loads(self.body or "{}").get("SendingEnabled", False))}
    return "{}"


def _put_account_sending_attributes(self: SESV2Response) -> str:
    """SES v2 PutAccountSendingAttributes (pause/resume the whole account)."""
    SETTINGS.account_sending_enabled = bool(json.loads(self.body or "{}").get("SendingEnabled", False))
    return "{}"


def _get_account(self: SESV2Response) -> str:
    """SES v2 GetAccount: the send quota and the maximum sending rate of this local SES."""
    from moto.ses.models import ses_backends

    sent = ses_backends[self.current_account][self.region].sent_message_count
    return json.dumps(
        {
            "SendingEnabled": SETTINGS.account_sending_enabled,
            "ProductionAccessEnabled": True,
            "EnforcementStatus": "HEALTHY",
            "SendQuota": {
                "Max24HourSend": 1_000_000.0,
                "MaxSendRate": SETTINGS.max_send_rate or UNLIMITED_REPORTED_RATE,
                "SentLast24Hours": float(sent),
            },
        }
    )


def _get_configuration_set_event_destinations(self: SESV2Response) -> str:
    """SES v2 GetConfigurationSetEventDestinations, from the destinations the local stack made."""
    name = self.path.split("/configuration-sets/", 1)[1].split("/", 1)[0]
    destinations = []
    for dest in EVENT_DESTINATIONS.get(name, []):
        out: dict[str, Any] = {
            "Name": dest.get("Name", ""),
            "Enabled": str(dest.get("Enabled", True)).lower() != "false",
            "MatchingEventTypes": [
                _API_EVENT_TYPES.get(str(t).replace("_", "").lower(), str(t).upper())
                for t in dest.get("MatchingEventTypes", [])
            ],
        }
        if "EventBridgeDestination" in dest:
            out["EventBridgeDestination"] = {"EventBusArn": dest["EventBridgeDestination"]["EventBusArn"]}
        if "SnsDestination" in dest:
            out["SnsDestination"] = {"TopicArn": dest["SnsDestination"]["TopicARN"]}
        destinations.append(out)
    return json.dumps({"EventDestinations": destinations})


_API_EVENT_TYPES = {
    "send": "SEND",
    "reject": "REJECT",
    "bounce": "BOUNCE",
    "complaint": "COMPLAINT",
    "delivery": "DELIVERY",
    "deliverydelay": "DELIVERY_DELAY",
    "renderingfailure": "RENDERING_FAILURE",
    "open": "OPEN",
    "click": "CLICK",
    "subscription": "SUBSCRIPTION",
}


def _sending_options_as_sent() -> None:
    """moto nests the whole options dict in ``SendingOptions.SendingEnabled`` (botocore then
    reads every configuration set as paused): answer ``{"SendingEnabled": bool}`` as SES does."""
    from moto.ses.models import ConfigurationSet

    original = ConfigurationSet.to_dict_v2

    def to_dict_v2(self: ConfigurationSet) -> dict[str, Any]:
        doc: dict[str, Any] = original(self)
        enabled = self.enabled.get("SendingEnabled", True) if isinstance(self.enabled, dict) else self.enabled
        doc["SendingOptions"] = {"SendingEnabled": str(enabled).lower() != "false"}
        return doc

    ConfigurationSet.to_dict_v2 = to_dict_v2  # type: ignore[method-assign]


def install() -> None:
    from moto.sesv2 import urls

    # server mode routes only listed paths: add the operations implemented here
    for path in (
        "{0}/v2/email/account$",
        "{0}/v2/email/account/sending$",
        "{0}/v2/email/configuration-sets/(?P<ConfigurationSetName>[^/]+)/sending$",
        "{0}/v2/email/configuration-sets/(?P<ConfigurationSetName>[^/]+)/event-destinations$",
    ):
        urls.url_paths.setdefault(path, SESV2Response.dispatch)
    SESV2Response.get_configuration_set_event_destinations = (  # type: ignore[attr-defined]
        _get_configuration_set_event_destinations
    )
    _sending_options_as_sent()
    SESV2Response.send_email = _send_email  # type: ignore[method-assign]
    SESV2Response.put_configuration_set_sending_options = _put_configuration_set_sending_options  # type: ignore[attr-defined]
    SESV2Response.put_account_sending_attributes = _put_account_sending_attributes  # type: ignore[attr-defined]
    SESV2Response.get_account = _get_account  # type: ignore[attr-defined]


def outbox_entries(outbox: Path, last: int | None = None) -> list[dict[str, Any]]:
    """The outbox, oldest first: metadata plus the path of each ``.eml``."""
    entries = []
    for meta_path in sorted(outbox.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        eml = meta_path.with_suffix(".eml")
        parsed = BytesParser(policy=policy.default).parsebytes(eml.read_bytes(), headersonly=True)
        meta["subject"] = str(parsed["Subject"] or "")
        meta["path"] = str(eml)
        entries.append(meta)
    return entries[-last:] if last else entries
