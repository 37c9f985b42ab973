"""Per-device MQTT accounts in a real Mosquitto with the dynamic security plugin.

Foyer manages the accounts (BrokerAccounts); what the broker then allows or refuses is
observed with `mosquitto_pub` / `mosquitto_sub`, clients Foyer did not write. A
`mosquitto_sub` logged in as the ingestion account is the witness of what got through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from core.ingest.broker_accounts import BrokerAccountError, BrokerAccounts
from device_sim.transport import MqttSender, SendError
from tests.servers import SecureMosquitto, binary

pytestmark = pytest.mark.servers

INGEST_USER, INGEST_PW = "foyer-ingest", "ingest-pw-Xq3"
DEADLINE_S = 10.0
CUT_OFF_S = 3.0  # "a retired device is cut off within seconds"
NOT_AUTHORIZED = "not authori"  # mosquitto_* print "Not authorized" / "not authorised"


@dataclass
class Proc:
    """A mosquitto_pub/_sub process whose output lines are collected as they come."""

    proc: asyncio.subprocess.Process
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, *argv: str) -> Proc:
        # stdbuf: mosquitto_sub's -d and message lines are block-buffered into a pipe.
        proc = await asyncio.create_subprocess_exec(
            "stdbuf", "-oL", *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self = cls(proc)
        assert proc.stdout is not None and proc.stderr is not None
        self.readers = [
            asyncio.create_task(_collect(proc.stdout, self.out)),
            asyncio.create_task(_collect(proc.stderr, self.err)),
        ]
        return self

    async def wait_line(self, predicate: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            for line in [*self.out, *self.err]:
                if predicate(line):
                    return line
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {what} within {DEADLINE_S}s: {self.out[-5:]} {self.err[-5:]}")

    def messages(self) -> list[str]:
        return [line.removeprefix("MSG ") for line in self.out if line.startswith("MSG ")]

    async def write(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        await self.proc.stdin.drain()

    async def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        await self.proc.stdin.wait_closed()

    async def exited_within(self, seconds: float) -> int | None:
        try:
            return await asyncio.wait_for(self.proc.wait(), seconds)
        except TimeoutError:
            return None

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
        await asyncio.gather(*self.readers)


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    async for raw in stream:
        into.append(raw.decode(errors="replace").rstrip("\n"))


@dataclass
class Broker:
    server: SecureMosquitto

    def login(self, user: str, password: str) -> list[str]:
        return ["-h", "127.0.0.1", "-p", str(self.server.port), "-u", user, "-P", password]

    async def pub(
        self, user: str, password: str, topic: str, message: str, *, v5: bool = True
    ) -> tuple[int, str]:
        """One QoS 1 publish; MQTT 5 lets mosquitto_pub see a PUBACK "Not authorized"."""
        argv = [binary("mosquitto_pub"), *self.login(user, password), "-q", "1"]
        argv += ["-V", "mqttv5"] if v5 else []
        proc = await asyncio.create_subprocess_exec(
            *argv, "-t", topic, "-m", message,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), DEADLINE_S)
        return proc.returncode or 0, (out + err).decode()

    async def sub(self, user: str, password: str, *topics: str, extra: Sequence[str] = ()) -> Proc:
        argv = [binary("mosquitto_sub"), *self.login(user, password), "-V", "mqttv5", "-q", "1"]
        for topic in topics:
            argv += ["-t", topic]
        return await Proc.start(*argv, "-d", "-F", "MSG %t %p", *extra)

    async def witness(self, *topics: str) -> Proc:
        """The ingestion account's view, subscribed (SUBACK granted) before returning."""
        proc = await self.sub(INGEST_USER, INGEST_PW, *topics)
        await proc.wait_line(lambda line: line.startswith("Subscribed (mid"), "SUBACK")
        assert not any("denied" in line for line in proc.err), proc.err
        return proc


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {DEADLINE_S}s")
        await asyncio.sleep(0.02)


@pytest.fixture
async def accounts(secure_mosquitto: SecureMosquitto) -> AsyncIterator[BrokerAccounts]:
    acc = BrokerAccounts(secure_mosquitto.admin_url, timeout_s=5.0)
    await acc.open()
    await acc.ensure_ingest_account(INGEST_USER, INGEST_PW)
    yield acc
    await acc.close()


@pytest.fixture
async def broker(secure_mosquitto: SecureMosquitto) -> Broker:
    return Broker(secure_mosquitto)


@pytest.fixture
async def procs() -> AsyncIterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        await proc.stop()


# --- what a commissioned device may do ----------------------------------------------------
async def test_commissioned_meter_publishes_and_ingest_receives_it_on_a_shared_subscription(
    accounts: BrokerAccounts, broker: Broker, procs: list[Proc]
) -> None:
    await accounts.add_device("m-1", "meter", "m1-pw")
    procs.append(witness := await broker.witness("$share/foyer/meters/+/readings"))
    rc, text = await broker.pub("m-1", "m1-pw", "meters/m-1/readings", "reading-1")
    assert rc == 0 and NOT_AUTHORIZED not in text.lower(), text
    await _until(lambda: "meters/m-1/readings reading-1" in witness.messages(), "delivery")


async def test_device_cannot_publish_to_another_devices_topic(
    accounts: BrokerAccounts, broker: Broker, procs: list[Proc]
) -> None:
    await accounts.add_device("m-1", "meter", "m1-pw")
    await accounts.add_device("m-2", "meter", "m2-pw")
    procs.append(witness := await broker.witness("meters/+/readings", "meters/+/status"))
    _, text = await broker.pub("m-1", "m1-pw", "meters/m-2/readings", "spoof-v5")
    assert NOT_AUTHORIZED in text.lower(), text  # MQTT 5: PUBACK reason 0x87
    await broker.pub("m-1", "m1-pw", "meters/m-2/readings", "spoof-v311", v5=False)
    await broker.pub("m-1", "m1-pw", "meters/m-2/status", "spoof-status")
    # The marker goes out after the refused messages were acknowledged: once the
    # witness has it, anything that got through would have arrived too.
    await broker.pub("m-1", "m1-pw", "meters/m-1/status", "marker")
    await _until(lambda: "meters/m-1/status marker" in witness.messages(), "marker")
    assert witness.messages() == ["meters/m-1/status marker"]


async def test_wrong_or_unknown_credentials_are_refused(
    accounts: BrokerAccounts, broker: Broker
) -> None:
    await accounts.add_device("m-1", "meter", "m1-pw")
    for user, password in [("m-1", "wrong"), ("nobody", "m1-pw"), ("m-1", "")]:
        rc, text = await broker.pub(user, password, "meters/m-1/readings", "x")
        assert rc != 0 and NOT_AUTHORIZED in text.lower(), (user, text)
    rc, text = await broker.pub("m-1", "m1-pw", "meters/m-1/readings", "x", v5=False)
    assert rc == 0, text


async def test_truck_reports_lifts_for_any_bin_but_nothing_else(
    accounts: BrokerAccounts, broker: Broker, procs: list[Proc]
) -> None:
    await accounts.add_device("t-1", "truck", "t1-pw")
    procs.append(witness := await broker.witness("$share/g/bins/+/events", "meters/+/readings"))
    for bin_id in ("b-1", "b-77"):
        rc, text = await broker.pub("t-1", "t1-pw", f"bins/{bin_id}/events", f"lift-{bin_id}")
        assert rc == 0 and NOT_AUTHORIZED not in text.lower(), text
    for topic in ("meters/x-1/readings", "bins/b-1/status", "bins/b-1/config"):
        _, text = await broker.pub("t-1", "t1-pw", topic, "no")
        assert NOT_AUTHORIZED in text.lower(), (topic, text)
    await _until(lambda: len(witness.messages()) == 2, "two lifts")
    assert sorted(witness.messages()) == ["bins/b-1/events lift-b-1", "bins/b-77/events lift-b-77"]


async def test_bin_publishes_events_and_status_under_bins_only(
    accounts: BrokerAccounts, broker: Broker
) -> None:
    await accounts.add_device("c-1", "container", "c1-pw")
    for topic in ("bins/c-1/events", "bins/c-1/status"):
        _, text = await broker.pub("c-1", "c1-pw", topic, "ok")
        assert NOT_AUTHORIZED not in text.lower(), (topic, text)
    for topic in ("bins/b-2/events", "meters/c-1/readings"):
        _, text = await broker.pub("c-1", "c1-pw", topic, "no")
        assert NOT_AUTHORIZED in text.lower(), (topic, text)


# --- retirement and re-commissioning ----------------------------------------------------
async def test_disabled_device_is_cut_off_within_seconds_and_refused_afterwards(
    accounts: BrokerAccounts, broker: Broker, procs: list[Proc]
) -> None:
    await accounts.add_device("m-1", "meter", "m1-pw")
    await accounts.push_config("m-1", "meter", {"report_interval_s": 900})
    procs.append(witness := await broker.witness("meters/+/readings"))
    # A long-lived publisher (-l: one message per stdin line) and a config subscriber.
    procs.append(pub := await Proc.start(
        binary("mosquitto_pub"), *broker.login("m-1", "m1-pw"), "-V", "mqttv5", "-q", "1",
        "-t", "meters/m-1/readings", "-l", "-d",
    ))  # fmt: skip
    procs.append(sub := await broker.sub("m-1", "m1-pw", "meters/m-1/config"))
    await pub.write("before")
    await _until(lambda: "meters/m-1/readings before" in witness.messages(), "first reading")
    await _until(lambda: any("report_interval_s" in m for m in sub.messages()), "config")

    started = time.monotonic()
    await accounts.disable_device("m-1")
    kicked = "Received DISCONNECT (152)"  # MQTT 5 reason 0x98: administrative action
    await pub.wait_line(lambda line: line == kicked, "publisher cut off")
    await sub.wait_line(lambda line: line == kicked, "subscriber cut off")
    assert time.monotonic() - started < CUT_OFF_S
    assert await sub.exited_within(CUT_OFF_S) is not None, "subscriber still running"
    await pub.write("after")
    await pub.close_stdin()
    assert await pub.exited_within(DEADLINE_S) != 0
    assert any("not currently connected" in line for line in pub.err), pub.err

    rc, text = await broker.pub("m-1", "m1-pw", "meters/m-1/readings", "refused")
    assert rc != 0 and NOT_AUTHORIZED in text.lower(), text
    await accounts.enable_device("m-1")
    rc, text = await broker.pub("m-1", "m1-pw", "meters/m-1/readings", "back")
    assert rc == 0 and NOT_AUTHORIZED not in text.lower(), text
    await _until(lambda: "meters/m-1/readings back" in witness.messages(), "reading after enable")
    assert not any("after" in m or "refused" in m for m in witness.messages())


async def test_commissioning_again_sets_the_new_password_and_reenables(
    accounts: BrokerAccounts, broker: Broker
) -> None:
    await accounts.add_device("m-1", "meter", "old-pw")
    await accounts.disable_device("m-1")
    await accounts.add_device("m-1", "meter", "new-pw")
    rc, text = await broker.pub("m-1", "old-pw", "meters/m-1/readings", "x")
    assert rc != 0 and NOT_AUTHORIZED in text.lower(), text
    rc, text = await broker.pub("m-1", "new-pw", "meters/m-1/readings", "x")
    assert rc == 0 and NOT_AUTHORIZED not in text.lower(), text


async def test_set_password_replaces_the_old_one_and_drops_its_sessions(
    accounts: BrokerAccounts, broker: Broker, procs: list[Proc]
) -> None:
    await accounts.add_device("b-1", "bin", "old-pw")
    procs.append(sub := await broker.sub("b-1", "old-pw", "bins/b-1/config"))
    await sub.wait_line(lambda line: line.startswith("Subscribed (mid"), "SUBACK")
    await accounts.set_password("b-1", "new-pw")
    assert await sub.exited_within(CUT_OFF_S) is not None
    assert (await broker.pub("b-1", "old-pw", "bins/b-1/events", "x"))[0] != 0
    assert (await broker.pub("b-1", "new-pw", "bins/b-1/events", "x"))[0] == 0


async def test_disabling_a_device_without_broker_account_is_a_no_op(
    accounts: BrokerAccounts,
) -> None:
    await accounts.disable_device("never-commissioned")
    with pytest.raises(BrokerAccountError, match="Client not found"):
        await accounts.enable_device("never-commissioned")


# --- configuration pushed to devices ----------------------------------------------------
async def test_pushed_config_is_retained_for_its_device_and_hidden_from_others(
    accounts: BrokerAccounts, broker: Broker, procs: list[Proc]
) -> None:
    await accounts.add_device("m-1", "meter", "m1-pw")
    await accounts.add_device("m-2", "meter", "m2-pw")
    await accounts.push_config("m-1", "meter", {"report_interval_s": 900})
    # Subscribing after the push: only a retained message can arrive.
    procs.append(own := await broker.sub("m-1", "m1-pw", "meters/m-1/config"))
    await _until(lambda: bool(own.messages()), "retained config")
    assert own.messages() == ['meters/m-1/config {"report_interval_s":900}']
    for topic in ("meters/m-1/config", "meters/+/config", "#", "$share/x/meters/m-1/config"):
        procs.append(other := await broker.sub("m-2", "m2-pw", topic))
        await other.wait_line(lambda line: "denied" in line, f"refusal of {topic}")
        assert not other.messages()


# --- the accounts Foyer itself uses ----------------------------------------------------
async def test_ingest_account_cannot_impersonate_devices(
    accounts: BrokerAccounts, broker: Broker
) -> None:
    _, text = await broker.pub(INGEST_USER, INGEST_PW, "meters/m-1/readings", "spoof")
    assert NOT_AUTHORIZED in text.lower(), text
    _, text = await broker.pub(INGEST_USER, INGEST_PW, "meters/m-1/config", "{}")
    assert NOT_AUTHORIZED not in text.lower(), text


async def test_device_id_colliding_with_foyers_own_accounts_is_refused(
    accounts: BrokerAccounts, broker: Broker, secure_mosquitto: SecureMosquitto
) -> None:
    with pytest.raises(BrokerAccountError, match="not Foyer's"):
        await accounts.add_device(INGEST_USER, "meter", "hijack")
    with pytest.raises(BrokerAccountError, match="not Foyer's"):
        await accounts.disable_device(secure_mosquitto.admin_user)
    rc, text = await broker.pub(INGEST_USER, INGEST_PW, "meters/m-1/config", "{}")
    assert rc == 0 and NOT_AUTHORIZED not in text.lower(), text


@pytest.mark.parametrize(
    ("device_id", "kind"), [("m/#", "meter"), ("+", "meter"), ("ab", "meter"), ("m-1", "lamp")]
)
async def test_bad_device_id_or_kind_is_refused_before_reaching_the_broker(
    accounts: BrokerAccounts, device_id: str, kind: str
) -> None:
    with pytest.raises(BrokerAccountError, match=r"invalid device id|unknown device kind"):
        await accounts.add_device(device_id, kind, "pw-123")


async def test_passwords_are_stored_as_salted_hashes_and_never_logged(
    accounts: BrokerAccounts, secure_mosquitto: SecureMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "very-secret-Pw-4242"
    await accounts.add_device("m-9", "meter", password)
    await accounts.set_password("m-9", password + "2")
    stored = secure_mosquitto.dynsec_json.read_text()
    client = next(c for c in json.loads(stored)["clients"] if c["username"] == "m-9")
    assert client["password"] and client["salt"] and client["iterations"] > 0
    assert password not in stored
    assert password not in caplog.text and "m-9" in caplog.text


async def test_accounts_survive_a_broker_restart(
    accounts: BrokerAccounts, broker: Broker, secure_mosquitto: SecureMosquitto
) -> None:
    await accounts.add_device("m-1", "meter", "m1-pw")
    secure_mosquitto.restart()
    rc, text = await broker.pub("m-1", "m1-pw", "meters/m-1/readings", "x")
    assert rc == 0 and NOT_AUTHORIZED not in text.lower(), text
    _, text = await broker.pub("m-1", "m1-pw", "meters/m-2/readings", "x")
    assert NOT_AUTHORIZED in text.lower(), text


async def test_wrong_admin_password_fails_open_with_the_brokers_reason(
    secure_mosquitto: SecureMosquitto,
) -> None:
    url = secure_mosquitto.admin_url.replace(secure_mosquitto.admin_password, "wrong")
    acc = BrokerAccounts(url, timeout_s=5.0)
    started = time.monotonic()
    with pytest.raises(BrokerAccountError, match="Not authorized"):
        await acc.open()
    assert time.monotonic() - started < 2.0


async def test_commands_fail_with_an_error_while_the_broker_is_down(
    accounts: BrokerAccounts, secure_mosquitto: SecureMosquitto
) -> None:
    # `accounts` did the first open's one-time grant (which costs a reconnection).
    opened = BrokerAccounts(secure_mosquitto.admin_url, client_id="fast", timeout_s=0.5)
    await opened.open()
    secure_mosquitto.stop()
    # Either the loss is already known, or the command in flight fails with it.
    down = r"broker not ready|connection lost before the answer"
    try:
        with pytest.raises(BrokerAccountError, match=down):
            await opened.add_device("m-1", "meter", "pw-123")
        with pytest.raises(BrokerAccountError, match="broker not ready"):
            await opened.push_config("m-1", "meter", {"report_interval_s": 60})
    finally:
        await opened.close()
    with pytest.raises(BrokerAccountError, match="broker not ready"):
        await BrokerAccounts(secure_mosquitto.admin_url, timeout_s=0.5).open()


# --- the device simulator as a device ----------------------------------------------------
async def test_simulated_device_connects_as_itself_and_only_publishes_its_own_data(
    accounts: BrokerAccounts, secure_mosquitto: SecureMosquitto
) -> None:
    await accounts.add_device("m-1", "meter", "p@ss/w:rd")  # percent-encoded in the URL
    url = f"mqtt://m-1:p%40ss%2Fw%3Ard@127.0.0.1:{secure_mosquitto.port}"
    sender = MqttSender(url, ack_timeout_s=5.0)
    await sender.start()
    try:
        await sender.send("meters", "m-1", b"[]", "json")
        with pytest.raises(SendError, match="Not authorized"):
            await sender.send("meters", "m-2", b"[]", "json")
    finally:
        await sender.close()
    wrong = MqttSender(f"mqtt://m-1:wrong@127.0.0.1:{secure_mosquitto.port}")
    with pytest.raises(SendError, match="not accepted"):
        await wrong.start()
