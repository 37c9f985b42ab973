"""Load generators for tests/bench.py, run as child processes.

    python -m tests.bench_publisher mqtt URL FIRST COUNT RECORDS BASE_S DEVICES
    python -m tests.bench_publisher coap URL SECONDS CONCURRENCY BASE_S DEVICES

Each prints one JSON line with its figures on stdout and exits. Everything is bounded:
the MQTT publisher gives up waiting for PUBACKs after ACK_TIMEOUT_S, the CoAP client
stops issuing requests after SECONDS and abandons stragglers after a further grace.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

CONTENT_TYPE = "application/senml+json"
ACK_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10.0


def device_id(n: int) -> str:
    return f"m-{n:04d}"


def pack(device: str, first_t: int, records: int, value: float) -> bytes:
    """A SenML pack of `records` volume readings at first_t, first_t+1, ... (seconds)."""
    head = f'{{"bn":"urn:dev:foyer:{device}:","n":"volume","u":"m3","v":{value:.3f},"t":{first_t}}}'
    rest = [
        f'{{"n":"volume","u":"m3","v":{value + 0.001 * j:.3f},"t":{first_t + j}}}'
        for j in range(1, records)
    ]
    return ("[" + ",".join([head, *rest]) + "]").encode()


def mqtt_times(i: int, records: int, devices: int, base_s: int) -> tuple[str, int]:
    """Message i: its device and the time of its first record; (device, time) never repeat."""
    return device_id(i % devices), base_s + (i // devices) * records


def run_mqtt(
    url: str, first: int, count: int, records: int, base_s: int, devices: int
) -> dict[str, Any]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    parts = urlsplit(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"bench-pub-{first}-{time.monotonic_ns()}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)  # unbounded; count is bounded by the caller
    connected = threading.Event()
    done = threading.Event()
    acked = 0
    failed = 0
    lock = threading.Lock()

    def on_connect(_c, _u, _f, rc, _p):  # type: ignore[no-untyped-def]
        if not rc.is_failure:
            connected.set()

    def on_publish(_c, _u, _mid, rc, _p):  # type: ignore[no-untyped-def]
        nonlocal acked, failed
        with lock:
            acked += 1
            if rc.is_failure:
                failed += 1
            if acked >= count:
                done.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, 60)
    client.loop_start()
    try:
        if not connected.wait(CONNECT_TIMEOUT_S):
            raise RuntimeError("publisher could not connect")
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = CONTENT_TYPE
        payloads = []
        for i in range(first, first + count):
            dev, t = mqtt_times(i, records, devices, base_s)
            payloads.append((f"meters/{dev}/readings", pack(dev, t, records, 12.345)))
        cpu0 = time.process_time()
        t0 = time.time()
        for topic, payload in payloads:
            client.publish(topic, payload, qos=1, properties=props)
        t_sent = time.time()
        all_acked = done.wait(ACK_TIMEOUT_S)
        t_acked = time.time()
        cpu = time.process_time() - cpu0
    finally:
        client.disconnect()
        client.loop_stop()
    return {
        "first": first,
        "count": count,
        "t_first_publish": t0,
        "t_last_publish_call": t_sent,
        "t_all_puback": t_acked,
        "pubacks": acked,
        "puback_failures": failed,
        "all_acked": all_acked,
        "cpu_s": cpu,
    }


async def _coap(
    url: str, seconds: float, concurrency: int, base_s: int, devices: int
) -> dict[str, Any]:
    import aiocoap
    from aiocoap.numbers.codes import Code

    # aiocoap keeps NSTART=1 per remote endpoint *per context*: one context sends one
    # confirmable request at a time to the server. A real fleet is many endpoints, so
    # each concurrent client gets its own context (its own UDP socket and port).
    contexts = [await aiocoap.Context.create_client_context() for _ in range(concurrency)]
    codes: dict[str, int] = {}
    errors: dict[str, int] = {}
    latencies: list[float] = []
    seq = 0
    deadline = time.monotonic() + seconds

    async def one_client(ctx: aiocoap.Context) -> None:
        nonlocal seq
        while time.monotonic() < deadline:
            n = seq
            seq += 1
            dev = device_id(n % devices)
            t = base_s + n // devices
            msg = aiocoap.Message(
                code=Code.POST,
                transport_tuning=aiocoap.Reliable,  # confirmable
                uri=f"{url}/meters/{dev}/readings",
                payload=pack(dev, t, 1, 12.345),
                content_format=110,
            )
            start = time.monotonic()
            try:
                resp = await ctx.request(msg).response
            except Exception as err:  # noqa: BLE001 - counted, the load goes on
                errors[type(err).__name__] = errors.get(type(err).__name__, 0) + 1
                continue
            latencies.append(time.monotonic() - start)
            key = str(resp.code)
            codes[key] = codes.get(key, 0) + 1

    cpu0 = time.process_time()
    t0 = time.time()
    tasks = [asyncio.create_task(one_client(ctx)) for ctx in contexts]
    _, pending = await asyncio.wait(tasks, timeout=seconds + 30)
    for task in pending:
        task.cancel()
    t1 = time.time()
    cpu = time.process_time() - cpu0
    for ctx in contexts:
        await ctx.shutdown()
    latencies.sort()

    def q(p: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else None

    return {
        "sent": seq,
        "responses": sum(codes.values()),
        "codes": codes,
        "errors": errors,
        "abandoned": len(pending),
        "t_start": t0,
        "t_end": t1,
        "latency_p50_s": q(0.50),
        "latency_p99_s": q(0.99),
        "cpu_s": cpu,
    }


def main(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "mqtt":
        url, first, count, records, base_s, devices = argv[1:7]
        out = run_mqtt(url, int(first), int(count), int(records), int(base_s), int(devices))
    elif kind == "coap":
        url, seconds, concurrency, base_s, devices = argv[1:6]
        out = asyncio.run(_coap(url, float(seconds), int(concurrency), int(base_s), int(devices)))
    else:
        print(f"unknown load kind {kind!r}", file=sys.stderr)
        return 2
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
