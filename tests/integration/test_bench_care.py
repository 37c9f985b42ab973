"""The care scoring benchmark at a tiny size, so the 100,000-household case cannot rot."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from alerts import rhythm, scoring
from core.records import METER_INDEX, Record
from core.store.lineprotocol import to_line
from tests.bench_care import Persona, _lines, meter_id, persona_pool, report, run_care_case


def test_bench_lines_are_what_the_store_adapter_writes() -> None:
    p = Persona("P", 900, np.array([1_741_165_200_000_000_000]), np.array([12]), b"{}", 0.0)
    record = Record(METER_INDEX, meter_id(7), 1_741_165_200_000_000_000, (("index_l", 112),))
    assert _lines(7, p, 100) == to_line(record) + "\n"


async def test_care_bench_scores_every_healthy_household_and_opens_no_alert(
    tmp_path: Path,
) -> None:
    r = await run_care_case(tmp_path, 50, personas=10, passes=2)
    assert [p["scored"] for p in r["passes"]] == [50, 50]
    assert r["alerts"] == {}  # healthy personas, trained on their own 8 weeks
    assert r["points"] > 50 * 72  # three days of hourly frames at least
    assert all(p["wall_s"] > 0 and p["households_per_s"] > 0 for p in r["passes"])
    assert r["peak_rss_mb"] > 0 and r["train_s_each"] > 0
    out = io.StringIO()
    report(r, out)
    assert "care_scoring" in out.getvalue()


def test_scoring_keeps_the_bench_models_compressed_and_gives_them_back_equal() -> None:
    for p in persona_pool(3, seed=2):
        model = rhythm.RhythmModel.from_dict(json.loads(p.model_json))
        packed = scoring._Packed.of(model)
        assert packed.model() == model
        assert len(packed.exceed) < len(p.model_json) / 10
