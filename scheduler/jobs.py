"""Every scheduled job, listed here and nowhere else, each with a stable id and safe to run
twice (no job registers itself on import: a forgotten import would be a silent non-job).

| id | when | what |
|---|---|---|
| `inbox-replay` | every minute | handle webhook messages stored but not handled (a crash) |
| `evidence-sweep` | daily, 02:30 WIB | delete blobs no file or unsent outbox row names |
| `reminders` | every minute | write the reminders and escalations due now (docs/reminders.md) |
| `retention-prune` | daily, 03:00 WIB | delete old processed inbox, sent/failed outbox rows |
| `sqlite-optimize` | daily, 03:30 WIB | SQLite `PRAGMA optimize`: planner statistics |
| `broadcast-progress` | every 5 s | broadcasts: write their rows (resumes), progress, report |
| `recap-requests` | every 2 s | make the /rekap files and ZIPs asked for in chat (recaps.py) |

The outbox sender needs no job: it wakes itself when rows are written and polls for retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Capabilities, Channel
from bot.engine.dispatch import Engine
from scheduler.broadcasts import advance_broadcasts
from scheduler.outbox import process_owner
from scheduler.recaps import RecapJob
from scheduler.reminders import ReminderTicker, phone_channel
from storage import retention
from storage.db import transaction
from storage.evidence import EvidenceStore
from storage.evidence.references import referenced_keys
from storage.types import utcnow

log = logging.getLogger(__name__)

# Quiet hours for housekeeping, in the time zone most users (and most servers) are in.
HOUSEKEEPING_TIMEZONE = "Asia/Jakarta"
DEFAULT_RETENTION = timedelta(days=90)
# Rows deleted per transaction: each batch holds SQLite's write lock for milliseconds, so the
# bot's turns slip in between batches.
PRUNE_BATCH = 1000


@dataclass(frozen=True)
class Job:
    """Runs every `seconds`, or, with `daily_at` ("HH:MM"), once a day at that local time."""

    id: str
    run: Callable[[], Awaitable[object]]
    seconds: int | None = None
    daily_at: str | None = None


def scheduled_jobs(
    *,
    engine: Engine,
    sessions: async_sessionmaker[AsyncSession],
    store: EvidenceStore,
    retention_age: timedelta = DEFAULT_RETENTION,
) -> list[Job]:
    """The one list."""

    async def sweep() -> int:
        return await sweep_unreferenced_evidence(sessions=sessions, store=store)

    async def prune() -> int:
        return await prune_old_messages(sessions=sessions, older_than=retention_age)

    async def optimize() -> bool:
        return await refresh_statistics(sessions=sessions)

    async def broadcasts_step() -> int:
        return await advance_broadcasts(sessions, wakeup=engine.outbox_ready)

    def capabilities(channel: str) -> Capabilities | None:
        known = {member.value: member for member in Channel}
        adapter = engine.channels.get(known[channel]) if channel in known else None
        return adapter.capabilities if adapter is not None else None

    reminders = ReminderTicker(
        sessions=sessions, wakeup=engine.outbox_ready, phone_channel=phone_channel(engine.channels)
    )
    recaps = RecapJob(
        sessions=sessions,
        store=store,
        owner=process_owner(),
        capabilities=capabilities,
        wakeup=engine.outbox_ready,
    )
    return [
        Job(id="inbox-replay", seconds=60, run=engine.replay_stored),
        Job(id="evidence-sweep", daily_at="02:30", run=sweep),
        Job(id="reminders", seconds=60, run=reminders.tick),
        Job(id="broadcast-progress", seconds=5, run=broadcasts_step),
        # Often: the asker was told "being prepared" and waits for the files.
        Job(id="recap-requests", seconds=2, run=recaps.tick),
        Job(id="retention-prune", daily_at="03:00", run=prune),
        Job(id="sqlite-optimize", daily_at="03:30", run=optimize),
    ]


async def prune_old_messages(
    *,
    sessions: async_sessionmaker[AsyncSession],
    older_than: timedelta,
    now: datetime | None = None,
    batch_size: int = PRUNE_BATCH,
) -> int:
    """Delete processed inbox rows and finished outbox rows older than `older_than`, one short
    transaction per batch (ids found by a read that takes no lock). Returns how many."""
    before = (now or utcnow()) - older_than
    kinds = (
        (retention.prunable_inbox_ids, retention.delete_inbox_rows),
        (retention.prunable_outbox_ids, retention.delete_outbox_rows),
    )
    deleted = 0
    for find, remove in kinds:
        while True:
            async with sessions() as session:
                ids = await find(session=session, before=before, limit=batch_size)
            if not ids:
                break
            async with transaction(sessions) as session:
                deleted += await remove(session=session, ids=ids, before=before)
            if len(ids) < batch_size:
                break
    if deleted:
        log.info("retention: pruned %d message rows older than %s", deleted, older_than)
    return deleted


async def refresh_statistics(*, sessions: async_sessionmaker[AsyncSession]) -> bool:
    async with transaction(sessions) as session:
        return await retention.refresh_statistics(session=session)


async def sweep_unreferenced_evidence(
    *, sessions: async_sessionmaker[AsyncSession], store: EvidenceStore
) -> int:
    """Delete blobs that no file row refers to and no outbox row still to be sent carries. The
    store spares blobs younger than its grace period (an hour by default), so an upload whose
    row is not committed yet survives, and so does a recap file made just before its outbox
    row is written."""
    async with sessions() as session:
        keep = await referenced_keys(session=session)
    deleted = await store.delete_unreferenced(keep)
    if deleted:
        log.info("evidence sweep deleted %d unreferenced blobs", deleted)
    return deleted


class JobRuns:
    """The job runs in hand, so that a graceful stop lets them finish. APScheduler's asyncio
    executor cancels every run in flight at shutdown (it cannot wait there), which cuts a query
    mid-way: SQLAlchemy's pool then logs the cancelled connection close as an error."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[object]] = set()

    def tracked(self, run: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
        async def tracked_run() -> object:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                return await run()
            finally:
                if task is not None:
                    self._running.discard(task)

        return tracked_run

    @property
    def in_hand(self) -> int:
        return len(self._running)

    async def settle(self) -> None:
        """Until every run in hand has ended (bound it from outside: `asyncio.wait_for`)."""
        while self._running:
            await asyncio.wait(set(self._running))

    async def cancel(self) -> None:
        """Cut short what is still running, and wait until it has stopped."""
        running = set(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)


def build_scheduler(jobs: list[Job], runs: JobRuns | None = None) -> AsyncIOScheduler:
    """`runs`: each job's runs are tracked there (for a graceful stop)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    for job in jobs:
        run = runs.tracked(job.run) if runs is not None else job.run
        common = {
            "id": job.id,
            "replace_existing": True,
            "coalesce": True,  # after a pause, run once, not once per missed tick
            "max_instances": 1,
        }
        if job.daily_at is not None:
            hour, minute = (int(part) for part in job.daily_at.split(":"))
            scheduler.add_job(
                run,
                "cron",
                hour=hour,
                minute=minute,
                timezone=HOUSEKEEPING_TIMEZONE,
                misfire_grace_time=3600,
                **common,
            )
        else:
            scheduler.add_job(run, "interval", seconds=job.seconds, **common)
    return scheduler
