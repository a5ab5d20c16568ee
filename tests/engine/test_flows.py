"""The other paths of the flows: back, revise, language, invites, albums, limits, time zones,
scope."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlmodel import select

from bot.engine.channel import Capabilities
from storage.invites import InvitePolicy, create_invite
from storage.models import (
    EvidenceFile,
    Period,
    Role,
    Submission,
    SubmissionStatus,
    SubmissionVersion,
)
from tests.engine.test_resilience import SCRIPT
from tests.support.factories import FOCAL_PHONE, make_world
from tests.support.fake_channel import BUTTONS, FakeChannel
from tests.support.harness import Harness, jpeg_bytes


async def _world(sessions, **kwargs):
    async with sessions() as session:
        world = await make_world(session, **kwargs)
        await session.commit()
    return world


async def _run(h: Harness, world, upto: str) -> None:
    for name, step in SCRIPT:
        await step(h, world)
        if name == upto:
            return


async def test_back_steps_one_question_back(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _run(h, world, "count")
    reply = await h.text("/kembali")
    assert "Berapa penerima bantuan?" in reply
    assert "Jawaban tersimpan: <b>25</b>" in reply
    reply = await h.choose("keep")
    assert "daftar penerima?" in reply
    reply = await h.text("back")  # the English alias, without slash
    assert "Berapa penerima bantuan?" in reply


async def test_submitted_report_is_revised_and_old_version_kept(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _run(h, world, "confirm")
    await h.text("/lapor")
    reply = await h.choose(f"a:{world.action.id}")
    assert "sudah terkirim (versi 1)" in reply
    reply = await h.choose("reopen")
    assert "versi 2" in reply
    await h.text("30")  # a corrected count
    async with sessions() as session:
        submission = (await session.exec(select(Submission))).one()
        # The submitted version counts until the revision is submitted (issue #12, item 1).
        assert (submission.status, submission.version) == (SubmissionStatus.submitted, 2)
        assert submission.revision_open
        old = (await session.exec(select(SubmissionVersion))).one()
        assert old.version == 1 and "25" in old.snapshot["answers"].values()
        assert len(old.snapshot["evidence"]) == 2


async def test_closed_period_refuses_report_and_revision(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _run(h, world, "action")
    async with sessions() as session:
        period = await session.get(Period, world.period.id)
        period.opens_on = date.today() - timedelta(days=10)
        period.due_on = date.today() - timedelta(days=1)
        await session.commit()
    reply = await h.text("/lapor")
    assert "tidak ada periode pelaporan" in reply.lower()


async def test_status_shows_deadline_in_the_users_time_zone(sessions, data_dir) -> None:
    await _world(sessions, timezone="Asia/Jayapura")
    h = Harness(sessions, data_dir)
    await _run(h, None, "contact")
    reply = await h.text("status")
    assert "23.59 WIT" in reply and "hari lagi" in reply
    assert "belum diisi" in reply and "Terkirim 0 dari 2" in reply


async def test_language_switch_to_english_and_back(sessions, data_dir) -> None:
    await _world(sessions)
    h = Harness(sessions, data_dir)
    await _run(h, None, "contact")
    await h.text("/language")
    reply = await h.choose("lang:en")
    assert "English" in reply
    reply = await h.text("/help")
    assert "/report" in reply
    await h.text("bahasa")
    reply = await h.choose("lang:id")
    assert "Bahasa Indonesia" in reply


async def test_register_with_an_invite_code_once(sessions, data_dir) -> None:
    world = await _world(sessions)
    async with sessions() as session:
        code = await create_invite(
            session=session,
            role=Role.focal_point,
            region_code=world.region.code,
            office_code=world.office.code,
            key=InvitePolicy().key,
            name="Andi Pratama",
        )
        await session.commit()
    h = Harness(sessions, data_dir, user="2002")
    reply = await h.text(f"/daftar {code.lower()}")
    assert "Andi Pratama" in reply and "Dinas Koperasi dan UMKM" in reply
    other = Harness(sessions, data_dir, user="3003")
    reply = await other.text(f"/daftar {code}")
    assert "sudah dipakai" in reply


async def test_album_of_photos_and_limits(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _run(h, world, "skip note")
    for n, color in enumerate(("red", "green", "blue"), start=1):
        reply = await h.file(jpeg_bytes(color), f"album-{n}.jpg", photo=True)
        assert f"Foto kegiatan: {n} berkas" in reply
    reply = await h.file(b"x" * 10, "besar.pdf", claimed_size=25 * 1024 * 1024)
    assert "lebih dari 20 MB" in reply
    reply = await h.text("ini bukan berkas")
    assert "Saya menunggu foto atau dokumen PDF" in reply
    async with sessions() as session:
        assert len((await session.exec(select(EvidenceFile))).all()) == 3


async def test_oversize_file_is_not_downloaded(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _run(h, world, "skip note")
    fetched: list[str] = []
    original = h.channel.fetch_file

    async def spy(event, *, max_bytes):  # type: ignore[no-untyped-def]
        fetched.append(event.file_ref)
        return await original(event, max_bytes=max_bytes)

    h.channel.fetch_file = spy  # type: ignore[method-assign]
    await h.file(b"x", "besar.pdf", claimed_size=21 * 1024 * 1024)
    assert fetched == []


async def test_file_outside_the_evidence_step_is_not_fetched(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _run(h, world, "action")
    reply = await h.file(jpeg_bytes(), "foto.jpg", photo=True)
    assert "menunggu jawaban teks" in reply
    async with sessions() as session:
        assert (await session.exec(select(EvidenceFile))).all() == []


async def test_whatsapp_user_is_recognised_from_the_first_message(sessions, data_dir) -> None:
    await _world(sessions)
    capabilities: Capabilities = replace(BUTTONS, user_key_is_phone=True, contact_button=False)
    channel = FakeChannel(capabilities=capabilities)
    h = Harness(sessions, data_dir, channel=channel, user=FOCAL_PHONE.lstrip("+"))
    reply = await h.text("halo")
    assert "Selamat datang, <b>Siti Rahma</b>" in reply


async def test_coordinator_status_counts_their_region_only(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _run(h, world, "confirm")
    coordinator = Harness(sessions, data_dir, user="4004")
    await coordinator.contact(world.coordinator.phone)
    reply = await coordinator.text("/status")
    assert "Kota Bandar Lampung" in reply and "Terkirim 1/2" in reply
    reply = await coordinator.text("/lapor")
    assert "hanya untuk focal point" in reply
    reply = await h.text("/belum")
    assert "hanya untuk koordinator" in reply


async def test_engine_time_is_utc_aware(sessions, data_dir) -> None:
    await _world(sessions)
    h = Harness(sessions, data_dir)
    h.engine.clock = lambda: datetime(2030, 1, 1, tzinfo=UTC)
    reply = await h.text("halo")
    assert reply
