"""Side commands, edits, odd media and numbers out of range in the middle of a report leave
the user at the question, asked again (issue #12, items 10 and 20)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.events import Unsupported
from tests.support.factories import FOCAL_PHONE, make_world
from tests.support.harness import Harness

Sessions = async_sessionmaker[AsyncSession]
QUESTION = "Berapa penerima bantuan?"


async def _at_first_question(sessions: Sessions, data_dir: Any) -> Harness:
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    h = Harness(sessions, data_dir)
    await h.text("halo")
    await h.contact(FOCAL_PHONE)
    await h.text("/lapor")
    assert QUESTION in await h.choose(f"a:{world.action.id}")
    return h


async def test_start_mid_report_asks_the_question_again(sessions: Sessions, data_dir: Any) -> None:
    h = await _at_first_question(sessions, data_dir)
    reply = await h.text("/start")
    assert "sudah terdaftar" in reply and QUESTION in reply
    assert "daftar penerima" in (await h.text("25")).lower()


async def test_language_mid_report_returns_to_the_question(
    sessions: Sessions, data_dir: Any
) -> None:
    h = await _at_first_question(sessions, data_dir)
    await h.text("/bahasa")
    reply = await h.choose("lang:en")
    assert QUESTION in reply
    assert "daftar penerima" in (await h.text("25")).lower()  # still in the report


async def test_out_of_range_number_says_the_valid_range(sessions: Sessions, data_dir: Any) -> None:
    async with sessions() as session:
        await make_world(session)
        await session.commit()
    h = Harness(sessions, data_dir)
    await h.text("halo")
    await h.contact(FOCAL_PHONE)
    await h.text("/lapor")
    reply = await h.text("7")  # two actions offered
    assert "1 sampai 2" in reply


async def test_an_edited_message_is_not_applied_and_says_how_to_change(
    sessions: Sessions, data_dir: Any
) -> None:
    h = await _at_first_question(sessions, data_dir)
    reply = "\n".join(await h.deliver(Unsupported(**h._base(None), kind="edited")))
    assert "diedit" in reply and "/kembali" in reply and QUESTION in reply


async def test_stickers_voice_and_video_get_the_short_answer(
    sessions: Sessions, data_dir: Any
) -> None:
    h = await _at_first_question(sessions, data_dir)
    for kind in ["sticker", "voice", "video"]:
        reply = "\n".join(await h.deliver(Unsupported(**h._base(None), kind=kind)))
        assert "hanya bisa menerima teks, foto, dan dokumen" in reply and QUESTION in reply


async def test_broadcast_typed_with_text_starts_the_broadcast_not_a_shrug(
    sessions: Sessions, data_dir: Any
) -> None:
    async with sessions() as session:
        await make_world(session)
        await session.commit()
    h = Harness(sessions, data_dir, user="2002")
    await h.text("halo")
    await h.contact("+6281200000002")  # the coordinator
    alone = await h.text("siaran")
    assert "Tulis pesan yang akan dikirim" in alone
    await h.text("/batal")
    with_text = await h.text("siaran Batas laporan hari Jumat")
    assert "Kirim kepada siapa?" in with_text  # the text after the word is the message
    assert "belum saya mengerti" not in with_text


async def test_hello_and_an_old_send_answer_say_where_the_user_stands(
    sessions: Sessions, data_dir: Any
) -> None:
    async with sessions() as session:
        await make_world(session)
        await session.commit()
    h = Harness(sessions, data_dir)
    await h.text("halo")
    await h.contact(FOCAL_PHONE)
    for text in ["halo", "Ya, kirim"]:
        reply = await h.text(text)
        assert "belum saya mengerti" not in reply
        assert "tidak sedang mengisi laporan" in reply and "Tugas Anda" in reply
