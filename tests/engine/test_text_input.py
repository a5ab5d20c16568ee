"""What a phone sends is cleaned once as it enters the engine (issue #12, item 12): control
characters go (a NUL crashed the handler on PostgreSQL and was stored raw on SQLite), text is
NFC, and a client-supplied file name never carries bidi overrides into a reply or the database."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.engine.text_input import clean_name, clean_text
from storage.models import Answer, EvidenceFile
from tests.support.harness import Harness, at_first_question, jpeg_bytes

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE


async def _at_the_notes_question(sessions, data_dir) -> Harness:
    h = await at_first_question(sessions, data_dir)
    await h.text("25")
    reply = await h.choose("yes")
    assert "Catatan tambahan" in reply
    return h


async def test_a_nul_in_a_text_answer_is_dropped_not_a_crash(sessions, data_dir) -> None:
    h = await _at_the_notes_question(sessions, data_dir)
    reply = await h.text("Rapat\x00 koordinasi \x1b[31mCafe\u0301")
    assert "Foto kegiatan" in reply  # the answer was taken, the flow moved on
    async with sessions() as session:
        values = {a.value for a in (await session.exec(select(Answer))).all()}
    assert "Rapat koordinasi [31mCafé" in values


async def test_a_bidi_override_in_a_file_name_is_never_shown_or_stored(sessions, data_dir) -> None:
    h = await _at_the_notes_question(sessions, data_dir)
    await h.choose("skip")
    reply = await h.file(jpeg_bytes(), f"laporan{RLO}gpj.exe\x00", photo=True)
    assert "Diterima: laporangpj.exe" in reply
    assert RLO not in "".join(h.channel.texts())
    async with sessions() as session:
        stored = (await session.exec(select(EvidenceFile))).one()
    assert stored.original_name == "laporangpj.exe"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("baris 1\r\nbaris 2\tkolom", "baris 1\nbaris 2\tkolom"),
        ("a\x00b\x07c\x7fd\x85e", "abcde"),
        ("Cafe\u0301", "Café"),
        (f"x{RLO}y\u2066z\u2069", "xyz"),
        ("\u200fkeep RLM and 👩\u200d💻", "\u200fkeep RLM and 👩\u200d💻"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (f"laporan{RLO}fdp.exe", "laporanfdp.exe"),
        ("notulen\nrapat .pdf", "notulen rapat .pdf"),
        ("\x00\u202e ", None),
        (None, None),
        ("a" * 300, "a" * 255),
    ],
)
def test_clean_name(raw: str | None, clean: str | None) -> None:
    assert clean_name(raw) == clean
