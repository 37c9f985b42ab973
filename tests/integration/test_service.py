"""The composition root's schedule: every job is scheduled, none is left paused."""

from __future__ import annotations

from pathlib import Path

from core.service import running
from core.settings import Settings


async def test_every_scheduled_job_is_due_to_run(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", coap_bind="", http_bind="127.0.0.1:0")
    async with running(settings) as foyer:
        assert foyer.scheduler is not None
        jobs = {job.id: job for job in foyer.scheduler.get_jobs()}
        paused = [job_id for job_id, job in jobs.items() if job.next_run_time is None]
    assert paused == []
    assert {
        "directory-refresh",
        "first-contact",
        "care-score",
        "care-escalate",
        "care-retrain-nightly",
    } <= set(jobs)
