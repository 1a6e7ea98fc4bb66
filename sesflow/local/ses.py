"""Local SES v2: an outbox of ``.eml`` files and the account's maximum sending rate.

Every message accepted by ``SendEmail`` is written, full MIME, to
``<state dir>/outbox/<n>-<MessageId>.eml`` with a ``.json`` beside it (configuration set,
tags, envelope). With a maximum sending rate set, a send that would take the last second
above that many recipients is refused with ``TooManyRequestsException`` /
"Maximum sending rate exceeded.", as SES does.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import threading
import time
from collections import deque
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate, parseaddr
from pathlib import Path
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.sesv2.responses import SESV2Response

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


def configure(outbox: Path, max_send_rate: float | None) -> None:
    outbox.mkdir(parents=True, exist_ok=True)
    SETTINGS.outbox = outbox
    SETTINGS.max_send_rate = max_send_rate
    existing = sorted(outbox.glob("*.eml"))
    global _counter
    _counter = itertools.count(len(existing) + 1)


def local_client(service: str, region: str = "us-east-1") -> Any:
    """A boto3 client for this very server (used by code running inside it)."""
    import boto3

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=f"http://127.0.0.1:{os.environ['MOTO_PORT']}",
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


def _write_outbox(message_id: str, raw: bytes, meta: dict[str, Any]) -> Path | None:
    if SETTINGS.outbox is None:
        return None
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    if "Message-ID" not in parsed:
        parsed["Message-ID"] = f"<{message_id}@email.amazonses.com>"
    if "Date" not in parsed:
        parsed["Date"] = formatdate(localtime=False)
    stem = f"{next(_counter):06d}-{message_id}"
    path = SETTINGS.outbox / f"{stem}.eml"
    path.write_bytes(parsed.as_bytes(policy=policy.SMTP))
    (SETTINGS.outbox / f"{stem}.json").write_text(json.dumps(meta, indent=2))
    return path


_ORIGINAL_SEND_EMAIL = SESV2Response.send_email


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
    if not recipients:
        raise SesError("BadRequestException", "Missing required header 'To'.")
    if len(recipients) > RECIPIENT_LIMIT:
        raise SesError("MessageRejected", "Recipient count exceeds 50.")

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

    response = _ORIGINAL_SEND_EMAIL(self)
    message_id = json.loads(response)["MessageId"]
    if raw is None:
        raw = _simple_to_mime(source or "", destination, content.get("Simple", {}))
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
    return response


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
    return json.dumps({
        "SendingEnabled": SETTINGS.account_sending_enabled,
        "ProductionAccessEnabled": True,
        "EnforcementStatus": "HEALTHY",
        "SendQuota": {"Max24HourSend": 1_000_000.0, "MaxSendRate": SETTINGS.max_send_rate or 1000.0,
                      "SentLast24Hours": float(sent)},
    })


def install() -> None:
    from moto.sesv2 import urls

    # server mode routes only listed paths: add the operations implemented here
    for path in ("{0}/v2/email/account$", "{0}/v2/email/account/sending$",
                 "{0}/v2/email/configuration-sets/(?P<ConfigurationSetName>[^/]+)/sending$"):
        urls.url_paths.setdefault(path, SESV2Response.dispatch)
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
