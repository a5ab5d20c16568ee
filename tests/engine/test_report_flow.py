"""The whole reporting journey through the real engine and database, as a focal point on a phone
would live it."""

from __future__ import annotations

from sqlmodel import select

from storage.models import Answer, EvidenceFile, OutboxMessage, Submission, SubmissionStatus
from tests.support.factories import FOCAL_PHONE, make_world
from tests.support.harness import Harness, jpeg_bytes, pdf_bytes


async def _world(sessions):
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    return world


async def _register(h: Harness) -> None:
    reply = await h.text("halo")
    assert "Bagikan nomor saya" in reply
    reply = await h.contact(FOCAL_PHONE)
    assert "Siti Rahma" in reply and "Dinas Koperasi dan UMKM" in reply


async def test_register_report_every_measure_and_submit(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _register(h)

    reply = await h.text("/lapor")
    assert "pilih aksi" in reply and "belum diisi" in reply
    await h.choose(f"a:{world.action.id}")
    reply = await h.text("nihil")
    assert "tulis <b>0</b>" in reply  # "nihil" where a number is asked
    reply = await h.text("25")
    assert "daftar penerima" in reply.lower()
    reply = await h.choose("yes")
    assert "Catatan tambahan" in reply
    reply = await h.choose("skip")
    assert "Foto kegiatan" in reply
    reply = await h.file(jpeg_bytes(), "kegiatan.jpg", photo=True)
    assert "Diterima: kegiatan.jpg" in reply
    reply = await h.text("/selesai")
    assert "Tanggal penetapan" in reply
    reply = await h.text("31-02-2025")
    assert "Tanggal tidak dikenali" in reply
    await h.text("25 Agustus 2025")
    reply = await h.text("2")  # numbered choice: Modal usaha
    assert "Daftar penerima" in reply
    reply = await h.file(b"MZ\x90\x00 not a pdf", "daftar.exe")
    assert "ditolak" in reply
    reply = await h.file(pdf_bytes(), "daftar.pdf", mime="application/pdf")
    assert "Diterima: daftar.pdf" in reply
    reply = await h.text("selesai")
    assert "Ringkasan" in reply and "Semua sudah lengkap" in reply
    reply = await h.choose("submit")
    assert "Kirim laporan ini?" in reply
    reply = await h.choose("yes")
    assert "terkirim" in reply

    async with sessions() as session:
        submission = (await session.exec(select(Submission))).one()
        assert submission.status is SubmissionStatus.submitted
        answers = {a.value for a in (await session.exec(select(Answer))).all()}
        assert answers == {"25", "yes", "2025-08-25", "Modal usaha"}
        files = (await session.exec(select(EvidenceFile))).all()
        assert sorted(f.kind for f in files) == ["pdf", "photo"]
        assert all(f.storage_key and "kegiatan" not in f.storage_key for f in files)


async def test_every_message_delivered_twice_is_handled_once(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _register(h)
    await h.text("/lapor", message_id="dup-1")
    assert await h.text("/lapor", message_id="dup-1") == ""
    await h.choose(f"a:{world.action.id}", message_id="dup-2")
    await h.text("7", message_id="dup-3")
    sent_before = len(h.channel.sent)
    assert await h.text("9", message_id="dup-3") == ""
    assert len(h.channel.sent) == sent_before
    async with sessions() as session:
        assert [a.value for a in (await session.exec(select(Answer))).all()] == ["7"]
        keys = [m.idempotency_key for m in (await session.exec(select(OutboxMessage))).all()]
        assert len(keys) == len(set(keys))


async def test_restart_mid_report_resumes_where_left(sessions, data_dir) -> None:
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _register(h)
    await h.text("/lapor")
    await h.choose(f"a:{world.action.id}")
    await h.text("12")
    h.restart()  # new engine, same database
    reply = await h.choose("yes")
    assert "Catatan tambahan" in reply
    await h.text("/batal")
    h.restart()
    reply = await h.text("lapor")
    await h.choose(f"a:{world.action.id}")
    reply = "\n".join(h.channel.texts()[-3:])
    assert "Melanjutkan" in reply and "Foto kegiatan" in reply


async def test_unregistered_user_only_gets_registration(sessions, data_dir) -> None:
    await _world(sessions)
    h = Harness(sessions, data_dir)
    reply = await h.text("/lapor")
    assert "Bagikan nomor saya" in reply
    reply = await h.contact("+6281299999999", own=False)
    assert "bukan milik akun Anda" in reply
    reply = await h.contact("+6281299999999")
    assert "belum ada di daftar kontak" in reply
    reply = await h.file(jpeg_bytes(), "x.jpg")
    assert "Bagikan nomor saya" in reply


async def test_a_text_answer_starting_with_a_command_word_is_the_answer(sessions, data_dir) -> None:
    """"daftar penerima sudah ada" at a text question is a note, not `/daftar penerima...`."""
    world = await _world(sessions)
    h = Harness(sessions, data_dir)
    await _register(h)
    await h.text("/lapor")
    await h.choose(f"a:{world.action.id}")
    await h.text("25")
    assert "Catatan tambahan" in await h.choose("yes")
    reply = await h.text("daftar penerima sudah ada")
    assert "Foto kegiatan" in reply  # the next step: the note was taken
    async with sessions() as session:
        answers = (await session.exec(select(Answer))).all()
    assert "daftar penerima sudah ada" in {answer.value for answer in answers}
