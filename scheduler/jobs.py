"""Every scheduled job, listed here and nowhere else, each with a stable id and safe to run
twice (no job registers itself on import: a forgotten import would be a silent non-job)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from apscheduler.schedulers.asyncio import AsyncIOScheduler


@dataclass(frozen=True)
class Job:
    id: str
    seconds: int
    run: Callable[[], Awaitable[object]]


def build_scheduler(jobs: list[Job]) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job in jobs:
        scheduler.add_job(
            job.run,
            "interval",
            seconds=job.seconds,
            id=job.id,
            replace_existing=True,
            coalesce=True,  # after a pause, run once, not once per missed tick
            max_instances=1,
        )
    return scheduler
