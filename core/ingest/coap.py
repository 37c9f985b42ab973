"""CoAP ingestion (RFC 7252) with aiocoap: thin resources over the shared pipeline."""

from __future__ import annotations

import logging
import time
from typing import Any

import aiocoap
import aiocoap.resource as resource
from aiocoap.numbers.codes import Code

from core.errors import Refused, StoreUnavailable
from core.ingest.model import LEAF, RawMessage
from core.ingest.pipeline import Pipeline
from core.metrics import Metrics
from core.senml import COAP_FORMATS

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30  # Max-Age on 5.03: the spool normally answers; this is a full queue
_REFUSED_CODES = {
    "unknown_device": Code.FORBIDDEN,
    "wrong_topic": Code.FORBIDDEN,
    "unsupported_format": Code.UNSUPPORTED_CONTENT_FORMAT,
}


class FamilyResource(resource.Resource, resource.PathCapable):  # type: ignore[misc]
    """`POST /meters/<device_id>/readings` and `POST /bins/<device_id>/events`."""

    def __init__(self, family: str, pipeline: Pipeline, metrics: Metrics) -> None:
        super().__init__()
        self._family = family
        self._pipeline = pipeline
        self._metrics = metrics

    async def render_post(self, request: Any) -> aiocoap.Message:
        received_at = time.time()
        try:
            msg = self._message(request, received_at)
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


def build_site(pipeline: Pipeline, metrics: Metrics) -> Any:
    site = resource.Site()
    site.add_resource(
        [".well-known", "core"], resource.WKCResource(site.get_resources_as_linkheader)
    )
    for family in LEAF:
        site.add_resource([family], FamilyResource(family, pipeline, metrics))
    return site


async def start_server(pipeline: Pipeline, metrics: Metrics, host: str, port: int) -> Any:
    """Plain UDP CoAP; per-device OSCORE/DTLS comes with commissioning (issue 3)."""
    site = build_site(pipeline, metrics)
    return await aiocoap.Context.create_server_context(site, bind=(host, port), transports=["udp6"])
