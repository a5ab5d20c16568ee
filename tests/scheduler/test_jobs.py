"""The scheduled jobs: one list with stable ids, and the daily evidence sweep."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import select

from scheduler.jobs import build_scheduler, scheduled_jobs, sweep_unreferenced_evidence
from storage.evidence import LocalEvidenceStore
from storage.models import EvidenceFile, EvidenceRequirement, Submission
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
