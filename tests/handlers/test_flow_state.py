"""What the report flow says about a report's state: a revision beside the submitted version, a
closed period, a date far from the period's year, and the texts around them (issue #12)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import console_greeting
from storage import oversight
from storage.demo import seed_demo
from storage.models import (
    Answer,
    Contact,
    EvidenceFile,
    Role,
    Submission,
    SubmissionStatus,
)
from storage.periods import deadline
from storage.types import utcnow
from tests.support.factories import FOCAL_PHONE, World, make_world
from tests.support.harness import Harness, jpeg_bytes

Sessions = async_sessionmaker[AsyncSession]


async def _world(sessions: Sessions) -> World:
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    return world


async def _registered(sessions: Sessions, data_dir: Path) -> Harness:
    h = Harness(sessions, data_dir)
    await h.text("halo")
    await h.contact(FOCAL_PHONE)
    return h


async def _submit_simple_action(h: Harness, world: World) -> None:
    """Report the one-measure action (a number and a photo) and submit it."""
    await h.text("/lapor")
    await h.choose(f"a:{world.second_action.id}")
    await h.text("5")
    await h.file(jpeg_bytes(), "kegiatan.jpg", photo=True)
    reply = await h.text("/selesai")
    assert "Semua sudah lengkap" in reply
    await h.choose("submit")
    assert "terkirim" in await h.choose("yes")


async def _coordinator_submitted(sessions: Sessions, world: World) -> int:
    async with sessions() as session:
        coordinator = await session.get(Contact, world.coordinator.id)
        assert coordinator is not None
        rows = await oversight.status_counts(session=session, contact=coordinator, now=utcnow())
    return sum(row.submitted for row in rows)


async def test_an_abandoned_revision_leaves_the_submitted_version_counting(
    sessions: Sessions, data_dir: Path
) -> None:
    world = await _world(sessions)
    h = await _registered(sessions, data_dir)
    await _submit_simple_action(h, world)

    await h.text("/lapor")
    reply = await h.choose(f"a:{world.second_action.id}")
    assert "sudah terkirim" in reply
    await h.choose("reopen")
    await h.text("7")  # a changed answer in the revision, then the user walks away
    await h.text("/batal")

    reply = await h.text("/status")
    assert "Terkirim 1 dari 2" in reply
    assert "revisi" in reply  # the draft beside it is visible too
    assert await _coordinator_submitted(sessions, world) == 1
    async with sessions() as session:
        submission = (
            await session.exec(
                select(Submission).where(Submission.action_id == world.second_action.id)
            )
        ).one()
        assert submission.status is SubmissionStatus.submitted
        assert submission.revision_open


async def test_a_revision_counts_once_it_is_submitted_itself(
    sessions: Sessions, data_dir: Path
) -> None:
    world = await _world(sessions)
    h = await _registered(sessions, data_dir)
    await _submit_simple_action(h, world)
    await h.text("/lapor")
    await h.choose(f"a:{world.second_action.id}")
    await h.choose("reopen")
    await h.text("/batal")

    # Back later: the open revision is resumed, not reopened a second time.
    await h.text("/lapor")
    reply = await h.choose(f"a:{world.second_action.id}")
    assert "revisi" in reply.lower()
    await h.text("8")
    await h.text("/selesai")
    await h.choose("submit")
    reply = await h.choose("yes")
    assert "versi 2" in reply
    async with sessions() as session:
        submission = (
            await session.exec(
                select(Submission).where(Submission.action_id == world.second_action.id)
            )
        ).one()
        assert submission.status is SubmissionStatus.submitted
        assert not submission.revision_open
        assert submission.version == 2
    reply = await h.text("/status")
    assert "Terkirim 1 dari 2" in reply and "revisi" not in reply


# --- texts (item 11) ---------------------------------------------------------------------------


async def test_a_measure_is_called_ukuran_keberhasilan(sessions: Sessions, data_dir: Path) -> None:
    world = await _world(sessions)
    h = await _registered(sessions, data_dir)
    await h.text("/lapor")
    reply = await h.choose(f"a:{world.second_action.id}")
    assert "Ukuran keberhasilan 1/1" in reply


async def test_the_admins_welcome_names_a_scope(sessions: Sessions, data_dir: Path) -> None:
    await _world(sessions)
    async with sessions() as session:
        session.add(Contact(name="Ani Admin", phone="+6281200000009", role=Role.admin))
        await session.commit()
    h = Harness(sessions, data_dir)
    await h.text("halo")
    reply = await h.contact("+6281200000009")
    assert "Ani Admin" in reply
    assert "untuk <b>-</b>" not in reply and "seluruh wilayah" in reply


async def test_the_console_greeting_offers_the_demo_number_only_with_demo_data(
    sessions: Sessions,
) -> None:
    assert "081200000001" not in await console_greeting(sessions)
    async with sessions() as session:
        await seed_demo(session=session, today=date.today())
        await session.commit()
    assert "081200000001" in await console_greeting(sessions)


# --- a closed period (item 3) ------------------------------------------------------------------


def _after_deadline(h: Harness, world: World, *, days: int) -> None:
    """Time passes: the engine's clock moves to `days` local days after the due date."""
    assert world.period.due_on is not None
    later = deadline(world.period.due_on, "Asia/Jakarta") + timedelta(days=days - 1, hours=1)
    h.engine.clock = lambda: later


async def test_a_flow_open_when_the_period_closes_stops_at_the_next_message(
    sessions: Sessions, data_dir: Path
) -> None:
    world = await _world(sessions)
    h = await _registered(sessions, data_dir)
    await h.text("/lapor")
    await h.choose(f"a:{world.second_action.id}")
    await h.text("5")
    _after_deadline(h, world, days=1)

    reply = await h.file(jpeg_bytes(), "kegiatan.jpg", photo=True)
    assert "sudah ditutup" in reply and "koordinator" in reply
    assert "lewat 1 hari" in reply and "Periode Periode" not in reply
    async with sessions() as session:
        assert (await session.exec(select(EvidenceFile))).all() == []
    reply = await h.text("6")  # the flow has ended: nothing more is collected
    async with sessions() as session:
        assert [a.value for a in (await session.exec(select(Answer))).all()] == ["5"]


async def test_lapor_after_the_deadline_says_the_period_closed(
    sessions: Sessions, data_dir: Path
) -> None:
    world = await _world(sessions)
    h = await _registered(sessions, data_dir)
    _after_deadline(h, world, days=2)
    reply = await h.text("/lapor")
    assert "<b>Periode B08</b> sudah ditutup" in reply and "Periode Periode" not in reply
    assert "lewat 2 hari" in reply and "koordinator" in reply


# --- a date far from the period's year (item 13) -----------------------------------------------


async def _at_the_date_question(h: Harness, world: World) -> None:
    await h.text("/lapor")
    await h.choose(f"a:{world.action.id}")
    await h.text("25")
    await h.choose("yes")
    await h.choose("skip")
    await h.file(jpeg_bytes(), "kegiatan.jpg", photo=True)
    assert "Tanggal penetapan" in await h.text("/selesai")


async def test_a_date_far_from_the_programme_year_is_confirmed_first(
    sessions: Sessions, data_dir: Path
) -> None:
    world = await _world(sessions)  # the programme is Aksi HAM 2025
    h = await _registered(sessions, data_dir)
    await _at_the_date_question(h, world)
    reply = await h.text("20-08-2023")
    assert "yakin" in reply.lower() and "2025" in reply
    async with sessions() as session:
        assert "2023-08-20" not in {a.value for a in (await session.exec(select(Answer))).all()}
    reply = await h.choose("date_ok")
    assert "Jenis bantuan" in reply
    async with sessions() as session:
        assert "2023-08-20" in {a.value for a in (await session.exec(select(Answer))).all()}


async def test_a_corrected_date_needs_no_confirmation(sessions: Sessions, data_dir: Path) -> None:
    world = await _world(sessions)
    h = await _registered(sessions, data_dir)
    await _at_the_date_question(h, world)
    assert "yakin" in (await h.text("20-08-2023")).lower()
    reply = await h.text("20-08-2025")  # typed again instead of pressing a button
    assert "Jenis bantuan" in reply and "yakin" not in reply.lower()
    async with sessions() as session:
        values = {a.value for a in (await session.exec(select(Answer))).all()}
    assert "2025-08-20" in values and "2023-08-20" not in values
