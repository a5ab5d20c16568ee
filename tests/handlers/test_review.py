"""/periksa through the real engine, router, storage and outbox sender (a FakeChannel): the
queue, what a reviewer sees, approve, return with a note, the focal point's revision coming back
with its changes, and every refusal (role, stale or forged buttons, a report changed meanwhile).
The same loop through the real Telegram channel is in tests/channels/test_telegram_review.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.events import OutFile, OutText
from storage.db import transaction
from storage.models import (
    AuditLog,
    Contact,
    EvidenceFile,
    Office,
    ReviewDecision,
    ReviewEvent,
    Role,
    SubmissionStatus,
    SubmissionVersion,
)
from tests.support.factories import FOCAL_PHONE, World, make_world
from tests.support.harness import Harness, jpeg_bytes
from tests.support.reviews import get_submission, has_exif, jpeg_with_gps, submitted_report

Sessions = async_sessionmaker[AsyncSession]
COORDINATOR_PHONE = "+6281200000002"
OTHER_PHONE = "+6281200000009"
FOCAL, COORDINATOR = "1001", "2001"


@pytest.fixture
async def world(sessions: Sessions) -> World:
    async with sessions() as session:
        made = await make_world(session)
        await session.commit()
    return made


@pytest.fixture
async def h(sessions: Sessions, data_dir: Path, world: World) -> Harness:
    """Both people registered: the focal point ("1001") and the city's coordinator ("2001")."""
    harness = Harness(sessions, data_dir)
    await as_user(harness, FOCAL, "halo")
    await harness.contact(FOCAL_PHONE)
    harness.user = COORDINATOR
    await harness.text("halo")
    await harness.contact(COORDINATOR_PHONE)
    return harness


async def as_user(h: Harness, user: str, text: str) -> str:
    h.user = user
    return await h.text(text)


async def submit_first_action(h: Harness, world: World) -> int:
    return await submitted_report(
        h.sessions,
        h.engine.evidence_store,
        action_id=world.action.id or 0,
        office_id=world.office.id or 0,
        period_id=world.period.id or 0,
        focal_point=world.focal_point,
    )


def sent_to(h: Harness, user: str, start: int) -> list[OutText | OutFile]:
    return [s.message for s in h.channel.sent[start:] if s.chat_id == user]


async def events(sessions: Sessions, submission_id: int) -> list[tuple[ReviewDecision, int]]:
    async with sessions() as session:
        rows = await session.exec(
            select(ReviewEvent)
            .where(ReviewEvent.submission_id == submission_id)
            .order_by(col(ReviewEvent.id))
        )
        return [(row.decision, row.version) for row in rows.all()]


async def audit_actions(sessions: Sessions) -> list[str]:
    async with sessions() as session:
        rows = await session.exec(select(AuditLog.action).order_by(col(AuditLog.id)))
        return list(rows.all())


# --- seeing a report ------------------------------------------------------------------------


async def test_reviewer_sees_answers_and_files_with_photos_stripped(
    h: Harness, world: World
) -> None:
    submission_id = await submit_first_action(h, world)
    queue = await as_user(h, COORDINATOR, "/periksa")
    assert "menunggu pemeriksaan: 1" in queue
    assert "Dinas Koperasi dan UMKM" in queue and "KK-01" in queue

    start = len(h.channel.sent)
    opened = await h.choose(f"o:{submission_id}")
    assert "Periksa: KK-01" in opened and "Siti Rahma" in opened
    assert "Berapa penerima bantuan?\n    → 25" in opened
    files = [m for m in sent_to(h, COORDINATOR, start) if isinstance(m, OutFile)]
    photos = [f for f in files if f.as_photo]
    documents = [f for f in files if not f.as_photo]
    assert len(photos) == 1 and len(documents) == 1
    assert documents[0].filename == "daftar.pdf"
    assert "Daftar penerima" in documents[0].caption
    # The photo goes back as its thumbnail: re-encoded, no EXIF. The original had GPS.
    async with h.sessions() as session:
        rows = (await session.exec(select(EvidenceFile))).all()
    original = next(r for r in rows if r.kind == "photo")
    assert original.gps_lat is not None  # what the camera wrote is kept as metadata only
    assert photos[0].storage_key == original.thumbnail_key != original.storage_key
    assert has_exif(await h.engine.evidence_store.get(original.storage_key))
    assert not has_exif(await h.engine.evidence_store.get(photos[0].storage_key))
    # The decision buttons come last, under the files.
    assert [wid.rpartition("#")[0] for wid, _ in h.last_choices()] == ["approve", "return", "list"]
    assert isinstance(sent_to(h, COORDINATOR, start)[-1], OutText)


async def test_approve_records_event_audit_and_tells_the_focal_point(
    h: Harness, world: World
) -> None:
    submission_id = await submit_first_action(h, world)
    await as_user(h, COORDINATOR, "/periksa")
    await h.choose(f"o:{submission_id}")
    start = len(h.channel.sent)
    reply = await h.choose("approve")
    assert "disetujui (versi 1)" in reply
    assert "Tidak ada laporan yang menunggu" in reply
    told = [m.text for m in sent_to(h, FOCAL, start) if isinstance(m, OutText)]
    assert any("disetujui" in text and "Budi Hukum" in text for text in told)
    assert (await get_submission(h.sessions, submission_id)).status is SubmissionStatus.approved
    assert await events(h.sessions, submission_id) == [(ReviewDecision.approved, 1)]
    assert "review.approved" in await audit_actions(h.sessions)


# --- the round trip -------------------------------------------------------------------------


async def test_return_revise_resubmit_shows_changes_then_approve(h: Harness, world: World) -> None:
    submission_id = await submit_first_action(h, world)
    await as_user(h, COORDINATOR, "/periksa")
    await h.choose(f"o:{submission_id}")
    asked = await h.choose("return")
    assert "Tulis catatan" in asked
    start = len(h.channel.sent)
    done = await h.text("belum ada foto penyerahan bantuan")  # starts with a command word
    assert "dikembalikan dengan catatan; 1 focal point" in done

    notice = [m for m in sent_to(h, FOCAL, start) if isinstance(m, OutText)][-1]
    assert "belum ada foto penyerahan bantuan" in notice.text and "Budi Hukum" in notice.text
    [button] = notice.choices
    assert button.id == f"!rev:{submission_id}.2"
    returned = await get_submission(h.sessions, submission_id)
    assert (returned.status, returned.version) == (SubmissionStatus.returned, 2)

    # The focal point opens it from the notice: the note, then the summary (nothing missing).
    h.user = FOCAL
    opened = await h.press(button.id)
    assert "dikembalikan oleh pemeriksa" in opened and "belum ada foto penyerahan" in opened
    # Change one answer and add one photo, then submit again.
    await h.choose("edit")
    await h.text("30")
    for _ in range(2):
        await h.choose("keep")
    await h.file(jpeg_bytes("blue"), "penyerahan.jpg", mime="image/jpeg", photo=True)
    await h.choose("done")
    for _ in range(2):
        await h.choose("keep")
    await h.choose("done")
    await h.choose("submit")
    sent = await h.choose("yes")
    assert "terkirim" in sent and "versi 2" in sent

    # An old "open for revision" button does nothing now.
    stale = await h.press(button.id)
    assert "Tombol itu sudah tidak berlaku" in stale

    queue = await as_user(h, COORDINATOR, "/periksa")
    assert "versi 2" in queue and "revisi" in queue
    opened = await h.choose(f"o:{submission_id}")
    assert "Perubahan dari versi 1" in opened
    assert "Jawaban diubah: Berapa penerima bantuan?" in opened
    assert "Berkas baru: penyerahan.jpg (Foto kegiatan)" in opened
    assert "Berkas dihapus" not in opened
    await h.choose("approve")

    assert await events(h.sessions, submission_id) == [
        (ReviewDecision.returned, 1),
        (ReviewDecision.approved, 2),
    ]
    actions = await audit_actions(h.sessions)
    assert actions.count("review.returned") == 1 and actions.count("review.approved") == 1
    async with h.sessions() as session:
        kept = (await session.exec(select(SubmissionVersion))).all()
        note = (
            await session.exec(select(ReviewEvent.note).where(ReviewEvent.version == 1))
        ).one()
    assert [(v.version, v.status) for v in kept] == [(1, SubmissionStatus.returned)]
    assert note == "belum ada foto penyerahan bantuan"


async def test_approved_then_revised_needs_review_again(h: Harness, world: World) -> None:
    submission_id = await submit_first_action(h, world)
    await as_user(h, COORDINATOR, "/periksa")
    await h.choose(f"o:{submission_id}")
    await h.choose("approve")

    await as_user(h, FOCAL, "/lapor")
    offered = await h.choose(f"a:{world.action.id}")
    assert "sudah <b>disetujui</b>" in offered
    await h.choose("reopen")
    # Still approved (and counted) while the revision is open: not in the queue yet.
    assert "Tidak ada laporan" in await as_user(h, COORDINATOR, "/periksa")
    h.user = FOCAL
    assert "terkirim" in await walk_to_submit(h)

    queue = await as_user(h, COORDINATOR, "/periksa")
    assert "menunggu pemeriksaan: 1" in queue
    opened = await h.choose(f"o:{submission_id}")
    assert "Tidak ada perubahan jawaban atau berkas dari versi 1" in opened


# --- refusals -------------------------------------------------------------------------------


async def test_a_focal_point_can_never_review(h: Harness, world: World) -> None:
    submission_id = await submit_first_action(h, world)
    reply = await as_user(h, FOCAL, "/periksa")
    assert "hanya untuk koordinator dan Kanwil" in reply
    # Buttons forged with any tag are refused, and nothing changes.
    for forged in (f"o:{submission_id}#1", "approve#5", f"o:{submission_id}"):
        assert "Tombol itu sudah tidak berlaku" in await h.press(forged)
    assert (await get_submission(h.sessions, submission_id)).status is SubmissionStatus.submitted
    assert await events(h.sessions, submission_id) == []


async def test_approving_while_a_revision_is_open_approves_the_submitted_version(
    h: Harness, world: World
) -> None:
    submission_id = await submit_first_action(h, world)
    await as_user(h, COORDINATOR, "/periksa")
    await h.choose(f"o:{submission_id}")
    approve = next(wid for wid, _ in h.last_choices() if wid.startswith("approve#"))
    await as_user(h, FOCAL, "/lapor")
    await h.choose(f"a:{world.action.id}")
    await h.choose("reopen")  # version 2 opened; version 1 still counts
    h.user = COORDINATOR
    assert "disetujui (versi 1)" in await h.press(approve)
    # The same (now old) keyboard pressed again does nothing.
    assert "Tombol itu sudah tidak berlaku" in await h.press(approve)
    assert await events(h.sessions, submission_id) == [
        (ReviewDecision.reopened, 1),
        (ReviewDecision.approved, 1),
    ]


async def test_a_report_resubmitted_since_it_was_opened_is_not_decided(
    h: Harness, world: World
) -> None:
    submission_id = await submit_first_action(h, world)
    await as_user(h, COORDINATOR, "/periksa")
    await h.choose(f"o:{submission_id}")
    approve = next(wid for wid, _ in h.last_choices() if wid.startswith("approve#"))
    await as_user(h, FOCAL, "/lapor")
    await h.choose(f"a:{world.action.id}")
    await h.choose("reopen")
    await walk_to_submit(h)  # version 2 submitted: not what the reviewer saw
    h.user = COORDINATOR
    refused = await h.press(approve)
    assert "berubah sejak Anda membukanya" in refused
    assert "menunggu pemeriksaan: 1" in refused  # the queue again, to open version 2
    assert await events(h.sessions, submission_id) == [(ReviewDecision.reopened, 1)]
    assert (await get_submission(h.sessions, submission_id)).status is SubmissionStatus.submitted


async def test_return_refused_after_the_deadline_approve_still_works(
    sessions: Sessions, data_dir: Path
) -> None:
    from datetime import date, timedelta

    async with sessions() as session:
        world = await make_world(session, today=date.today() - timedelta(days=10))
        await session.commit()
    h = Harness(sessions, data_dir)
    h.user = COORDINATOR
    await h.text("halo")
    await h.contact(COORDINATOR_PHONE)
    submission_id = await submit_first_action(h, world)
    await h.text("/periksa")
    await h.choose(f"o:{submission_id}")
    reply = await h.choose("return")
    assert "sudah ditutup" in reply and "masih bisa menyetujuinya" in reply
    assert (await get_submission(sessions, submission_id)).status is SubmissionStatus.submitted
    assert "disetujui" in await h.choose("approve")


async def test_note_is_checked_and_can_be_cancelled(h: Harness, world: World) -> None:
    submission_id = await submit_first_action(h, world)
    await as_user(h, COORDINATOR, "/periksa")
    await h.choose(f"o:{submission_id}")
    await h.choose("return")
    assert "terlalu panjang" in await h.text("x" * 1001)
    assert "catatan berupa teks" in await h.file(jpeg_with_gps(), "a.jpg", photo=True)
    back = await h.choose("cancel")
    assert "Keputusan untuk laporan ini?" in back
    await h.choose("return")
    assert "Dibatalkan" in await h.text("batal")  # a command word alone is still the command
    assert (await get_submission(h.sessions, submission_id)).status is SubmissionStatus.submitted


async def test_revision_button_of_another_office_is_refused(
    h: Harness, world: World, sessions: Sessions
) -> None:
    submission_id = await submit_first_action(h, world)
    await as_user(h, COORDINATOR, "/periksa")
    await h.choose(f"o:{submission_id}")
    await h.choose("return")
    await h.text("perbaiki")
    # The coordinator, a focal point of another office, and the report's own focal point with
    # malformed or older ids: each refused, nothing changes.
    assert "Tombol itu sudah tidak berlaku" in await h.press(f"!rev:{submission_id}.2")
    async with transaction(sessions) as session:
        office = Office(region_id=world.region.id or 0, code="dinsos", name="Dinas Sosial")
        session.add(office)
        await session.flush()
        session.add(
            Contact(
                name="Rina",
                phone=OTHER_PHONE,
                role=Role.focal_point,
                region_id=world.region.id,
                office_id=office.id,
            )
        )
    await as_user(h, "3001", "halo")
    await h.contact(OTHER_PHONE)
    assert "Tombol itu sudah tidak berlaku" in await h.press(f"!rev:{submission_id}.2")
    h.user = FOCAL
    for forged in ("!rev:x.y", "!nothing", f"!rev:{submission_id}.1"):
        assert "Tombol itu sudah tidak berlaku" in await h.press(forged)
    assert (await get_submission(h.sessions, submission_id)).status is SubmissionStatus.returned


async def walk_to_submit(h: Harness) -> str:
    """From anywhere in an open report: keep every answer, finish every evidence step, then
    submit. The reply to the final "Ya, kirim"."""
    for _ in range(20):
        choices = [wid.rpartition("#")[0] for wid, _ in h.last_choices()]
        if "submit" in choices:
            await h.choose("submit")
            return await h.choose("yes")
        await h.choose("keep" if "keep" in choices else "done")
    raise AssertionError("never reached the summary")


async def test_a_long_queue_is_paged_with_buttons(h: Harness, world: World) -> None:
    """Seven reports: five on the first page with "next", two on the second with "previous";
    the longest waiting first."""
    async with transaction(h.sessions) as session:
        offices = [
            Office(region_id=world.region.id or 0, code=f"opd{n}", name=f"OPD Nomor {n}")
            for n in range(7)
        ]
        session.add_all(offices)
    for n, office in enumerate(offices):
        await submitted_report(
            h.sessions,
            h.engine.evidence_store,
            action_id=world.second_action.id or 0,
            office_id=office.id or 0,
            period_id=world.period.id or 0,
            focal_point=world.focal_point,
            with_files=n == 0,
            now=datetime(2025, 8, 20, 9, n, tzinfo=UTC),
        )
    first = await as_user(h, COORDINATOR, "/periksa")
    assert "menunggu pemeriksaan: 7</b> (halaman 1/2)" in first
    assert [f"OPD Nomor {n}" in first for n in range(7)] == [True] * 5 + [False] * 2
    labels = [label for _, label in h.last_choices()]
    assert labels[-2:] == ["Berikutnya ›", "Tutup"] and len(labels) == 7
    second = await h.choose("pg:1")
    assert "(halaman 2/2)" in second and "OPD Nomor 5" in second and "OPD Nomor 6" in second
    assert [label for _, label in h.last_choices()][-2:] == ["‹ Sebelumnya", "Tutup"]
    typed = await h.text("2")  # lines are numbered per page, as the buttons
    assert "Periksa: KK-02" in typed and "OPD Nomor 6" in typed
    assert "(halaman 2/2)" in await h.choose("list")
    assert "halaman 1/2" in await h.choose("pg:0")
    assert "Pemeriksaan ditutup" in await h.choose("close")


async def test_an_open_revision_is_not_what_the_reviewer_sees(h: Harness, world: World) -> None:
    """The focal point reopened the report and changed an answer without sending it: the
    submitted version (25) still counts, and that is what the reviewer reviews."""
    submission_id = await submit_first_action(h, world)
    await as_user(h, FOCAL, "/lapor")
    await h.choose(f"a:{world.action.id}")
    await h.choose("reopen")
    await h.text("30")
    queue = await as_user(h, COORDINATOR, "/periksa")
    assert "versi 1" in queue
    opened = await h.choose(f"o:{submission_id}")
    assert "Berapa penerima bantuan?\n    → 25" in opened and "→ 30" not in opened
    assert "Perubahan" not in opened  # a first submission has nothing to compare with


async def test_the_revision_button_works_from_the_middle_of_another_report(
    h: Harness, world: World
) -> None:
    submission_id = await submit_first_action(h, world)
    await as_user(h, COORDINATOR, "/periksa")
    await h.choose(f"o:{submission_id}")
    await h.choose("return")
    await h.text("lengkapi notulen")
    button = f"!rev:{submission_id}.2"
    await as_user(h, FOCAL, "/lapor")
    assert "Berapa penerima" in await h.choose(f"a:{world.second_action.id}")
    opened = await h.press(button)
    assert "Bantuan usaha bagi perempuan kepala keluarga</b> dikembalikan" in opened
    assert "lengkapi notulen" in opened and "Semua sudah lengkap" in opened
    await h.choose("submit")
    assert "Bantuan usaha" in await h.choose("yes")
    assert (await get_submission(h.sessions, submission_id)).status is SubmissionStatus.submitted


async def test_a_return_with_no_registered_focal_point_says_so(
    sessions: Sessions, data_dir: Path, world: World
) -> None:
    h = Harness(sessions, data_dir)
    await as_user(h, COORDINATOR, "halo")
    await h.contact(COORDINATOR_PHONE)
    submission_id = await submit_first_action(h, world)
    await h.text("/periksa")
    await h.choose(f"o:{submission_id}")
    await h.choose("return")
    reply = await h.text("daftar hadir belum ada")
    assert "Belum ada focal point OPD ini yang terdaftar" in reply
    assert [s.chat_id for s in h.channel.sent] == [COORDINATOR] * len(h.channel.sent)
    # The note waits for them: /lapor shows it when they open the report.
    await as_user(h, FOCAL, "halo")
    await h.contact(FOCAL_PHONE)
    await h.text("/lapor")
    assert "daftar hadir belum ada" in await h.choose(f"a:{world.action.id}")
