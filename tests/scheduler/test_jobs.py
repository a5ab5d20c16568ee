"""The scheduled jobs: one list with stable ids, and the daily evidence sweep."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from bot.engine.events import OutFile, OutText, outgoing_to_payload
from scheduler.jobs import (
    Job,
    JobRuns,
    build_scheduler,
    scheduled_jobs,
    sweep_unreferenced_evidence,
)
from storage import outbox
from storage.db import transaction
from storage.evidence import LocalEvidenceStore
from storage.models import (
    EvidenceFile,
    EvidenceRequirement,
    OutboxMessage,
    OutboxStatus,
    Submission,
)
from tests.support.factories import make_world
from tests.support.jobs import IdleEngine

WIB = ZoneInfo("Asia/Jakarta")


def _age(store: LocalEvidenceStore, key: str, hours: float) -> None:
    past = time.time() - hours * 3600
    os.utime(store.root / key, (past, past))


async def test_every_job_has_a_unique_stable_id(sessions, tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    jobs = scheduled_jobs(engine=IdleEngine(), sessions=sessions, store=store)  # type: ignore[arg-type]
    assert [job.id for job in jobs] == [
        "inbox-replay",
        "evidence-sweep",
        "reminders",
        "broadcast-progress",
        "recap-requests",
        "retention-prune",
        "sqlite-optimize",
    ]
    scheduler = build_scheduler(jobs)
    assert {job.id for job in scheduler.get_jobs()} == {job.id for job in jobs}


async def test_the_sweep_runs_daily_at_half_past_two_in_jakarta(sessions, tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    jobs = scheduled_jobs(engine=IdleEngine(), sessions=sessions, store=store)  # type: ignore[arg-type]
    trigger = build_scheduler(jobs).get_job("evidence-sweep").trigger
    after_it = datetime(2026, 12, 1, 3, 0, tzinfo=WIB)
    assert trigger.get_next_fire_time(None, after_it) == datetime(2026, 12, 2, 2, 30, tzinfo=WIB)
    before_it = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)  # 03:00 WIB the next day
    next_fire = trigger.get_next_fire_time(None, before_it)
    assert next_fire.astimezone(WIB) == datetime(2026, 12, 2, 2, 30, tzinfo=WIB) + timedelta(days=1)


async def test_sweep_keeps_what_a_row_names_and_what_is_young(sessions, tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path / "evidence", gc_grace=timedelta(hours=1))
    named = await store.put(b"original photo", extension="jpg")
    display = await store.put(b"display copy", extension="jpg")
    orphan = await store.put(b"upload whose turn never committed", extension="pdf")
    young = await store.put(b"upload still in flight", extension="pdf")
    for key in (named, display, orphan):
        _age(store, key, hours=3)
    async with sessions() as session:
        world = await make_world(session)
        submission = Submission(
            action_id=world.action.id, office_id=world.office.id, period_id=world.period.id
        )
        session.add(submission)
        await session.flush()
        requirement = (await session.exec(select(EvidenceRequirement))).first()
        assert requirement is not None
        session.add(
            EvidenceFile(
                submission_id=submission.id,
                requirement_id=requirement.id,
                sha256="0" * 64,
                detected_mime="image/jpeg",
                kind="photo",
                size=14,
                storage_key=named,
                display_key=display,
            )
        )
        await session.commit()

    assert await sweep_unreferenced_evidence(sessions=sessions, store=store) == 1
    assert not await store.exists(orphan)
    for kept in (named, display, young):
        assert await store.exists(kept)
    assert await sweep_unreferenced_evidence(sessions=sessions, store=store) == 0  # twice is safe


async def test_a_recap_file_waiting_in_the_outbox_survives_the_sweep(
    sessions, tmp_path: Path
) -> None:
    """A recap's chart is named by no evidence row: the outbox row still to be sent (pending,
    sending, or given back for a retry) keeps it past the grace; once sent, it goes."""
    store = LocalEvidenceStore(tmp_path / "evidence", gc_grace=timedelta(hours=1))
    chart = await store.put(b"\x89PNG recap chart", extension="png")
    workbook = await store.put(b"PK recap workbook", extension="xlsx")
    for key in (chart, workbook):
        _age(store, key, hours=3)
    async with transaction(sessions) as session:
        for key, status, attempts in (
            (chart, OutboxStatus.pending, 2),  # a send that failed and waits for its retry
            (workbook, OutboxStatus.sending, 1),
        ):
            row = outbox.enqueue(
                session=session,
                idempotency_key=f"recap:1:{key[-4:]}",
                channel="telegram",
                recipient="42",
                payload=outgoing_to_payload(OutFile(storage_key=key, filename="rekap.png")),
            )
            row.status, row.attempts = status, attempts
        outbox.enqueue(  # a text row: no storage key to read
            session=session,
            idempotency_key="recap:1:text",
            channel="telegram",
            recipient="42",
            payload=outgoing_to_payload(OutText(text="Rekap sedang disiapkan")),
        )
    assert await sweep_unreferenced_evidence(sessions=sessions, store=store) == 0
    assert await store.exists(chart) and await store.exists(workbook)

    async with transaction(sessions) as session:
        await session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.idempotency_key).startswith("recap:1:"))
            .values(status=OutboxStatus.sent)
        )
    assert await sweep_unreferenced_evidence(sessions=sessions, store=store) == 2
    assert not await store.exists(chart) and not await store.exists(workbook)


# --------------------------------------------------------------------------- a graceful stop


async def test_a_graceful_stop_lets_a_job_run_in_hand_finish() -> None:
    """APScheduler cancels job runs in flight at shutdown; a run tracked by JobRuns is waited
    for instead, so a query is never cut mid-way (the pool logged that as an error)."""
    runs = JobRuns()
    reached, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def job() -> None:
        reached.set()
        await release.wait()  # a query in flight
        finished.append("done")

    run = asyncio.create_task(runs.tracked(job)())
    await reached.wait()
    assert runs.in_hand == 1
    settling = asyncio.create_task(runs.settle())
    await asyncio.sleep(0)
    assert not settling.done()  # still waiting for the run
    release.set()
    await settling
    assert finished == ["done"] and not run.cancelled() and runs.in_hand == 0


async def test_a_job_run_past_the_bound_is_cut_short() -> None:
    runs = JobRuns()
    reached = asyncio.Event()

    async def stuck() -> None:
        reached.set()
        await asyncio.Event().wait()

    run = asyncio.create_task(runs.tracked(stuck)())
    await reached.wait()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(runs.settle(), timeout=0)
    await runs.cancel()
    assert run.cancelled() and runs.in_hand == 0


def test_the_scheduler_runs_the_tracked_jobs() -> None:
    runs = JobRuns()

    async def job() -> None:
        return None

    scheduler = build_scheduler([Job(id="one", seconds=60, run=job)], runs)
    [scheduled] = scheduler.get_jobs()
    assert scheduled.func is not job  # the tracked wrapper: its runs are counted in `runs`
