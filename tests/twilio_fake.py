"""A local stand-in for Twilio's REST API and webhooks, for the real twilio library.

It answers ``POST /2010-04-01/Accounts/{sid}/Messages.json`` as Twilio does (basic
auth with the account SID and auth token, form-encoded parameters, a JSON message
resource with a fresh ``SM...`` sid and status ``queued``), records each request,
and can then call Foyer back the way Twilio does: delivery updates to the
message's StatusCallback and inbound SMS to the messaging webhook, both signed with
the real ``RequestValidator.compute_signature``.
"""

from __future__ import annotations

import base64
import itertools
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 32  # a test token, not a secret
FROM = "+33700000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class SentMessage:
    sid: str
    to: str
    from_: str
    body: str
    status_callback: str | None


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    refuse_numbers: set[str] = field(default_factory=set)  # answered like an invalid 'To'
    sent: list[SentMessage] = field(default_factory=list)
    unauthorised: int = 0
    url: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        return app

    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorised(request) or request.match_info["sid"] != self.account_sid:
            self.unauthorised += 1
            return _error(401, 20003, "Authenticate")
        form = await request.post()
        to, from_, body = str(form.get("To", "")), str(form.get("From", "")), str(form["Body"])
        if to in self.refuse_numbers:
            return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        sid = f"SM{next(self._ids):032x}"
        callback = form.get("StatusCallback")
        self.sent.append(SentMessage(sid, to, from_, body, str(callback) if callback else None))
        now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
        return web.json_response(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": to,
                "from": from_,
                "body": body,
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": "1",
                "date_created": now,
                "date_updated": now,
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
            status=201,
        )

    def to(self, phone: str) -> list[SentMessage]:
        return [m for m in self.sent if m.to == phone]

    def signature(self, url: str, params: dict[str, str], token: str | None = None) -> str:
        validator = RequestValidator(token or self.auth_token)
        signed: str = validator.compute_signature(url, params)
        return signed

    async def post_signed(
        self,
        url: str,
        params: dict[str, str],
        *,
        signature: str | None = "auto",
        token: str | None = None,
    ) -> tuple[int, str]:
        """POST a form as Twilio does; ``signature`` None sends none, "auto" signs it."""
        headers = {}
        if signature == "auto":
            headers["X-Twilio-Signature"] = self.signature(url, params, token)
        elif signature is not None:
            headers["X-Twilio-Signature"] = signature
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=params, headers=headers) as response,
        ):
            return response.status, await response.text()

    async def deliver(self, message: SentMessage, status: str) -> tuple[int, str]:
        """A delivery update to the message's StatusCallback, as Twilio sends it."""
        assert message.status_callback, "the message was sent without a StatusCallback"
        params = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": self.account_sid,
            "To": message.to,
            "From": message.from_,
            "ApiVersion": "2010-04-01",
        }
        return await self.post_signed(message.status_callback, params)

    async def reply(self, webhook_url: str, from_: str, body: str, **kw: Any) -> tuple[int, str]:
        """An inbound SMS from ``from_`` to Foyer's number, posted to the messaging webhook."""
        params = {
            "MessageSid": f"SM{next(self._ids):032x}",
            "AccountSid": self.account_sid,
            "From": from_,
            "To": FROM,
            "Body": body,
            "NumMedia": "0",
            "ApiVersion": "2010-04-01",
        }
        return await self.post_signed(webhook_url, params, **kw)


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


@asynccontextmanager
async def running_fake(fake: FakeTwilio | None = None) -> AsyncIterator[FakeTwilio]:
    fake = fake or FakeTwilio()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()
