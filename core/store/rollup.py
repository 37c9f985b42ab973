"""InfluxQL reads and writes of the water-use rollup (docs/schema.md, "Downsampled water use").

Thin: queries in, plain values out; meters/rollup.py computes, core/rollup_job.py drives.
Reads go to the default retention policy (`raw`), writes to `rollup`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.errors import StoreUnavailable
from core.records import METER_INDEX, Record
from core.store.influx import InfluxStore
from meters.rollup import CommuneUse, Use

ROLLUP_RP = "rollup"
WATER_USE_1H = "water_use_1h"
WATER_USE_1D = "water_use_1d"
COMMUNE_WATER_USE_1H = "commune_water_use_1h"
COMMUNE_WATER_USE_1D = "commune_water_use_1d"
WRITE_BATCH = 5_000  # lines per /write, as the ingest writer's batches


async def hourly_last_index(
    store: InfluxStore, device_ids: Sequence[str], start_ns: int, end_ns: int
) -> dict[str, list[tuple[int, int]]]:
    """device -> [(hour start, last index_l of that hour)] in [start_ns, end_ns)."""
    q = (
        f'SELECT last("index_l") FROM "{METER_INDEX}" WHERE ({_any_device(device_ids)}) '  # noqa: S608
        f"AND time >= {start_ns} AND time < {end_ns} "
        'GROUP BY time(1h), "device_id" fill(none)'
    )
    out: dict[str, list[tuple[int, int]]] = {}
    for series in _series(await _query(store, q)):
        device = series["tags"]["device_id"]
        out[device] = [(int(t), int(v)) for t, v in series["values"] if v is not None]
    return out


async def last_index_before(
    store: InfluxStore, device_ids: Sequence[str], since_ns: int, before_ns: int
) -> dict[str, int]:
    """device -> its last index_l in [since_ns, before_ns): the baseline of the window."""
    q = (
        f'SELECT last("index_l") FROM "{METER_INDEX}" WHERE ({_any_device(device_ids)}) '  # noqa: S608
        f'AND time >= {since_ns} AND time < {before_ns} GROUP BY "device_id"'
    )
    return {s["tags"]["device_id"]: int(s["values"][0][1]) for s in _series(await _query(store, q))}


async def last_rollup_hour(store: InfluxStore) -> int | None:
    """The start of the latest hour the rollup wrote, or None on a fresh database."""
    q = f'SELECT last("litres") FROM "{ROLLUP_RP}"."{COMMUNE_WATER_USE_1H}"'  # noqa: S608
    series = _series(await _query(store, q))
    return int(series[0]["values"][0][0]) if series else None


async def write_uses(store: InfluxStore, measurement: str, uses: Sequence[Use]) -> None:
    records = [
        Record(
            measurement, u.device_id, u.start_ns, (("litres", u.litres),), (("commune", u.commune),)
        )
        for u in uses
    ]
    await _write(store, records)


async def write_communes(store: InfluxStore, measurement: str, uses: Sequence[CommuneUse]) -> None:
    # No device_id: the line-protocol serializer leaves an empty tag out.
    records = [
        Record(
            measurement,
            "",
            u.start_ns,
            (("litres", u.litres), ("meters", u.meters)),
            (("commune", u.commune),),
        )
        for u in uses
    ]
    await _write(store, records)


async def _write(store: InfluxStore, records: Sequence[Record]) -> None:
    for i in range(0, len(records), WRITE_BATCH):
        await store.write(records[i : i + WRITE_BATCH], rp=ROLLUP_RP)


async def _query(store: InfluxStore, q: str) -> dict[str, Any]:
    # POST: a chunk of device ids makes a query too long for a URL.
    data = await store.influxql(q, method="POST")
    errors = [r["error"] for r in data.get("results", []) if "error" in r]
    if errors:
        raise StoreUnavailable(f"influxdb refused the rollup query: {errors[0][:200]}")
    return data


def _any_device(device_ids: Sequence[str]) -> str:
    # Registry ids are A-Z a-z 0-9 - _ . (PROTOCOL.md); quoted all the same.
    return " OR ".join(f'"device_id" = {_quote(d)}' for d in device_ids)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _series(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for result in data.get("results", []) for s in result.get("series", [])]
