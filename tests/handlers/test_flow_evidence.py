"""Evidence steps of /lapor as a focal point lives them (issue #12, items 4, 5, 7, 8): a file sent
twice counts once, a wrong file can be taken back, the summary takes the missing file, and the
prompts say what is accepted."""

from __future__ import annotations

from sqlmodel import col, select

from storage.models import AuditLog, EvidenceFile, EvidenceRequirement
from tests.support.harness import Harness, at_first_question, jpeg_bytes, pdf_bytes


async def _at_photo_step(sessions, data_dir) -> Harness:
    """Registered, report opened, at the "Foto kegiatan" requirement (photo or PDF, min 1)."""
    h = await at_first_question(sessions, data_dir)
    await h.text("25")
    await h.choose("yes")
    reply = await h.choose("skip")
    assert "Foto kegiatan" in reply
    return h


async def _to_summary_from_photo_step(h: Harness, *, list_file: bool) -> str:
    """/selesai at the photo step, answer the second measure, then the list's step."""
    await h.text("/selesai")
    await h.text("25-08-2025")
    await h.text("2")
    if list_file:
        await h.file(pdf_bytes("daftar"), "daftar.pdf", mime="application/pdf")
    return await h.text("/selesai")


async def _live_files(sessions) -> list[EvidenceFile]:
    async with sessions() as session:
        statement = select(EvidenceFile).where(col(EvidenceFile.removed_at).is_(None))
        return list((await session.exec(statement)).all())


async def _requirement_id(sessions, label: str) -> int:
    async with sessions() as session:
        statement = select(EvidenceRequirement).where(EvidenceRequirement.label == label)
        return (await session.exec(statement)).one().id or 0


# --- item 4 ---------------------------------------------------------------------------------


async def test_same_file_sent_twice_counts_once(sessions, data_dir) -> None:
    h = await _at_photo_step(sessions, data_dir)
    photo = jpeg_bytes("blue")
    reply = await h.file(photo, "kegiatan.jpg", photo=True)
    assert "Foto kegiatan: 1 berkas" in reply
    reply = await h.file(photo, "kegiatan (1).jpg", photo=True)
    assert "sudah diterima sebelumnya" in reply and "Foto kegiatan: 1 berkas" in reply
    reply = await h.file(jpeg_bytes("green"), "lain.jpg", photo=True)
    assert "Foto kegiatan: 2 berkas" in reply
    assert len(await _live_files(sessions)) == 2


# --- item 5 ---------------------------------------------------------------------------------


async def test_receipt_button_takes_the_file_back_with_audit(sessions, data_dir) -> None:
    h = await _at_photo_step(sessions, data_dir)
    await h.file(jpeg_bytes("red"), "salah.jpg", photo=True)
    (file,) = await _live_files(sessions)
    offered = [(choice.rpartition("#")[0], label) for choice, label in h.last_choices()]
    assert (f"rm:{file.id}", "Hapus berkas ini") in offered  # "#..." names the prompt
    reply = await h.choose(f"rm:{file.id}")
    assert "salah.jpg dihapus" in reply and "Foto kegiatan: 0 berkas" in reply
    assert "Sudah ada: 0" in reply  # asked again for the same requirement
    assert await _live_files(sessions) == []
    async with sessions() as session:
        audit = (await session.exec(select(AuditLog))).all()
        assert [(a.action, a.entity_id) for a in audit if a.entity == "evidence_file"] == [
            ("evidence.removed", file.id)
        ]
    reply = await h.text("/selesai")
    assert "masih kurang 1 berkas" in reply  # a removed file no longer counts
    # The same photo again is a new file, not "already received".
    await h.text("/kembali")
    reply = await h.file(jpeg_bytes("red"), "benar.jpg", photo=True)
    assert "Diterima: benar.jpg" in reply


async def test_typed_remove_command_at_the_step_and_at_the_summary(sessions, data_dir) -> None:
    h = await _at_photo_step(sessions, data_dir)
    await h.file(jpeg_bytes("red"), "satu.jpg", photo=True)
    await h.file(jpeg_bytes("blue"), "dua.jpg", photo=True)
    reply = await h.text("/hapus")
    assert "Berkas mana" in reply
    labels = [label.split(" (")[0] for _, label in h.last_choices()]
    assert labels == ["satu.jpg", "dua.jpg", "Tidak jadi"]
    reply = await h.text("/hapus 1")
    assert "satu.jpg dihapus" in reply and "Foto kegiatan: 1 berkas" in reply
    reply = await _to_summary_from_photo_step(h, list_file=True)
    assert "Semua sudah lengkap" in reply
    reply = await h.text("remove")
    assert "Berkas mana" in reply
    dua = next(cid for cid, label in h.last_choices() if label.startswith("dua.jpg"))
    reply = await h.choose(dua)
    assert "dua.jpg dihapus" in reply and "Belum lengkap" in reply
    assert [f.original_name for f in await _live_files(sessions)] == ["daftar.pdf"]


# --- item 7 ---------------------------------------------------------------------------------


async def test_summary_takes_the_one_missing_file(sessions, data_dir) -> None:
    h = await _at_photo_step(sessions, data_dir)
    reply = await _to_summary_from_photo_step(h, list_file=True)
    assert "Belum lengkap" in reply and "Foto kegiatan: kurang 1" in reply
    reply = await h.file(jpeg_bytes(), "kegiatan.jpg", photo=True)
    assert "Diterima: kegiatan.jpg" in reply and "Semua sudah lengkap" in reply
    assert "tidak diminta" not in reply


async def test_summary_asks_which_requirement_when_several_fit(sessions, data_dir) -> None:
    h = await _at_photo_step(sessions, data_dir)
    reply = await _to_summary_from_photo_step(h, list_file=False)
    assert "Belum lengkap" in reply
    # A PDF fits both "Foto kegiatan" (photo, PDF) and "Daftar penerima" (PDF, XLSX, DOCX).
    reply = await h.file(pdf_bytes("daftar"), "daftar.pdf", mime="application/pdf")
    assert "daftar.pdf untuk data dukung yang mana?" in reply
    assert await _live_files(sessions) == []
    daftar = await _requirement_id(sessions, "Daftar penerima")
    reply = await h.choose(f"for:{daftar}")
    assert "Diterima: daftar.pdf" in reply and "Daftar penerima: 1 berkas" in reply
    assert "Belum lengkap" in reply and "Foto kegiatan: kurang 1" in reply
    # Only the photo requirement takes a photo: no question.
    reply = await h.file(jpeg_bytes(), "kegiatan.jpg", photo=True)
    assert "Diterima: kegiatan.jpg" in reply and "Semua sudah lengkap" in reply
    files = {f.original_name: f.requirement_id for f in await _live_files(sessions)}
    assert files["daftar.pdf"] == daftar


# --- item 8 ---------------------------------------------------------------------------------


async def test_prompts_name_only_the_accepted_kinds(sessions, data_dir) -> None:
    h = await _at_photo_step(sessions, data_dir)
    prompt = h.channel.texts()[-1]
    assert "Kirim foto atau dokumen PDF <b>Foto kegiatan</b>" in prompt
    reply = await h.text("ini fotonya")
    assert "Saya menunggu foto atau dokumen PDF untuk" in reply
    await h.text("/selesai")
    await h.text("25-08-2025")
    reply = await h.text("2")
    assert "Kirim dokumen PDF, Excel atau Word <b>Daftar penerima</b>" in reply
    assert "foto/dokumen" not in "\n".join(h.channel.texts())
