"""Per-device MQTT accounts, enforced by Mosquitto's dynamic security plugin.

PROTOCOL.md (MQTT): each device authenticates as itself (username = device_id) and may
publish only under its own topics, a truck any `bins/+/events`; the broker enforces it.
Foyer drives the plugin's topic API (`$CONTROL/dynamic-security/v1`, Mosquitto 2.0) as
the admin client created by `mosquitto_ctrl dynsec init`: every device gets a client and
a role of its own holding exactly its topics. Passwords travel only inside the command
payload; the plugin stores salted PBKDF2 hashes. Nothing here logs a password.

paho runs its own thread; its callbacks only hand results to the event loop
(`call_soon_threadsafe`), where futures keyed by correlation data or message id wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from core.ingest.interpret import DEVICE_ID
from core.ingest.model import LEAF, PATH_KINDS

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
INGEST_ROLE = "foyer-ingest"
CONFIG_ROLE = "foyer-config"  # lets Foyer's admin client publish retained device config
DEVICE_ROLE_PREFIX = "foyer-device-"
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
# The plugin's error texts (Mosquitto 2.0 plugins/dynamic-security) that idempotent
# operations turn into "already done".
ROLE_EXISTS, CLIENT_EXISTS, CLIENT_NOT_FOUND = (
    "Role already exists", "Client already exists", "Client not found",
)  # fmt: skip
# Made explicit rather than trusted from the json file: device isolation rests on
# "no ACL, no publish / no subscribe" (the plugin's documented initial defaults).
DEFAULT_ACCESS = {
    "publishClientSend": False, "publishClientReceive": True,
    "subscribe": False, "unsubscribe": True,
}  # fmt: skip

Acl = dict[str, object]


class BrokerAccountError(Exception):
    """The broker refused or did not answer; `broker_error` is the plugin's own text."""

    def __init__(self, message: str, broker_error: str | None = None) -> None:
        super().__init__(message)
        self.broker_error = broker_error


# --- pure: which topics an account gets ------------------------------------------------
def family_of(kind: str) -> str:
    """`meters` or `bins`: the topic family a device kind lives under (PROTOCOL.md)."""
    for family, kinds in PATH_KINDS.items():
        if kind in kinds:
            return family
    raise BrokerAccountError(f"unknown device kind {kind!r}")


def checked_device_id(device_id: str) -> str:
    # The id goes into ACL topic filters: `+`, `#` or `/` would widen what it grants.
    if not DEVICE_ID.fullmatch(device_id):
        raise BrokerAccountError(f"invalid device id {device_id[:80]!r}")
    return device_id


def device_role(device_id: str) -> str:
    return DEVICE_ROLE_PREFIX + checked_device_id(device_id)


def _acl(acltype: str, topic: str) -> Acl:
    return {"acltype": acltype, "topic": topic, "allow": True}


def device_acls(device_id: str, kind: str) -> list[Acl]:
    """Own data and status topics, own config subscription; a truck: any bin's events."""
    family, own = family_of(kind), checked_device_id(device_id)
    data = f"{family}/+/{LEAF[family]}" if kind == "truck" else f"{family}/{own}/{LEAF[family]}"
    return [
        _acl("publishClientSend", data),
        _acl("publishClientSend", f"{family}/{own}/status"),
        # Literal: the device may subscribe to exactly this filter, no wildcard form.
        _acl("subscribeLiteral", f"{family}/{own}/config"),
    ]


def ingest_acls() -> list[Acl]:
    """Data and status of every device, shared or not; publish config.

    Mosquitto 2.0.11 checks a shared subscription's ACL against the whole filter,
    `$share/<group>/...` included (verified in tests/integration), hence both forms.
    """
    filters = [f"{family}/+/{leaf}" for family, leaf in LEAF.items()]
    filters += [f"{family}/+/status" for family in LEAF]
    subs = [_acl("subscribePattern", f) for f in filters]
    subs += [_acl("subscribePattern", f"$share/+/{f}") for f in filters]
    return subs + config_acls()


def config_acls() -> list[Acl]:
    return [_acl("publishClientSend", f"{family}/+/config") for family in LEAF]


def _rolenames(client: Mapping[str, Any]) -> set[str]:
    return {str(r.get("rolename")) for r in client.get("roles", []) if isinstance(r, dict)}


# --- the admin connection --------------------------------------------------------------
class BrokerAccounts:
    def __init__(
        self, url: str, *, client_id: str = "foyer-dynsec", timeout_s: float = 5.0
    ) -> None:
        parts = urlsplit(url)  # mqtt://admin:password@host:port
        if not parts.username or parts.password is None:
            raise BrokerAccountError("the broker admin URL needs user:password")
        self._host, self._port = parts.hostname or "localhost", parts.port or 1883
        self._username, self._password = unquote(parts.username), unquote(parts.password)
        self._client_id = client_id
        self._timeout = timeout_s
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()  # connected and subscribed to the responses
        self._opened: asyncio.Future[None] | None = None
        self._last_error = "not connected"
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._acks: dict[int, asyncio.Future[ReasonCode]] = {}

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._opened = self._loop.create_future()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(self._username, self._password)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.connect_async(self._host, self._port, KEEPALIVE_S, clean_start=True)
        client.loop_start()
        self._client = client
        try:
            async with asyncio.timeout(self._timeout):
                await self._opened
            await self._ensure_policy()
        except TimeoutError as err:
            await self.close()
            raise BrokerAccountError(f"broker not ready: {self._last_error}") from err
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.disconnect)
            await asyncio.to_thread(client.loop_stop)
        self._ready.clear()
        for fut in self._pending.values():
            fut.cancel()
        for ack in self._acks.values():
            ack.cancel()

    # --- what the lead wires -------------------------------------------------------------
    async def ensure_ingest_account(self, username: str, password: str) -> None:
        """The ingestion client's account: shared subscriptions, retained config. Idempotent."""
        await self._put_role(INGEST_ROLE, ingest_acls())
        await self._put_client(username, password, INGEST_ROLE)

    async def add_device(self, device_id: str, kind: str, password: str) -> None:
        """Commission: after this the device connects with `password` and holds exactly
        its kind's topics, also when it existed before (new password, ACLs, re-enabled)."""
        role = device_role(device_id)
        await self._put_role(role, device_acls(device_id, kind))
        await self._put_client(device_id, password, role)
        log.info("broker account ready for %s device %s", kind, device_id)

    async def set_password(self, device_id: str, password: str) -> None:
        # The plugin disconnects sessions using the old password at once.
        await self._require_device(device_id)
        await self._command("setClientPassword", username=device_id, password=password)

    async def disable_device(self, device_id: str) -> None:
        """Retire: the plugin kicks connected sessions at once and refuses new ones.
        A device without a broker account is already cut off: not an error."""
        try:
            await self._require_device(device_id)
        except BrokerAccountError as err:
            if err.broker_error != CLIENT_NOT_FOUND:
                raise
            log.info("no broker account to disable for %s", device_id)
            return
        await self._command("disableClient", username=device_id)
        log.info("broker account disabled for %s", device_id)

    async def enable_device(self, device_id: str) -> None:
        await self._require_device(device_id)
        await self._command("enableClient", username=device_id)

    async def push_config(self, device_id: str, kind: str, settings: Mapping[str, object]) -> None:
        """Retained JSON on `<family>/<id>/config` (PROTOCOL.md), QoS 1, until PUBACK."""
        topic = f"{family_of(kind)}/{checked_device_id(device_id)}/config"
        try:
            payload = json.dumps(dict(settings), separators=(",", ":"), sort_keys=True)
        except (TypeError, ValueError) as err:
            raise BrokerAccountError(f"config for {device_id} is not JSON: {err}") from err
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = "application/json"
        rc = await self._publish_acked(topic, payload, props)
        if rc.is_failure:
            raise BrokerAccountError(f"broker refused config for {device_id}: {rc}", str(rc))

    # --- building blocks -------------------------------------------------------------------
    async def _ensure_policy(self) -> None:
        acls = [{"acltype": t, "allow": allow} for t, allow in DEFAULT_ACCESS.items()]
        await self._command("setDefaultACLAccess", acls=acls)
        await self._put_role(CONFIG_ROLE, config_acls())
        if CONFIG_ROLE in _rolenames(await self._get_client(self._username)):
            return
        with contextlib.suppress(BrokerAccountError):
            # The plugin disconnects a client whose roles change, this one included, so
            # the answer is lost (2.0.11); check the role once reconnected instead.
            await self._command("addClientRole", username=self._username, rolename=CONFIG_ROLE)
        if CONFIG_ROLE not in _rolenames(await self._get_client(self._username)):
            raise BrokerAccountError(f"could not give {self._username!r} the {CONFIG_ROLE} role")

    async def _put_role(self, role: str, acls: list[Acl]) -> None:
        try:
            await self._command("createRole", rolename=role, acls=acls)
        except BrokerAccountError as err:
            if err.broker_error != ROLE_EXISTS:
                raise
            await self._command("modifyRole", rolename=role, acls=acls)  # replaces the ACLs

    async def _put_client(self, username: str, password: str, role: str) -> None:
        roles = [{"rolename": role}]
        try:
            await self._command("createClient", username=username, password=password, roles=roles)
            return
        except BrokerAccountError as err:
            if err.broker_error != CLIENT_EXISTS:
                raise
        self._check_owned(username, await self._get_client(username), role)
        await self._command("modifyClient", username=username, password=password, roles=roles)
        await self._command("enableClient", username=username)

    async def _require_device(self, device_id: str) -> None:
        client = await self._get_client(checked_device_id(device_id))
        self._check_owned(device_id, client, device_role(device_id))

    def _check_owned(self, username: str, client: Mapping[str, Any], role: str) -> None:
        # Never let a device id that collides with the admin or ingest account (or an
        # account someone made by hand) rewrite or disable it.
        if username == self._username or not _rolenames(client) <= {role}:
            raise BrokerAccountError(f"broker account {username!r} is not Foyer's {role!r}")

    async def _get_client(self, username: str) -> dict[str, Any]:
        data = await self._command("getClient", username=username)
        client = data.get("client")
        return client if isinstance(client, dict) else {}

    async def _command(self, command: str, **fields: object) -> dict[str, Any]:
        """One dynsec command; its response is matched by correlation data."""
        client, loop = await self._ready_client()
        correlation = uuid.uuid4().hex
        body = {"commands": [{"command": command, **fields, "correlationData": correlation}]}
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[correlation] = fut  # before publishing: the answer may be quick
        try:
            client.publish(CONTROL_TOPIC, json.dumps(body), qos=1)
            async with asyncio.timeout(self._timeout):
                response = await fut
        except TimeoutError as err:
            raise BrokerAccountError(f"{command}: no answer within {self._timeout}s") from err
        finally:
            self._pending.pop(correlation, None)
        if "error" in response:
            error = str(response["error"])
            raise BrokerAccountError(f"{command} {fields.get('username', '')}: {error}", error)
        data = response.get("data")
        return data if isinstance(data, dict) else {}

    async def _publish_acked(self, topic: str, payload: str, props: Properties) -> ReasonCode:
        client, loop = await self._ready_client()
        info = client.publish(topic, payload, qos=1, retain=True, properties=props)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: queued
            raise BrokerAccountError(f"cannot publish {topic}: {mqtt.error_string(info.rc)}")
        # Registered before any await: the PUBACK reaches us only through the loop.
        fut: asyncio.Future[ReasonCode] = loop.create_future()
        self._acks[info.mid] = fut
        try:
            async with asyncio.timeout(self._timeout):
                return await fut
        except TimeoutError as err:
            raise BrokerAccountError(f"no PUBACK for {topic} within {self._timeout}s") from err
        finally:
            self._acks.pop(info.mid, None)

    async def _ready_client(self) -> tuple[mqtt.Client, asyncio.AbstractEventLoop]:
        if self._client is None or self._loop is None:
            raise BrokerAccountError("BrokerAccounts is not open")
        try:
            async with asyncio.timeout(self._timeout):
                await self._ready.wait()
        except TimeoutError as err:
            raise BrokerAccountError(f"broker not ready: {self._last_error}") from err
        return self._client, self._loop

    # --- paho thread: hand over, nothing else ------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._call(self._refused, str(rc))
        else:
            client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        failed = [str(code) for code in codes if code.is_failure]
        if failed:
            self._call(self._refused, f"subscription to the responses: {failed}")
        else:
            self._call(self._became_ready)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self._call(self._lost, str(rc))

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == RESPONSE_TOPIC:
            self._call(self._on_responses, bytes(message.payload))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        self._call(self._on_puback, mid, rc)

    def _call(self, fn: Any, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    # --- event loop ------------------------------------------------------------------------
    def _became_ready(self) -> None:
        if not self._ready.is_set():
            log.warning("dynamic security admin connected to the broker")
        self._ready.set()
        if self._opened is not None and not self._opened.done():
            self._opened.set_result(None)

    def _refused(self, reason: str) -> None:
        if self._last_error != f"refused: {reason}":  # paho retries: log the change once
            log.error("broker refused the dynamic security admin (%s)", reason)
        self._last_error = f"refused: {reason}"
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(BrokerAccountError(self._last_error, reason))

    def _lost(self, reason: str) -> None:
        if self._ready.is_set():
            log.warning("dynamic security admin lost the broker (%s)", reason)
        self._last_error = f"disconnected: {reason}"
        self._ready.clear()
        # Answers go to this connection only: fail now rather than at the timeout. paho
        # resends the command on reconnection, so it may still take effect.
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(
                    BrokerAccountError(f"connection lost before the answer: {reason}")
                )

    def _on_responses(self, payload: bytes) -> None:
        try:
            responses = json.loads(payload)["responses"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable dynamic security response (%d bytes)", len(payload))
            return
        for response in _dicts(responses):
            fut = self._pending.get(str(response.get("correlationData")))
            if fut is not None and not fut.done():
                fut.set_result(response)

    def _on_puback(self, mid: int, rc: ReasonCode) -> None:
        fut = self._acks.get(mid)
        if fut is not None and not fut.done():
            fut.set_result(rc)


def _dicts(items: object) -> Iterable[dict[str, Any]]:
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
