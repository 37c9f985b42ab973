"""CoAP ingestion (RFC 7252) with aiocoap: thin resources over the shared pipeline.

Security (PROTOCOL.md, CoAP): OSCORE (RFC 8613) with per-device keys. aiocoap's
OscoreSiteWrapper unprotects a request with the context its kid names and hands it on
with `request.remote.authenticated_claims` naming the device; FamilyResource then checks
that the device posts only under its own path. Plain CoAP is refused with 4.01 unless the
configuration allows it (development).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import aiocoap
import aiocoap.defaults
import aiocoap.resource as resource
from aiocoap import error
from aiocoap import oscore as cose
from aiocoap.numbers.codes import Code
from aiocoap.oscore_sitewrapper import OscoreSiteWrapper
from aiocoap.util.linkformat import Link, LinkFormat

from core.errors import Refused, StoreUnavailable
from core.ingest.model import LEAF, RawMessage
from core.ingest.oscore import OscoreKeys
from core.ingest.pipeline import Pipeline
from core.metrics import Metrics
from core.senml import COAP_FORMATS

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30  # Max-Age on 5.03: the spool normally answers; this is a full queue
_REFUSED_CODES = {
    "unknown_device": Code.FORBIDDEN,
    "wrong_topic": Code.FORBIDDEN,
    "unsupported_format": Code.UNSUPPORTED_CONTENT_FORMAT,
    "unauthenticated": Code.UNAUTHORIZED,
    "wrong_device": Code.FORBIDDEN,
}


class FamilyResource(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    """`POST /meters/<device_id>/readings` and `POST /bins/<device_id>/events`."""

    def __init__(
        self,
        family: str,
        pipeline: Pipeline,
        metrics: Metrics,
        oscore: OscoreKeys | None = None,
        allow_plain: bool = False,
    ) -> None:
        super().__init__()
        self._family = family
        self._pipeline = pipeline
        self._metrics = metrics
        self._oscore = oscore
        self._allow_plain = allow_plain

    async def render_post(self, request: Any) -> aiocoap.Message:
        received_at = time.time()
        try:
            device = self._authenticated(request)
            msg = self._message(request, received_at)
            if device is not None and device != msg.device_id:
                self._count("wrong_device")
                raise Refused("wrong_device", f"keys of {device} cannot post for {msg.device_id}")
            await self._pipeline.handle(msg)
        except Refused as err:
            code = _REFUSED_CODES.get(err.reason, Code.BAD_REQUEST)
            return aiocoap.Message(code=code, payload=err.diagnostic.encode())
        except StoreUnavailable:
            self._metrics.unavailable.labels("coap").inc()
            return aiocoap.Message(
                code=Code.SERVICE_UNAVAILABLE, max_age=RETRY_AFTER_S, payload=b"cannot store now"
            )
        return aiocoap.Message(code=Code.CHANGED)

    def _authenticated(self, request: Any) -> str | None:
        """The device whose OSCORE context protected the request; refuses plain CoAP."""
        device = None if self._oscore is None else self._oscore.device_of(request.remote)
        if device is None and not self._allow_plain:
            self._count("unauthenticated")
            raise Refused("unauthenticated", "OSCORE required")
        return device

    def _message(self, request: Any, received_at: float) -> RawMessage:
        path = request.opt.uri_path
        if len(path) != 2 or path[1] != LEAF[self._family]:
            self._count("bad_path")
            raise Refused("bad_path", f"use POST /{self._family}/<device_id>/{LEAF[self._family]}")
        cf = request.opt.content_format
        fmt = None if cf is None else COAP_FORMATS.get(int(cf))
        if cf is not None and fmt is None:
            self._count("unsupported_format")
            raise Refused("unsupported_format", "use Content-Format 110 (senml+json) or 112 (cbor)")
        return RawMessage("coap", self._family, path[0], request.payload, fmt, received_at)

    def _count(self, reason: str) -> None:
        # Refusals before the pipeline are still counted as received and refused.
        self._metrics.received.labels("coap").inc()
        self._metrics.refused.labels("coap", reason).inc()

    def get_link_description(self) -> dict[str, str]:
        return {"rt": f"foyer.{self._family}", "ct": "110 112"}

    def get_resources_as_linkheader(self) -> LinkFormat:
        # Site lists a PathCapable resource as a subsite, through this method only.
        return LinkFormat([Link("", **self.get_link_description())])


class CountingOscoreSite(OscoreSiteWrapper):  # type: ignore[misc]
    """aiocoap's OSCORE wrapper, counting the requests it refuses before any resource runs.

    aiocoap answers these itself: no context for the kid -> 4.01 "Security context not
    found" (raised), a sequence number already seen -> 4.01 "Replay detected" (RFC 8613
    §7.4, added to the pipe), undecryptable -> 4.00 / 4.02 (raised). A NON request that
    fails is dropped silently by aiocoap and so is not counted.
    """

    def __init__(self, inner_site: Any, server_credentials: Any, metrics: Metrics) -> None:
        super().__init__(inner_site, server_credentials)
        self._metrics = metrics

    async def render_to_pipe(self, pipe: Any) -> None:
        try:
            cose.verify_start(pipe.request)
        except cose.NotAProtectedMessage:
            await super().render_to_pipe(pipe)  # plain: FamilyResource decides
            return
        try:
            await super().render_to_pipe(_ReplayCountingPipe(pipe, self._count))
        except cose.ReplayErrorWithEcho:
            raise  # B.1.2 recovery after an unclean restart: the client retries with Echo
        except error.Unauthorized:
            self._count("unknown_key")
            raise
        except error.RenderableError:
            self._count("bad_oscore")
            raise

    def _count(self, reason: str) -> None:
        self._metrics.received.labels("coap").inc()
        self._metrics.refused.labels("coap", reason).inc()


class _ReplayCountingPipe:
    """The wrapper's pipe, seen through: counts the 4.01 aiocoap sends for a replay."""

    def __init__(self, pipe: Any, count: Any) -> None:
        self._pipe = pipe
        self._count = count
        self.request = pipe.request

    def add_response(self, response: Any, is_last: bool = False) -> None:
        if response.code == Code.UNAUTHORIZED and response.payload == b"Replay detected":
            self._count("replay")
        self._pipe.add_response(response, is_last=is_last)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)


def build_site(
    pipeline: Pipeline,
    metrics: Metrics,
    *,
    oscore: OscoreKeys | None = None,
    allow_plain: bool = False,
) -> Any:
    site = resource.Site()
    # Discovery stays open (RFC 6690): it reveals only the two resource families.
    site.add_resource(
        [".well-known", "core"], resource.WKCResource(site.get_resources_as_linkheader)
    )
    for family in LEAF:
        site.add_resource([family], FamilyResource(family, pipeline, metrics, oscore, allow_plain))
    if oscore is None:
        return site
    return CountingOscoreSite(site, oscore.server_credentials(), metrics)


async def start_server(
    pipeline: Pipeline,
    metrics: Metrics,
    host: str,
    port: int,
    *,
    oscore: OscoreKeys | None = None,
    allow_plain: bool = False,
    dtls: bool = False,
) -> Any:
    """CoAP over UDP; OSCORE-protected when `oscore` is given, plain only if allowed.

    With `dtls`, coaps:// (DTLS-PSK, each device's key from `oscore`) is served too, on
    `port + 1`: aiocoap's tinydtls server offsets its port from the CoAP one, as 5684
    is from 5683 (RFC 7252 §12.7).
    """
    if oscore is None and not allow_plain:
        log.warning("CoAP: no OSCORE keys and plain CoAP not allowed: every POST gets 4.01")
    site = build_site(pipeline, metrics, oscore=oscore, allow_plain=allow_plain)
    transports = ["udp6"]
    credentials = None
    if dtls:
        if oscore is None:
            raise ValueError("DTLS needs the device keys (oscore=OscoreKeys(...))")
        missing = aiocoap.defaults.dtls_missing_modules()
        if missing:
            raise RuntimeError(f"DTLS needs the Python package(s) {', '.join(missing)}")
        transports.append("tinydtls_server")
        credentials = oscore.server_credentials()
    return await aiocoap.Context.create_server_context(
        site, bind=(host, port), transports=transports, server_credentials=credentials
    )
