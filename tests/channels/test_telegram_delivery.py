"""TelegramChannel.send and fetch_file against the fake Bot API over real HTTP: markup,
keyboards, splitting, files, the translation of Bot API errors and the rate limits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.channels.telegram import (
    Limits,
    TelegramChannel,
    TelegramConfigError,
    callback_data,
    contact_label,
    seconds,
    split_html,
    utf16_len,
)
from bot.engine.channel import (
    Channel,
    FetchFailed,
    FileTooLarge,
    PermanentSendError,
    RecipientUnreachable,
    SendError,
    TransientSendError,
)
from bot.engine.events import Choice, FileReceived, OutFile, OutText
from storage.evidence import LocalEvidenceStore
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.support.harness import jpeg_bytes, pdf_bytes

CHAT = 424242
FAST = Limits(overall_per_second=1000, chat_burst=1000, chat_period=1)


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> LocalEvidenceStore:
    return LocalEvidenceStore(tmp_path / "evidence")


def make_channel(
    api: FakeTelegramAPI, store: LocalEvidenceStore, limits: Limits = FAST
) -> TelegramChannel:
    return TelegramChannel(token=api.token, api_url=api.url, store=store, limits=limits)


@pytest.fixture
async def channel(
    api: FakeTelegramAPI, store: LocalEvidenceStore
) -> AsyncIterator[TelegramChannel]:
    made = make_channel(api, store)
    yield made
    await made.close()


def file_event(ref: str, size: int | None) -> FileReceived:
    return FileReceived(
        channel=Channel.telegram,
        user_key=str(CHAT),
        chat_id=str(CHAT),
        message_id=f"msg:{CHAT}:{ref}",
        file_ref=ref,
        claimed_size=size,
    )


# --------------------------------------------------------------------------- texts and keyboards


async def test_text_goes_as_html_unchanged_with_one_button_per_row(
    api: FakeTelegramAPI, channel: TelegramChannel
) -> None:
    text = "<b>Pilih aksi</b> untuk Dinas &amp; Badan &lt;OPD&gt;:"
    choices = (Choice("a:1", "Bantuan usaha"), Choice("a:2", "Sekolah inklusi"))
    provider_id = await channel.send(str(CHAT), OutText(text=text, choices=choices))
    (sent,) = api.sent("sendMessage", CHAT)
    assert sent["text"] == text  # already escaped by the engine: not escaped twice
    assert sent["parse_mode"] == "HTML"
    assert sent["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Bantuan usaha", "callback_data": "a:1"}],
            [{"text": "Sekolah inklusi", "callback_data": "a:2"}],
        ]
    }
    record = await api.wait_for("sendMessage")
    assert provider_id == str(record.result["message_id"])


async def test_contact_request_is_a_one_time_reply_keyboard(
    api: FakeTelegramAPI, channel: TelegramChannel
) -> None:
    await channel.send(
        str(CHAT), OutText(text="Tekan <b>Share my number</b>", request_contact=True)
    )
    (sent,) = api.sent("sendMessage", CHAT)
    assert sent["reply_markup"] == {
        "keyboard": [[{"text": "Share my number", "request_contact": True}]],
        "one_time_keyboard": True,
        "resize_keyboard": True,
    }


def test_contact_button_label_follows_the_question_language() -> None:
    assert contact_label("tekan tombol <b>Bagikan nomor saya</b>") == "Bagikan nomor saya"
    assert contact_label("tap the <b>Share my number</b> button") == "Share my number"
    assert contact_label("") == "Bagikan nomor saya"


def test_callback_data_is_cut_to_64_bytes() -> None:
    assert callback_data("a:12") == "a:12"
    assert len(callback_data("x" * 100).encode()) == 64
    cut = callback_data("é" * 40)  # 80 bytes: no half characters
    assert len(cut.encode()) <= 64 and cut == "é" * 32


async def test_too_long_text_is_split_with_buttons_on_the_last_part(
    api: FakeTelegramAPI, channel: TelegramChannel
) -> None:
    text = "<b>" + "kata " * 2500 + "</b>\nPilih:"
    await channel.send(str(CHAT), OutText(text=text, choices=(Choice("ok", "OK"),)))
    parts = api.sent("sendMessage", CHAT)
    assert len(parts) == 4
    assert all(len(p["text"]) <= 4096 for p in parts)
    assert all(p["text"].count("<b>") == p["text"].count("</b>") for p in parts)
    assert [("reply_markup" in p) for p in parts] == [False, False, False, True]


@pytest.mark.parametrize(
    "text",
    [
        "pendek",
        "a" * 5000,
        "baris\n" * 1500,
        "<i>" + "x &amp; y " * 900 + "</i>",
        "😀" * 3000,  # two UTF-16 units each
    ],
)
def test_split_html_parts_fit_and_keep_everything(text: str) -> None:
    parts = split_html(text, 4096)
    assert all(utf16_len(part) <= 4096 for part in parts)
    plain = "".join(parts).replace("<i>", "").replace("</i>", "").replace("\n", "")
    assert plain == text.replace("<i>", "").replace("</i>", "").replace("\n", "")
    for part in parts:
        assert part.count("<i>") == part.count("</i>")
        assert "&amp" not in part.replace("&amp;", "")  # no entity cut in two


# --------------------------------------------------------------------------- files out


async def test_photo_and_document_with_captions(
    api: FakeTelegramAPI, channel: TelegramChannel, store: LocalEvidenceStore
) -> None:
    photo_key = await store.put(jpeg_bytes(), extension="jpg")
    pdf_key = await store.put(pdf_bytes(), extension="pdf")
    await channel.send(
        str(CHAT),
        OutFile(storage_key=photo_key, filename="rekap.jpg", caption="<b>Rekap</b>", as_photo=True),
    )
    await channel.send(str(CHAT), OutFile(storage_key=pdf_key, filename="rekap.pdf", caption="x"))
    photo = await api.wait_for("sendPhoto")
    assert photo.files["photo"] == jpeg_bytes()
    assert photo.params["caption"] == "<b>Rekap</b>" and photo.params["parse_mode"] == "HTML"
    document = await api.wait_for("sendDocument")
    assert document.files["document"] == pdf_bytes()
    assert document.result["document"]["file_name"] == "rekap.pdf"


async def test_refused_photo_goes_as_document(
    api: FakeTelegramAPI, channel: TelegramChannel, store: LocalEvidenceStore
) -> None:
    key = await store.put(jpeg_bytes(), extension="jpg")
    api.fail_next("sendPhoto", status=400, description="Bad Request: PHOTO_INVALID_DIMENSIONS")
    await channel.send(str(CHAT), OutFile(storage_key=key, filename="grafik.jpg", as_photo=True))
    assert len(api.sent("sendDocument", CHAT)) == 1


async def test_caption_too_long_follows_as_text(
    api: FakeTelegramAPI, channel: TelegramChannel, store: LocalEvidenceStore
) -> None:
    key = await store.put(pdf_bytes(), extension="pdf")
    caption = "keterangan " * 150
    await channel.send(str(CHAT), OutFile(storage_key=key, filename="a.pdf", caption=caption))
    (document,) = api.sent("sendDocument", CHAT)
    assert "caption" not in document
    assert [p["text"] for p in api.sent("sendMessage", CHAT)] == [caption]


async def test_missing_evidence_is_a_permanent_failure(channel: TelegramChannel) -> None:
    with pytest.raises(PermanentSendError):
        await channel.send(str(CHAT), OutFile(storage_key="ab/" + "0" * 64 + ".pdf", filename="x"))


async def test_a_file_name_reaches_telegram_as_written(
    api: FakeTelegramAPI, channel: TelegramChannel, store: LocalEvidenceStore
) -> None:
    """Telegram reads filename="..." literally: spaces stay spaces (not %20), and only `"` and
    control characters are escaped, so that no name can end its header."""
    key = await store.put(pdf_bytes(), extension="pdf")
    name = 'Daftar "final"\r\nX-Evil: 1 Agustus.pdf'
    await channel.send(str(CHAT), OutFile(storage_key=key, filename=name))
    document = await api.wait_for("sendDocument")
    assert document.result["document"]["file_name"] == (
        "Daftar %22final%22%0D%0AX-Evil: 1 Agustus.pdf"
    )


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "description", "error", "retry_after"),
    [
        (429, None, TransientSendError, 2.0),
        (500, None, TransientSendError, None),
        (502, None, TransientSendError, None),
        (403, None, RecipientUnreachable, None),
        (400, "Bad Request: chat not found", RecipientUnreachable, None),
        (400, "Bad Request: BUTTON_DATA_INVALID", PermanentSendError, None),
    ],
)
async def test_bot_api_errors_become_send_errors(
    api: FakeTelegramAPI,
    channel: TelegramChannel,
    status: int,
    description: str | None,
    error: type[SendError],
    retry_after: float | None,
) -> None:
    api.fail_next(
        "sendMessage",
        status=status,
        description=description,
        retry_after=2 if status == 429 else None,
    )
    with pytest.raises(error) as raised:
        await channel.send(str(CHAT), OutText(text="halo"))
    if error is PermanentSendError:
        assert not isinstance(raised.value, RecipientUnreachable)
    assert raised.value.retry_after == retry_after


async def test_unreachable_server_is_transient(store: LocalEvidenceStore) -> None:
    channel = TelegramChannel(token="1:A", api_url="http://127.0.0.1:9", store=store)
    try:
        with pytest.raises(TransientSendError):
            await channel.send(str(CHAT), OutText(text="halo"))
    finally:
        await channel.close()


async def test_broken_markup_still_reaches_the_user_as_plain_text(
    api: FakeTelegramAPI, channel: TelegramChannel
) -> None:
    api.fail_next(
        "sendMessage", status=400, description="Bad Request: can't parse entities: tag <x>"
    )
    await channel.send(str(CHAT), OutText(text="<b>Halo</b> &amp; selamat"))
    (sent,) = api.sent("sendMessage", CHAT)
    assert sent["text"] == "Halo & selamat" and "parse_mode" not in sent


async def test_rejected_token_stops_the_channel_without_leaking_it(
    store: LocalEvidenceStore,
) -> None:
    async with FakeTelegramAPI(token="123:RIGHT") as api:
        channel = TelegramChannel(token="123:WRONG", api_url=api.url, store=store)
        try:
            with pytest.raises(TelegramConfigError) as raised:
                await asyncio.wait_for(channel.start(None), 10)  # type: ignore[arg-type] # start() never calls the engine
        finally:
            await channel.close()
    assert "WRONG" not in str(raised.value) and "WRONG" not in repr(raised.value.__cause__)


async def test_refused_webhook_url_stops_the_channel(
    api: FakeTelegramAPI, store: LocalEvidenceStore
) -> None:
    channel = TelegramChannel(
        token=api.token, api_url=api.url, store=store, webhook_url="http://insecure.example"
    )
    api.fail_next("setWebhook", status=400, description="Bad Request: bad webhook: HTTPS url")
    try:
        with pytest.raises(TelegramConfigError, match="setWebhook"):
            await asyncio.wait_for(channel.start(None), 10)  # type: ignore[arg-type] # start() never calls the engine
    finally:
        await channel.close()


async def test_a_token_revoked_while_polling_stops_the_channel(
    api: FakeTelegramAPI, channel: TelegramChannel
) -> None:
    await channel.start(None)  # type: ignore[arg-type] # start() never calls the engine
    api.token = "123:REVOKED"  # BotFather's /revoke
    with pytest.raises(TelegramConfigError):
        await asyncio.wait_for(channel.run(None), 10)  # type: ignore[arg-type] # no update comes


def test_retry_after_in_seconds() -> None:
    assert seconds(3) == 3.0
    assert seconds(timedelta(seconds=1.5)) == 1.5


async def test_not_a_chat_id(channel: TelegramChannel) -> None:
    with pytest.raises(PermanentSendError):
        await channel.send("console", OutText(text="halo"))


# --------------------------------------------------------------------------- files in


async def test_fetch_file_downloads_the_bytes(
    api: FakeTelegramAPI, channel: TelegramChannel
) -> None:
    api.add_file("doc-1", pdf_bytes(), file_name="a.pdf")
    assert await channel.fetch_file(file_event("doc-1", len(pdf_bytes())), max_bytes=10**6) == (
        pdf_bytes()
    )


async def test_too_big_is_refused_before_any_request(
    api: FakeTelegramAPI, channel: TelegramChannel
) -> None:
    api.add_file("big", b"x", file_size=25_000_000)
    with pytest.raises(FileTooLarge):
        await channel.fetch_file(file_event("big", 25_000_000), max_bytes=100 * 1024 * 1024)
    assert not [r for r in api.requests if r.method in ("getFile", "downloadFile")]


async def test_unknown_size_too_big_is_refused_before_download(
    api: FakeTelegramAPI, channel: TelegramChannel
) -> None:
    api.add_file("big", b"x", file_size=25_000_000)  # getFile answers "file is too big"
    with pytest.raises(FileTooLarge):
        await channel.fetch_file(file_event("big", None), max_bytes=100 * 1024 * 1024)
    api.add_file("mid", b"y" * 1000)
    with pytest.raises(FileTooLarge):
        await channel.fetch_file(file_event("mid", None), max_bytes=500)
    assert not [r for r in api.requests if r.method == "downloadFile"]


async def test_failed_downloads(api: FakeTelegramAPI, channel: TelegramChannel) -> None:
    with pytest.raises(FetchFailed):
        await channel.fetch_file(file_event("no-such-file", 10), max_bytes=1000)
    api.add_file("doc-2", b"%PDF-1.4 x")
    api.fail_next("downloadFile", status=500)
    with pytest.raises(FetchFailed):
        await channel.fetch_file(file_event("doc-2", 10), max_bytes=1000)


async def test_each_failure_is_one_log_line_and_success_is_quiet(
    api: FakeTelegramAPI, store: LocalEvidenceStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12, item 17: a download timeout, a 403 and each 429 leave one line each, with
    the channel, a short user key and the reason; what succeeds leaves none."""
    channel = TelegramChannel(
        token=api.token, api_url=api.url, store=store, limits=FAST, download_timeout=0.5
    )
    caplog.set_level(logging.DEBUG, logger="bot.channels.telegram")
    try:
        api.add_file("slow-1", b"%PDF-1.4 x")
        api.delay_next("downloadFile", 30)
        with pytest.raises(FetchFailed):
            await channel.fetch_file(file_event("slow-1", 10), max_bytes=1000)
        api.block(CHAT)
        with pytest.raises(RecipientUnreachable):
            await channel.send(str(CHAT), OutText(text="halo"))
        # retry_after 1 s: the channel now pauses every send for it (a 429 holds the bot).
        api.fail_next("sendMessage", status=429, retry_after=1, count=2)
        for _ in range(2):
            with pytest.raises(TransientSendError):
                await channel.send("6281234", OutText(text="halo"))
        await channel.send("6281234", OutText(text="halo"))
        api.add_file("doc-1", b"%PDF-1.4 x")
        await channel.fetch_file(file_event("doc-1", 10), max_bytes=1000)
    finally:
        await channel.close()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("bot.channels.telegram")]
    assert len(lines) == 4, lines
    download, blocked, *limited = lines
    assert download.startswith("telegram …4242: download failed:")
    assert "timed out" in download.lower()
    assert blocked == "telegram …4242: send failed: 403 Forbidden: bot was blocked by the user"
    assert limited == ["telegram …1234: send failed: 429 too many requests, retry after 1 s"] * 2
    assert not any("424242" in line or "6281234" in line for line in lines)


async def test_a_long_poll_in_flight_does_not_hold_a_send(
    api: FakeTelegramAPI, store: LocalEvidenceStore
) -> None:
    """getUpdates has connections of its own: a reply goes out while a long poll waits."""
    channel = TelegramChannel(
        token=api.token, api_url=api.url, store=store, limits=FAST, poll_timeout=30
    )
    polling = asyncio.create_task(channel.run(None))  # type: ignore[arg-type] # no update comes for it
    try:
        poll = await api.wait_for("getUpdates", finished=False)
        await channel.send(str(CHAT), OutText(text="halo"))
        assert not poll.finished
    finally:
        polling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await polling
        await channel.close()


# --------------------------------------------------------------------------- rate limits


async def test_a_chat_gets_a_burst_of_three_then_waits(
    api: FakeTelegramAPI, store: LocalEvidenceStore
) -> None:
    """With a period far longer than the test: three messages go at once, the fourth waits,
    and another chat is not held behind it."""
    channel = make_channel(api, store, Limits(chat_burst=3, chat_period=600))
    sends = [
        asyncio.create_task(channel.send(str(CHAT), OutText(text=f"pesan {n}"))) for n in range(5)
    ]
    try:
        async with asyncio.timeout(10):  # a deadlock guard: the burst needs no waiting
            done: set[asyncio.Task[str | None]] = set()
            while len(done) < 3:
                finished, _ = await asyncio.wait(
                    set(sends) - done, return_when=asyncio.FIRST_COMPLETED
                )
                done |= finished
            await channel.send("777", OutText(text="chat lain"))
        assert len(api.sent("sendMessage", 777)) == 1
        assert len(api.sent("sendMessage", CHAT)) == 3
        assert sum(send.done() for send in sends) == 3  # the other two still wait
    finally:
        for send in sends:
            send.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        await channel.close()


async def test_after_its_burst_a_chat_gets_about_one_message_a_second(
    api: FakeTelegramAPI, store: LocalEvidenceStore
) -> None:
    channel = make_channel(api, store, Limits())
    try:
        started = time.monotonic()
        await asyncio.gather(
            *(channel.send(str(CHAT), OutText(text=f"pesan {n}")) for n in range(5))
        )
    finally:
        await channel.close()
    times = sorted(r.at - started for r in api.requests if r.params.get("chat_id") == CHAT)
    assert times[3] >= 0.95 and times[4] >= 1.95


async def test_never_more_than_30_attempts_in_any_second(
    api: FakeTelegramAPI, store: LocalEvidenceStore
) -> None:
    """Telegram counts about 30 messages a second per bot, in any second: a burst of 30 at
    once followed by 30 a second would put 60 in one second (issue 12, item 15)."""
    channel = make_channel(api, store, Limits(chat_burst=100))
    try:
        await asyncio.gather(*(channel.send(str(n), OutText(text="x")) for n in range(1, 76)))
    finally:
        await channel.close()
    assert len(api.sent("sendMessage")) == 75
    assert api.most_in_one_second("sendMessage") <= 30
