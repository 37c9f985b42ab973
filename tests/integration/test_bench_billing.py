"""The billing benchmark case at a tiny size, so `make bench` cannot rot unnoticed."""

from __future__ import annotations

import io
from pathlib import Path

from tests.bench_billing import report, run_billing_case


async def test_billing_bench_case_at_30_households_accounts_for_every_household(
    tmp_path: Path,
) -> None:
    progress = io.StringIO()
    r = await run_billing_case(tmp_path, 30, sample=5, progress=progress)
    billed = r["households_billed"] - r["cannot_price"]
    assert 0 < billed <= 30
    assert r["invoices"] + r["carried"] + r["cancelled"] == billed
    assert r["invoices"] == r["bills_to_issue"]
    assert r["lifts"] > 0 and r["deposits"] > 0
    assert r["lines"] >= 2 * r["invoices"]  # at least the household part and one other
    assert r["preview_s"] > 0 and r["issue_s"] > 0 and r["peak_rss_mb"] > 0
    assert r["pdf_sample"] == 5 and r["pdf_render_per_s"] > 0 and r["pdf_render_many_per_s"] > 0
    assert all(isinstance(n, int) and n > 0 for n in r["anomalies"].values())
    # the progress line ends both stages on "total/total households"
    assert f"compute: {billed}/{billed} households" in progress.getvalue()
    assert "issue: " in progress.getvalue()
    out = io.StringIO()
    report(r, out)
    assert "billing_run" in out.getvalue() and "render_many" in out.getvalue()


async def test_billing_bench_case_for_a_year_bills_the_calendar_year_on_the_yearly_grid(
    tmp_path: Path,
) -> None:
    r = await run_billing_case(tmp_path, 30, sample=2, period="year", progress=io.StringIO())
    assert r["period"] == "2024"
    billed = r["households_billed"] - r["cannot_price"]
    assert 0 < billed <= 30
    assert r["invoices"] + r["carried"] + r["cancelled"] == billed
    # events across the whole year: about twice a semester's at the same size and seed
    (tmp_path / "s1").mkdir()
    semester = await run_billing_case(tmp_path / "s1", 30, sample=1, progress=io.StringIO())
    assert semester["period"] == "2024-S1"
    assert 1.6 * semester["lifts"] < r["lifts"] < 2.4 * semester["lifts"]
    assert 1.6 * semester["deposits"] < r["deposits"] < 2.4 * semester["deposits"]
