"""SMS channels: Twilio for real, an outbox file when there are no credentials.

Phone numbers are personal data: they are never logged in clear (``mask``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

from twilio.rest import Client

log = logging.getLogger(__name__)

STATUS_CALLBACK_PATH: Final = "/webhooks/twilio/status"
INBOUND_PATH: Final = "/webhooks/twilio/sms"


@dataclass(frozen=True)
class SmsSettings:
    """FOYER_TWILIO_ACCOUNT_SID, FOYER_TWILIO_AUTH_TOKEN, FOYER_TWILIO_FROM,
    FOYER_TWILIO_API_URL (tests: a local stand-in), FOYER_PUBLIC_URL (what Twilio calls
    back, and the URL the webhook signatures are computed over)."""

    account_sid: str = ""
    auth_token: str = ""
    from_number: str = ""
    api_base_url: str = ""  # empty: Twilio's own https://api.twilio.com
    public_base_url: str = ""  # e.g. https://foyer.example.org (no trailing slash)

    @property
    def configured(self) -> bool:
        return bool(self.account_sid and self.auth_token and self.from_number)

    def status_callback(self) -> str | None:
        """Where Twilio posts delivery updates; None without a public URL."""
        base = self.public_base_url.rstrip("/")
        return f"{base}{STATUS_CALLBACK_PATH}" if base else None


def mask(phone: str) -> str:
    """+33612345678 -> +33******78: enough to tell contacts apart in a log, no more."""
    if len(phone) < 8:
        return "******"  # not a phone number: show nothing of it
    # A fixed run of stars: the length of a number says where it is from.
    return phone[:3] + "******" + phone[-2:]


class SmsChannel(Protocol):
    async def send(self, to: str, body: str, status_callback: str | None) -> str:
        """Hand the SMS to the provider; return its id (delivery comes by callback)."""


class TwilioChannel:
    """The real twilio library; its blocking HTTP call runs off the event loop."""

    def __init__(self, settings: SmsSettings) -> None:
        self._from = settings.from_number
        self._client = Client(settings.account_sid, settings.auth_token)
        if settings.api_base_url:
            # Domain.base_url is the library's public per-domain root (twilio-python
            # 9, twilio/base/domain.py); pointing it elsewhere keeps every request
            # path, auth and form encoding exactly as Twilio's API expects them.
            self._client.api.base_url = settings.api_base_url.rstrip("/")

    async def send(self, to: str, body: str, status_callback: str | None) -> str:
        message = await asyncio.to_thread(self._create, to, body, status_callback)
        log.info("sms %s handed to twilio for %s", message, mask(to))
        return message

    def _create(self, to: str, body: str, status_callback: str | None) -> str:
        kwargs: dict[str, str] = {"to": to, "body": body}
        if self._from.startswith("MG"):  # a Messaging Service SID picks the sender itself
            kwargs["messaging_service_sid"] = self._from
        else:
            kwargs["from_"] = self._from
        if status_callback:
            kwargs["status_callback"] = status_callback
        sid: str = self._client.messages.create(**kwargs).sid
        return sid


class OutboxChannel:
    """No credentials: append each SMS to a JSONL file so the demo works offline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    async def send(self, to: str, body: str, status_callback: str | None) -> str:
        sid = f"OUTBOX{datetime.now(UTC):%Y%m%d%H%M%S}{next(self._ids):06d}"
        line = json.dumps(
            {"sid": sid, "to": to, "body": body, "at": datetime.now(UTC).isoformat()},
            ensure_ascii=False,
        )
        await asyncio.to_thread(self._append, line)
        log.info("sms %s written to the outbox for %s", sid, mask(to))
        return sid

    def _append(self, line: str) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(line + "\n")


def build_channel(settings: SmsSettings, data_dir: Path) -> SmsChannel:
    """Twilio when configured, else the outbox at ``data_dir/sms-outbox.jsonl``."""
    if settings.configured:
        return TwilioChannel(settings)
    log.warning("no Twilio credentials: SMS go to %s", data_dir / "sms-outbox.jsonl")
    return OutboxChannel(data_dir / "sms-outbox.jsonl")
