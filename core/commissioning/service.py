"""Commissioning: the registry's record plus the credentials the broker and CoAP check.

Order of operations is chosen so that a failure never leaves a device able to write
without being registered: the registry is written first, credentials second. If the
broker cannot be reached, the device stays registered without usable credentials and
the technician re-issues them (the API says so).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from core.registry.devices import Devices
from core.registry.secrets import new_device_password, token_hash

log = logging.getLogger(__name__)

FAMILY = {"meter": "meters", "bin": "bins", "container": "bins", "truck": "bins"}
LEAF = {"meters": "readings", "bins": "events"}


class CredentialsError(Exception):
    """Credentials could not be issued or revoked (broker unreachable or refusing)."""


class BrokerAccountsPort(Protocol):
    async def add_device(self, device_id: str, kind: str, password: str) -> None: ...
    async def disable_device(self, device_id: str) -> None: ...
    async def push_config(
        self, device_id: str, kind: str, settings: Mapping[str, object]
    ) -> None: ...


class KeysPort(Protocol):
    def issue(self, device_id: str) -> dict[str, str]: ...
    def revoke(self, device_id: str) -> None: ...


def mqtt_topics(device_id: str, kind: str) -> dict[str, Any]:
    """What the device may publish and where its settings wait (PROTOCOL.md, MQTT)."""
    family = FAMILY[kind]
    own = f"{family}/{device_id}"
    readings = f"{family}/+/events" if kind == "truck" else f"{own}/{LEAF[family]}"
    return {"publish": [readings, f"{own}/status"], "config_topic": f"{own}/config"}


def device_settings(device: Mapping[str, Any]) -> dict[str, object]:
    """The retained settings pushed to the device's config topic."""
    out: dict[str, object] = {}
    if device.get("report_interval_s"):
        out["report_interval_s"] = device["report_interval_s"]
    return out


@dataclass
class Commissioning:
    devices: Devices
    broker: BrokerAccountsPort | None = None
    keys: KeysPort | None = None
    on_change: Callable[[], Awaitable[None]] | None = None

    async def commission(self, actor: str, **fields: Any) -> dict[str, Any]:
        device = await asyncio.to_thread(lambda: self.devices.commission(actor=actor, **fields))
        credentials = await self._issue(device, actor)
        await self._changed()
        return {"device": device, "credentials": credentials}

    async def reissue(self, device_id: str, actor: str) -> dict[str, Any]:
        device = await asyncio.to_thread(self.devices.get, device_id)
        if device["status"] == "retired":
            raise CredentialsError(f"device {device_id!r} is retired")
        credentials = await self._issue(device, actor)
        return {
            "device": await asyncio.to_thread(self.devices.get, device_id),
            "credentials": credentials,
        }

    async def update_settings(
        self, device_id: str, report_interval_s: int, actor: str
    ) -> dict[str, Any]:
        """Store new settings, then push them (retained) to the device's config topic."""
        device = await asyncio.to_thread(
            lambda: self.devices.update_settings(device_id, report_interval_s, actor=actor)
        )
        if self.broker is not None:
            try:
                await self.broker.push_config(device_id, device["kind"], device_settings(device))
            except Exception as err:  # translated once here, never swallowed
                raise CredentialsError(
                    f"settings of {device_id} are saved but the broker did not take them "
                    f"({err}); save them again when the broker is back"
                ) from err
        return {"device": device}

    async def swap(self, old_id: str, new_id: str, actor: str, **fields: Any) -> dict[str, Any]:
        device = await asyncio.to_thread(
            lambda: self.devices.swap(old_id, new_id, actor=actor, **fields)
        )
        await self._revoke(old_id)
        credentials = await self._issue(device, actor)
        await self._changed()
        return {"device": device, "credentials": credentials}

    async def retire(self, device_id: str, actor: str) -> dict[str, Any]:
        device = await asyncio.to_thread(lambda: self.devices.retire(device_id, actor=actor))
        await self._revoke(device_id)
        await self._changed()
        return {"device": device}

    async def _issue(self, device: Mapping[str, Any], actor: str) -> dict[str, Any]:
        device_id, kind = device["device_id"], device["kind"]
        mqtt = None
        if self.broker is not None:
            password = new_device_password()
            try:
                await self.broker.add_device(device_id, kind, password)
                await self.broker.push_config(device_id, kind, device_settings(device))
            except Exception as err:  # translated once here, never swallowed
                raise CredentialsError(
                    f"device {device_id} is registered but the broker refused its credentials "
                    f"({err}); re-issue them when the broker is back"
                ) from err
            # A random 144-bit secret: a plain SHA-256 is enough, nothing to brute-force.
            await asyncio.to_thread(
                lambda: self.devices.record_credentials(
                    device_id, token_hash(password), actor=actor
                )
            )
            mqtt = {"username": device_id, "password": password, **mqtt_topics(device_id, kind)}
        oscore = await asyncio.to_thread(self.keys.issue, device_id) if self.keys else None
        log.info("credentials issued for %s by %s", device_id, actor)
        return {"mqtt": mqtt, "oscore": oscore}

    async def _revoke(self, device_id: str) -> None:
        """Cut the device off at once: the broker kicks it, CoAP forgets its key."""
        if self.keys is not None:
            await asyncio.to_thread(self.keys.revoke, device_id)
        if self.broker is not None:
            try:
                await self.broker.disable_device(device_id)
            except Exception as err:  # translated once here, never swallowed
                raise CredentialsError(
                    f"device {device_id} is retired in the registry but the broker did not "
                    f"disable it ({err}); retry the retirement"
                ) from err

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()
