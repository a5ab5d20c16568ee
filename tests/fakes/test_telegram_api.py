"""Self-tests of the fake Bot API, driven by the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    TelegramObject,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, RetryAfter, TimedOut
from telegram.ext import Application, CommandHandler, ContextTypes, ExtBot

from tests.fakes.telegram_api import (
    BOT_USERNAME,
    DEFAULT_TOKEN,
    FakeTelegramAPI,
    SendLimits,
    callback_update,
    command_update,
    contact_update,
    document_update,
    photo_update,
    text_update,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "telegram"
FIXTURE_FILES = sorted(FIXTURES.glob("*.json"))
USER = 5123456789


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as fake:
        yield fake


def _ext_bot(api: FakeTelegramAPI, token: str = DEFAULT_TOKEN, **kwargs: Any) -> ExtBot[None]:
    return ExtBot(token, base_url=f"{api.url}/bot", base_file_url=f"{api.url}/file/bot", **kwargs)


@pytest.fixture
async def bot(api: FakeTelegramAPI) -> AsyncIterator[ExtBot[None]]:
    client = _ext_bot(api)
    await client.initialize()
    yield client
    await client.shutdown()


# PTB strips the "Bad Request: " prefix and capitalises the rest of the description.


def _unknown_fields(obj: object) -> Iterator[str]:
    """Names PTB could not map to attributes, i.e. misspelt or invented fixture fields."""
    if isinstance(obj, TelegramObject):
        yield from (f"{type(obj).__name__}.{key}" for key in obj.api_kwargs)
        for value in obj._get_attrs(recursive=False).values():
            yield from _unknown_fields(value)
    elif isinstance(obj, tuple | list):
        for item in obj:
            yield from _unknown_fields(item)


async def test_get_me(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123, True, BOT_USERNAME)
    assert me.can_join_groups is True
    assert api.requests[0].method == "getMe"  # from bot.initialize()


async def test_wrong_token_is_unauthorized(api: FakeTelegramAPI) -> None:
    wrong = _ext_bot(api, token="999:WRONG")
    with pytest.raises(InvalidToken):
        await wrong.initialize()
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{api.url}/bot999:WRONG/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_unknown_method_is_404(api: FakeTelegramAPI) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{api.url}/bot{DEFAULT_TOKEN}/frobnicate", json={})
    assert response.status_code == 404
    assert response.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }
    assert api.requests[-1].failed


async def test_get_updates_offset_and_timeout(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    first = api.push_update(text_update(USER, "satu"))
    second = api.push_update(text_update(USER, "dua"))
    assert second["update_id"] == first["update_id"] + 1

    updates = await bot.get_updates(timeout=0)
    assert [u.message.text for u in updates if u.message] == ["satu", "dua"]
    # Unconfirmed updates are delivered again.
    assert len(await bot.get_updates(offset=first["update_id"], timeout=0)) == 2

    started = time.monotonic()
    assert await bot.get_updates(offset=second["update_id"] + 1, timeout=0.2) == ()
    assert 0.15 <= time.monotonic() - started < 2
    assert await bot.get_updates(timeout=0) == ()  # confirmed updates stay dropped


async def test_long_poll_wakes_on_push(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for("getUpdates", finished=False)
    started = time.monotonic()
    api.push_update(command_update(USER, "start"))
    (update,) = await poll
    assert time.monotonic() - started < 1
    assert update.message is not None and update.message.text == "/start"


async def test_second_poll_terminates_first_with_conflict(
    bot: ExtBot[None], api: FakeTelegramAPI
) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for("getUpdates", finished=False)
    # A second bot instance: PTB's own getUpdates pool has a single connection.
    async with httpx.AsyncClient() as other:
        second = await other.post(f"{api.url}/bot{DEFAULT_TOKEN}/getUpdates", json={"timeout": 0.1})
    with pytest.raises(Conflict, match="terminated by other getUpdates"):
        await first
    assert second.json() == {"ok": True, "result": []}


async def test_send_message_records_inline_keyboard(
    bot: ExtBot[None], api: FakeTelegramAPI
) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Aksi HAM", callback_data="jenis:aksi")]])
    message = await bot.send_message(USER, "Pilih jenis laporan:", reply_markup=markup)

    assert message.chat.id == USER and message.text == "Pilih jenis laporan:"
    assert message.reply_markup == markup
    (params,) = api.sent("sendMessage", chat_id=USER)
    assert params["chat_id"] == USER  # form strings are turned back into JSON types
    assert params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Aksi HAM", "callback_data": "jenis:aksi"}]]
    }
    record = await api.wait_for(lambda r: r.method == "sendMessage")
    assert record.result["message_id"] == message.message_id


async def test_listener_sees_each_answered_request(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    seen: list[tuple[str, int, Any]] = []
    # The result is read inside the listener: the record is complete when it is called.
    remove = api.on_request(lambda r: seen.append((r.method, r.status, r.result)))
    message = await bot.send_message(USER, "halo")
    api.fail_next("sendMessage", status=429)
    with pytest.raises(RetryAfter):
        await bot.send_message(USER, "lagi")
    remove()
    await bot.send_message(USER, "tidak terlihat")

    assert [(method, status) for method, status, _ in seen] == [
        ("sendMessage", 200),
        ("sendMessage", 429),
    ]
    assert seen[0][2]["message_id"] == message.message_id


async def test_callback_data_over_64_bytes_is_rejected(bot: ExtBot[None]) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="x" * 65)]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(USER, "halo", reply_markup=markup)


async def test_edit_reply_markup_and_not_modified(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Ya", callback_data="ya")]])
    sent = await bot.send_message(USER, "Kirim?", reply_markup=markup)
    edited = await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=None)
    assert not isinstance(edited, bool) and edited.reply_markup is None
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(USER, sent.message_id, reply_markup=None)
    assert api.requests[-1].failed


async def test_retry_after_injection(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    api.fail_next("sendMessage", status=429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "halo")
    assert caught.value.retry_after == 7
    assert api.requests[-1].failed and api.requests[-1].status == 429
    await bot.send_message(USER, "halo lagi")  # the fault applied once only
    assert [p["text"] for p in api.sent()] == ["halo lagi"]


async def test_forbidden_injection(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    api.fail_next("sendMessage", status=403)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(USER, "halo")
    api.block(USER)
    with pytest.raises(Forbidden):
        await bot.send_photo(USER, b"\xff\xd8jpeg")
    assert api.sent() == []


async def test_most_in_one_second_counts_arrivals_on_the_fakes_clock() -> None:
    now = [100.0]
    async with FakeTelegramAPI(clock=lambda: now[0]) as api:
        client = _ext_bot(api)
        # The busiest seconds, [100.5, 101.5) and [100.9, 101.9), hold four each.
        for at in (100.0, 100.5, 100.9, 101.0, 101.4, 101.5):
            now[0] = at
            await client.send_message(USER, "halo")
        await client.get_webhook_info()  # other methods are not counted
        await client.shutdown()
        assert [r.at for r in api.requests][:2] == [100.0, 100.5]
        assert api.most_in_one_second() == 4
        assert api.most_in_one_second("getWebhookInfo") == 1
        assert api.most_in_one_second("sendPhoto") == 0


async def test_delay_surfaces_as_timeout(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    api.delay_next("sendMessage", 0.2)
    with pytest.raises(TimedOut):
        await bot.send_message(USER, "lambat", read_timeout=0.05)
    # The fake still delivers it afterwards, as Telegram would: the source of duplicates.
    record = await api.wait_for("sendMessage", timeout=3)
    assert not record.failed


async def test_get_file_download(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    data = b"\xff\xd8\xff\xe0 fake jpeg \r\n--boundary-like\r\n"
    sizes = [api.add_file("photo-big", data, kind="photo")]
    api.push_update(photo_update(USER, sizes, caption="bukti"))
    (update,) = await bot.get_updates(timeout=0)
    assert update.message is not None
    file = await update.message.photo[-1].get_file()
    assert file.file_path is not None and file.file_path.startswith(f"{api.url}/file/bot")
    assert bytes(await file.download_as_bytearray()) == data
    assert api.requests[-1].method == "downloadFile"


async def test_get_file_rejects_files_over_20mb(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    doc = api.add_file("big", b"x", file_name="bukti.zip", file_size=25_000_000)
    assert doc["mime_type"] == "application/zip"
    with pytest.raises(BadRequest, match=r"(?i)file is too big"):
        await bot.get_file("big")


async def test_send_document_multipart_upload(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    data = b"%PDF-1.7\r\n\x00\x01\xfe\xff\r\n%%EOF"
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="ok")]])
    message = await bot.send_document(
        USER, data, filename="Laporan.pdf", caption="Rekap", reply_markup=markup
    )

    record = api.requests[-1]
    assert record.method == "sendDocument" and record.files == {"document": data}
    assert record.params["reply_markup"] == markup.to_dict()  # a JSON string in the form
    assert message.document is not None and message.document.file_name == "Laporan.pdf"
    assert message.caption == "Rekap"
    file = await bot.get_file(message.document.file_id)
    assert bytes(await file.download_as_bytearray()) == data


async def test_update_helpers_round_trip(bot: ExtBot[None], api: FakeTelegramAPI) -> None:
    doc = api.add_file("doc-1", b"isi", file_name="a.pdf")
    for update in (
        command_update(USER, "lapor", "aksi", bot_username=BOT_USERNAME),
        callback_update(USER, "jenis:aksi", message_id=10),
        contact_update(USER, "+6281234567890", contact_user_id=USER),
        document_update(USER, doc, media_group_id="1"),
    ):
        api.push_update(update)
    command, callback, contact, document = await bot.get_updates(timeout=0)

    assert command.message is not None and command.message.text == "/lapor@LaporHAMTestBot aksi"
    assert command.message.parse_entities()  # a bot_command entity
    assert callback.callback_query is not None and callback.callback_query.data == "jenis:aksi"
    assert contact.message is not None and contact.message.contact is not None
    assert contact.message.contact.user_id == USER
    assert document.message is not None and document.message.document is not None
    for update in (command, callback, contact, document):
        assert list(_unknown_fields(update)) == []


async def _greet(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.effective_message is not None and update.effective_user is not None
    await update.effective_message.reply_text(f"Halo {update.effective_user.first_name}")


async def test_application_polling_round_trip(api: FakeTelegramAPI) -> None:
    app = (
        Application.builder()
        .token(DEFAULT_TOKEN)
        .base_url(f"{api.url}/bot")
        .base_file_url(f"{api.url}/file/bot")
        .build()
    )
    app.add_handler(CommandHandler("lapor", _greet))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=5, drop_pending_updates=True)
        api.push_update(command_update(USER, "lapor", bot_username=BOT_USERNAME))
        record = await api.wait_for("sendMessage")
        await app.updater.stop()
        await app.stop()
    assert record.params == {"chat_id": USER, "text": "Halo Budi"}
    # On stop PTB confirms what it handled with a last, non-blocking getUpdates.
    final = api.requests[-1]
    assert final.method == "getUpdates" and final.params["timeout"] == 0
    assert api.pending_updates == []


async def test_standalone_process_control_endpoints() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.telegram_api",
        "--port",
        "0",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        async with httpx.AsyncClient(base_url=url) as client:
            pushed = await client.post("/_fake/updates", json=text_update(USER, "halo"))
            assert pushed.json()["result"]["update_id"] == 1
            updates = await client.post(f"/bot{DEFAULT_TOKEN}/getUpdates", data={"timeout": "0"})
            assert updates.json()["result"][0]["message"]["text"] == "halo"
            recorded = (await client.get("/_fake/requests")).json()["result"]
        assert [r["method"] for r in recorded] == ["getUpdates"]
        assert recorded[0]["params"] == {"timeout": 0}
    finally:
        process.terminate()
        await process.wait()


@pytest.fixture(scope="module")
def offline_bot() -> Bot:
    # Never initialised or used for requests; building one costs ~30 ms, so share it.
    return Bot(DEFAULT_TOKEN)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[p.stem for p in FIXTURE_FILES])
def test_fixture_parses_without_unknown_fields(path: Path, offline_bot: Bot) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    update = Update.de_json(data, offline_bot)
    assert update.update_id == data["update_id"]
    assert update.effective_user is not None or update.edited_message is not None
    assert list(_unknown_fields(update)) == []


def test_fixture_set_is_complete() -> None:
    expected = {
        "text_message",
        "command_start",
        "command_with_botname",
        "photo_several_sizes",
        "document_pdf",
        "album_photo_1",
        "album_photo_2",
        "album_photo_3",
        "callback_query",
        "contact_own",
        "contact_other",
        "edited_message",
        "sticker",
        "voice",
        "group_message",
        "location",
        "document_too_big",
    }
    assert expected <= {p.stem for p in FIXTURE_FILES}


def test_album_fixtures_share_media_group() -> None:
    groups = {
        json.loads((FIXTURES / f"album_photo_{i}.json").read_text())["message"]["media_group_id"]
        for i in (1, 2, 3)
    }
    assert len(groups) == 1


async def test_enforced_limits_answer_429_past_30_a_second_and_past_a_chats_burst() -> None:
    """Off by default; with SendLimits, the fake counts accepted messages by arrival on its
    clock (frozen here, so every message arrives "at once")."""
    now = [1000.0]
    limits = SendLimits()
    async with FakeTelegramAPI(token=DEFAULT_TOKEN, clock=lambda: now[0], limits=limits) as fake:
        bot = _ext_bot(fake)
        await bot.initialize()
        try:
            for chat in range(1, 4):  # the same chat: 3 at once, then too many
                await bot.send_message(USER, f"burst {chat}")
            with pytest.raises(RetryAfter):
                await bot.send_message(USER, "burst 4")
            assert fake.requests[-1].status == 429
            for chat in range(27):  # 30 in this second overall, then too many
                await bot.send_message(USER + 1 + chat, "one each")
            with pytest.raises(RetryAfter):
                await bot.send_message(USER + 100, "the 31st")
            assert fake.rate_limited == 2
            now[0] += 1.0  # a second later the overall window is free, the chat's is not
            await bot.send_message(USER + 100, "the 31st")
            with pytest.raises(RetryAfter):
                await bot.send_message(USER, "burst 4")
            now[0] += 2.0
            await bot.send_message(USER, "burst 4")
        finally:
            await bot.shutdown()
    assert len(fake.sent("sendMessage")) == 32
    assert fake.rate_limited == 3


async def test_enforced_limits_count_a_sliding_second_not_a_calendar_one() -> None:
    """Telegram's "30 a second" is any second: 15 late in one calendar second and 15 early in
    the next are 30 within one second, and the 31st is refused until the first is a whole
    second old (issue 14: the pacer is tested against this, not a kinder count)."""
    now = [1000.6]
    async with FakeTelegramAPI(
        token=DEFAULT_TOKEN, clock=lambda: now[0], limits=SendLimits()
    ) as fake:
        bot = _ext_bot(fake)
        await bot.initialize()
        try:
            for chat in range(15):
                await bot.send_message(USER + chat, "late in second 1000")
            now[0] = 1001.2
            for chat in range(15, 30):
                await bot.send_message(USER + chat, "early in second 1001")
            now[0] = 1001.5
            with pytest.raises(RetryAfter):
                await bot.send_message(USER + 30, "the 31st within a second")
            now[0] = 1001.7  # the first 15 are over a second old: out of the window
            await bot.send_message(USER + 30, "the 31st")
        finally:
            await bot.shutdown()
    assert fake.rate_limited == 1
    assert fake.most_in_one_second("sendMessage") == 31  # the refused attempt counts there
