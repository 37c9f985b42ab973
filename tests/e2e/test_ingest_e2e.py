"""End to end with clients Foyer did not write: mosquitto_pub and libcoap's coap-client."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import cbor2

from core.service import Foyer
from core.settings import Settings
from tests.e2e.conftest import counter, eventually, influx_query
from tests.servers import InfluxDB, Mosquitto, binary

NOW = int(time.time())


async def pub(mosquitto: Mosquitto, topic: str, payload: bytes, *extra: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        binary("mosquitto_pub"), "-p", str(mosquitto.port), "-h", "127.0.0.1", "-V", "mqttv5",
        "-q", "1", "-t", topic, "-s", *extra, stdin=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await proc.communicate(payload)
    assert proc.returncode == 0


async def coap_post(port: int, path: str, payload: bytes, fmt: str = "110") -> str:
    proc = await asyncio.create_subprocess_exec(
        binary("coap-client-notls"), "-m", "post", "-t", fmt, "-f", "-", "-B", "5",
        f"coap://127.0.0.1:{port}/{path}", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(payload)
    return (out + err).decode()


def pack(device: str, *records: dict[str, object]) -> bytes:
    return json.dumps([{"bn": f"urn:dev:foyer:{device}:", "bt": NOW}, *records]).encode()


async def test_mqtt_stores_exact_values_once_and_refuses_bad_packs(
    foyer: Foyer, mosquitto: Mosquitto, influxdb: InfluxDB, settings: Settings
) -> None:
    good = pack("m-1", {"n": "volume", "u": "m3", "v": 12.345, "t": -60.25},
                {"n": "volume", "u": "m3", "v": 12.351, "t": -0.5})  # fmt: skip
    await pub(mosquitto, "meters/m-1/readings", good)
    await pub(mosquitto, "meters/m-1/readings", good)  # duplicate delivery
    await pub(mosquitto, "meters/m-1/readings", b"\x00garbage")
    await pub(mosquitto, "meters/ghost/readings", pack("ghost", {"n": "volume", "u": "m3", "v": 1}))
    await pub(mosquitto, "meters/m-2/readings", pack("m-2", {"n": "volume", "u": "kg", "v": 1}))
    cbor = cbor2.dumps([{-2: "urn:dev:foyer:m-2:", -3: NOW - 10, 0: "volume", 1: "m3", 2: 3.5}])
    await pub(mosquitto, "meters/m-2/readings", cbor, "-D", "publish", "content-type",
              "application/senml+cbor")  # fmt: skip

    await eventually(lambda: counter(foyer, "foyer_messages_received_total", transport="mqtt") >= 6)
    await eventually(
        lambda: len(influx_query(influxdb, settings.influx_db, "SELECT * FROM meter_index")) >= 3
    )
    rows = influx_query(influxdb, settings.influx_db, "SELECT * FROM meter_index ORDER BY time")
    assert [(r["device_id"], r["time"], r["index_l"]) for r in rows] == [
        ("m-1", (NOW - 61) * 10**9 + 750_000_000, 12345),
        ("m-2", (NOW - 10) * 10**9, 3500),
        ("m-1", NOW * 10**9 - 500_000_000, 12351),
    ]
    refused = {
        reason: counter(foyer, "foyer_messages_refused_total", transport="mqtt", reason=reason)
        for reason in ("bad_payload", "unknown_device", "bad_unit")
    }
    assert refused == {"bad_payload": 1.0, "unknown_device": 1.0, "bad_unit": 1.0}


async def test_truck_lifts_and_container_deposits_reach_bin_event(
    foyer: Foyer, mosquitto: Mosquitto, influxdb: InfluxDB, settings: Settings
) -> None:
    truck = json.dumps([
        {"bn": "urn:dev:foyer:b-1:", "bt": NOW - 30, "n": "lift", "u": "kg", "v": 17.25},
        {"bn": "urn:dev:foyer:b-999:", "n": "lift", "t": 1},
    ]).encode()  # fmt: skip
    await pub(mosquitto, "bins/t-1/events", truck)
    await pub(
        mosquitto,
        "bins/c-1/events",
        pack("c-1", {"n": "deposit", "vs": "badge-9", "v": 60, "u": "l"}),
    )
    query = "SELECT * FROM bin_event ORDER BY time"
    await eventually(lambda: len(influx_query(influxdb, settings.influx_db, query)) >= 2)
    rows = influx_query(influxdb, settings.influx_db, query)
    assert [(r["device_id"], r["kind"], r["source"], r["weight_kg"], r["badge"]) for r in rows] == [
        ("b-1", "lift", "t-1", 17.25, None),
        ("c-1", "deposit", "c-1", None, "badge-9"),
    ]
    assert counter(foyer, "foyer_records_dropped_total", reason="unknown_bin") == 1.0


async def test_coap_answers_with_codes_and_diagnostics(
    foyer: Foyer, influxdb: InfluxDB, settings: Settings
) -> None:
    port = foyer.coap_port
    assert port is not None
    ok = await coap_post(
        port, "meters/m-2/readings", pack("m-2", {"n": "volume", "u": "l", "v": 42})
    )
    assert "4." not in ok and "5." not in ok
    bad = await coap_post(
        port, "meters/m-2/readings", pack("m-2", {"n": "volume", "u": "m3", "vs": "x"})
    )
    assert "4.00" in bad and "volume needs a numeric value" in bad
    unknown = await coap_post(
        port, "meters/nobody/readings", pack("nobody", {"n": "volume", "v": 1})
    )
    assert "4.03" in unknown
    unsupported = await coap_post(port, "meters/m-2/readings", b"{}", fmt="50")
    assert "4.15" in unsupported
    rows = influx_query(influxdb, settings.influx_db, "SELECT * FROM meter_index")
    assert [(r["device_id"], r["index_l"], r["time"]) for r in rows] == [("m-2", 42, NOW * 10**9)]


async def test_coap_retransmission_is_answered_and_stored_once(
    foyer: Foyer, influxdb: InfluxDB, settings: Settings
) -> None:
    # A hand-built confirmable POST (RFC 7252 §3), sent twice with the same message id
    # as a device whose ACK was lost would.
    payload = pack("m-1", {"n": "volume", "u": "l", "v": 77})
    header = bytes([0x41, 0x02, 0x12, 0x34, 0xAA])  # ver 1, CON, TKL 1, POST, MID 0x1234, token
    options = bytes([0xB6]) + b"meters" + bytes([0x03]) + b"m-1" + bytes([0x08]) + b"readings"
    options += bytes([0x11, 110])  # Content-Format (12) = 110
    datagram = header + options + b"\xff" + payload

    def exchange_twice() -> list[bytes]:  # blocking socket: runs off the server's loop
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            answers = []
            for _ in range(2):
                sock.sendto(datagram, ("127.0.0.1", foyer.coap_port or 0))
                answers.append(sock.recv(1500))
            return answers

    answers = await asyncio.to_thread(exchange_twice)
    assert all(a[1] == 0x44 for a in answers)  # 2.04 Changed, both times
    rows = influx_query(influxdb, settings.influx_db, "SELECT * FROM meter_index")
    assert [(r["device_id"], r["index_l"]) for r in rows] == [("m-1", 77)]
    assert counter(foyer, "foyer_messages_received_total", transport="coap") == 1.0
