"""The ingestion scale report (tests/bench_scale.py) at tiny sizes: each case runs end to
end against real servers and worker processes, loses nothing and reports its figures."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench_scale import CASES, Params, run, slope_per_s, soak_verdict

TINY = Params(
    workers=[2],
    workers_msgs=84,  # 2,016 records
    pack_records=24,
    devices=100,
    publishers=2,
    soak_rate=1200,  # records/s: 50 packs/s, far below one worker's maximum
    soak_s=12,
    soak_sample_s=1.5,
    soak_flat_mb=5,
    catchup_readings=5000,
    adopt_rate=1200,
    adopt_s=16,
    adopt_after_s=3,
)


def test_the_four_cases_lose_nothing_and_write_their_report(tmp_path: Path) -> None:
    out = tmp_path / "bench-scale.json"
    results = run(TINY, CASES, out)

    assert results["errors"] == []
    assert json.loads(out.read_text()) == results
    assert {"cpu_model", "nproc", "ram_mb", "load_avg"} <= set(results["machine"])

    (workers,) = results["workers"]
    assert workers["completed"] and workers["lost"] == 0
    assert workers["points_in_influxdb"] == workers["records"] == 84 * 24
    # The broker split the shared subscription: each worker stored a share.
    assert all(n > 0 for n in workers["records_per_worker"])
    assert sum(workers["records_per_worker"]) == workers["records"]
    assert {"worker0", "worker1", "mosquitto", "influxd", "publishers"} <= set(workers["cpu_s"])
    assert workers["ack_latency_p50_s"] is not None

    soak = results["soak"]
    assert soak["lost"] == 0 and soak["points_in_influxdb"] == soak["records"]
    assert len(soak["samples"]) >= 6  # one every 1.5 s for 12 s
    assert all(s["rss_mb"] > 0 for s in soak["samples"])
    assert soak["verdict"] in ("flat", "growing")
    assert soak["rss_slope_second_half_mb_per_10min"] is not None

    adoption = results["adoption"]
    assert adoption["lost"] == 0 and adoption["points_in_influxdb"] == adoption["records"]
    assert adoption["adopted"] == 1  # the survivor took the killed worker's session
    assert adoption["all_stored_after_kill_s"] >= adoption["stream_after_kill_s"]

    catchup = results["catchup"]
    assert catchup["lost"] == 0 and catchup["points_in_influxdb"] == catchup["readings"] >= 5000
    # They went through the spool while InfluxDB was down, and were replayed from it.
    assert catchup["spool_batches"] > 0 and catchup["spool_bytes_on_disk"] > 0
    assert catchup["replayed_batches"] >= catchup["spool_batches"]
    assert catchup["replay_records_per_s"] is not None


def test_the_least_squares_slope_of_a_line_is_its_slope() -> None:
    assert slope_per_s([(0, 1.0), (10, 2.0), (20, 3.0)]) == 0.1
    assert slope_per_s([(0, 5.0)]) is None


def sample(t: float, rss: float, queue: int = 0, spool: int = 0) -> dict[str, float]:
    return {"t_s": t, "rss_mb": rss, "write_queue": queue, "spool_batches": spool}


def test_the_soak_is_flat_only_when_memory_and_queue_stay_put() -> None:
    steady = [sample(t, 100 + (t % 20) / 100) for t in range(0, 600, 10)]
    assert soak_verdict(steady, flat_mb=5, queue_bound=50)["verdict"] == "flat"
    # 1 MB a minute over the second half: 10 MB per 10 minutes.
    leaking = [sample(t, 100 + max(0, t - 300) / 60) for t in range(0, 600, 10)]
    verdict = soak_verdict(leaking, flat_mb=5, queue_bound=50)
    assert verdict["verdict"] == "growing"
    assert round(verdict["rss_slope_second_half_mb_per_10min"]) == 10
    backlog = [sample(t, 100, queue=t) for t in range(0, 600, 10)]
    assert soak_verdict(backlog, flat_mb=5, queue_bound=50)["verdict"] == "growing"
    spooling = [sample(t, 100, spool=1 if t == 300 else 0) for t in range(0, 600, 10)]
    assert soak_verdict(spooling, flat_mb=5, queue_bound=50)["verdict"] == "growing"
