"""The Telegram channel end to end: the real composition (bot.app.run_channels) with the real
python-telegram-bot client, talking HTTP to the fake Bot API, over the test database."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import evidence_store, run_channels, telegram_channel
from bot.channels.telegram import PRIVATE_ONLY, SECRET_HEADER, WEBHOOK_PATH, Limits, TelegramChannel
from bot.engine.channel import Channel
from bot.settings import Settings
from storage import identities, inbox
from storage.db import transaction
from storage.models import (
    ChannelIdentity,
    Contact,
    EvidenceFile,
    InboxMessage,
    OutboxMessage,
    OutboxStatus,
    Role,
    Submission,
    SubmissionStatus,
)
from tests.fakes.telegram_api import (
    BOT_USERNAME,
    FakeTelegramAPI,
    RecordedRequest,
    callback_update,
    command_update,
    contact_update,
    document_update,
    photo_update,
    text_update,
)
from tests.support.factories import FOCAL_PHONE, World, make_world
from tests.support.harness import jpeg_bytes, pdf_bytes

FIXTURES = Path(__file__).parent.parent / "fixtures" / "telegram"
Sessions = async_sessionmaker[AsyncSession]
# Tests answer faster than any person: without this the 1 msg/s per chat limit would make a
# whole report take a minute. The limiter itself is tested in test_telegram_delivery.
FAST = Limits(overall_per_second=1000, chat_burst=1000, chat_period=1)


def fixture(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return payload


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as fake:
        yield fake


@pytest.fixture
async def world(sessions: Sessions) -> World:
    async with sessions() as session:
        made = await make_world(session)
        await session.commit()
    return made


def settings_for(
    api: FakeTelegramAPI, database_url: str, data_dir: Path, *, http_port: int = 0, **extra: Any
) -> Settings:
    return Settings(
        telegram_token=api.token,
        telegram_api_url=api.url,
        database_url=database_url,
        data_dir=data_dir,
        http_port=http_port,
        **extra,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, *, limits: Limits = FAST) -> AsyncIterator[TelegramChannel]:
    """The product as `laporham run` composes it, until the block ends (then cancelled)."""
    channel = telegram_channel(settings, evidence_store(settings), limits=limits)
    task = asyncio.create_task(run_channels(settings, [channel]))
    try:
        yield channel
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@pytest.fixture
def settings(api: FakeTelegramAPI, database_url: str, data_dir: Path) -> Settings:
    return settings_for(api, database_url, data_dir)


def is_reply(chat_id: int, expect: str) -> Callable[[RecordedRequest], bool]:
    def match(record: RecordedRequest) -> bool:
        return (
            record.method == "sendMessage"
            and not record.failed
            and record.params.get("chat_id") == chat_id
            and expect in str(record.params.get("text", ""))
        )

    return match


def replies(api: FakeTelegramAPI, chat_id: int, expect: str = "") -> list[dict[str, Any]]:
    return [p for p in api.sent("sendMessage", chat_id) if expect in str(p.get("text", ""))]


@dataclass
class Person:
    """A Telegram user typing and tapping in a private chat with the bot."""

    api: FakeTelegramAPI
    user_id: int
    first_name: str = "Siti"

    async def push(
        self, update: dict[str, Any], expect: str, within: float = 10
    ) -> RecordedRequest:
        start = len(self.api.requests)
        self.api.push_update(update)
        return await self.api.wait_for(is_reply(self.user_id, expect), within, start=start)

    async def text(self, text: str, expect: str) -> RecordedRequest:
        return await self.push(text_update(self.user_id, text, first_name=self.first_name), expect)

    async def command(self, name: str, expect: str, **kwargs: Any) -> RecordedRequest:
        update = command_update(self.user_id, name, first_name=self.first_name, **kwargs)
        return await self.push(update, expect)

    async def share_own_number(self, expect: str = "Siti Rahma") -> RecordedRequest:
        update = contact_update(
            self.user_id, FOCAL_PHONE, contact_user_id=self.user_id, first_name=self.first_name
        )
        return await self.push(update, expect)

    def tap_update(self, message: RecordedRequest, pick: str) -> dict[str, Any]:
        """The callback update of tapping the button whose data or label is `pick`."""
        markup = message.params["reply_markup"]
        buttons = [button for row in markup["inline_keyboard"] for button in row]
        data = next(
            (b["callback_data"] for b in buttons if pick in (_choice_of(b), b["text"])),
            None,
        ) or next(b["callback_data"] for b in buttons if pick in b["text"])
        return callback_update(
            self.user_id,
            data,
            message_id=message.result["message_id"],
            message_text=message.params["text"],
            reply_markup=markup,
            first_name=self.first_name,
        )

    async def tap(self, message: RecordedRequest, pick: str, expect: str) -> RecordedRequest:
        return await self.push(self.tap_update(message, pick), expect)

    async def register(self) -> None:
        await self.text("halo", "Bagikan nomor saya")
        await self.share_own_number()

    async def reach_evidence(self, world: World) -> RecordedRequest:
        """Register, start the first action's report and answer up to its photo evidence."""
        await self.register()
        actions = await self.command("lapor", "pilih aksi")
        await self.tap(actions, f"a:{world.action.id}", "Berapa penerima")
        yes_no = await self.text("25", "daftar penerima")
        note = await self.tap(yes_no, "yes", "Catatan tambahan")
        return await self.tap(note, "skip", "Foto kegiatan")


async def collect(
    api: FakeTelegramAPI,
    match: Callable[[RecordedRequest], bool],
    count: int,
    *,
    start: int,
    within: float = 10,
) -> list[RecordedRequest]:
    """The first `count` answered requests from `start` that match, each taken as it comes."""
    found: list[RecordedRequest] = []
    while len(found) < count:
        found.append(
            await api.wait_for(
                lambda r: match(r) and all(r is not seen for seen in found), within, start=start
            )
        )
    return found


async def outbox_settled(sessions: Sessions) -> bool:
    async with sessions() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
        return all(row.status is OutboxStatus.sent for row in rows)


async def eventually(check: Callable[[], Any], within: float = 8) -> None:
    for _ in range(int(within * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not true within {within} s")


# --------------------------------------------------------------------------- the whole journey


async def test_register_and_report_with_album_and_pdf(
    api: FakeTelegramAPI, settings: Settings, sessions: Sessions, world: World
) -> None:
    user = Person(api, 710001)
    async with running(settings):
        ask = await user.text("halo", "Bagikan nomor saya")
        assert ask.params["parse_mode"] == "HTML"
        assert ask.params["reply_markup"] == {
            "keyboard": [[{"text": "Bagikan nomor saya", "request_contact": True}]],
            "one_time_keyboard": True,
            "resize_keyboard": True,
        }
        start = len(api.requests)
        await user.share_own_number()
        removed = await api.wait_for(
            lambda r: (
                r.method == "sendMessage"
                and r.params.get("reply_markup") == {"remove_keyboard": True}
            ),
            start=start,
        )
        assert removed.params["chat_id"] == user.user_id

        actions = await user.command("lapor", "pilih aksi")
        tap = user.tap_update(actions, f"a:{world.action.id}")
        start = len(api.requests)
        await user.push(tap, "Berapa penerima")
        # The spinner stops and the pressed keyboard goes away, so it can't be pressed twice.
        answered = await api.wait_for("answerCallbackQuery", start=start)
        assert answered.params["callback_query_id"] == tap["callback_query"]["id"]
        edited = await api.wait_for("editMessageReplyMarkup", start=start)
        assert edited.params["message_id"] == actions.result["message_id"]
        assert "reply_markup" not in edited.params and not edited.failed

        yes_no = await user.text("25", "daftar penerima")
        note = await user.tap(yes_no, "yes", "Catatan tambahan")
        await user.tap(note, "skip", "Foto kegiatan")

        # An album: three updates sharing a media_group_id, each its own event.
        start = len(api.requests)
        for index, color in enumerate(("red", "green", "blue")):
            size = api.add_file(f"album-{index}", jpeg_bytes(color), kind="photo")
            api.push_update(photo_update(user.user_id, [size], media_group_id="album-1"))
        acks = await collect(api, is_reply(user.user_id, "✅ Diterima:"), 3, start=start)
        assert len({r.params["text"] for r in acks}) == 3  # each photo named apart

        await user.command("selesai", "Tanggal penetapan")
        kinds = await user.text("25 Agustus 2025", "Jenis bantuan")
        await user.tap(kinds, "Modal usaha", "Daftar penerima")
        pdf = api.add_file(
            "pdf-1", pdf_bytes(), file_name="daftar.pdf", mime_type="application/pdf"
        )
        await user.push(document_update(user.user_id, pdf), "✅ Diterima: daftar.pdf")
        summary = await user.command("selesai", "Semua sudah lengkap")
        confirm = await user.tap(summary, "submit", "Kirim laporan ini?")
        await user.tap(confirm, "yes", "terkirim")

    async with sessions() as session:
        submission = (await session.exec(select(Submission))).one()
        assert submission.status is SubmissionStatus.submitted
        files = (await session.exec(select(EvidenceFile))).all()
        assert sorted(f.kind for f in files) == ["pdf", "photo", "photo", "photo"]
    downloads = [r for r in api.requests if r.method == "downloadFile"]
    assert len(downloads) == 4


# --------------------------------------------------------------------------- registration


async def test_someone_elses_contact_is_refused(
    api: FakeTelegramAPI, settings: Settings, sessions: Sessions, world: World
) -> None:
    user = Person(api, 710002)
    async with running(settings):
        await user.text("halo", "Bagikan nomor saya")
        other = contact_update(user.user_id, FOCAL_PHONE, contact_user_id=999)
        await user.push(other, "bukan milik akun Anda")
        await user.command("lapor", "Bagikan nomor saya")  # still not registered
    async with sessions() as session:
        assert (await session.exec(select(ChannelIdentity))).all() == []


# Every way a Telegram user can claim a number: only a contact whose user_id is the sender's
# own counts (Telegram fills user_id from the number itself, so it can't be forged).
ADMIN_PHONE = "+6281200000099"
CLAIMS: dict[str, tuple[str, int | str | None, str | None, str]] = {
    # name: (phone on the card, the card's user_id (SELF: the sender's), who they become, reply)
    "own number, imported": (FOCAL_PHONE, "SELF", "Siti Rahma", "Siti Rahma"),
    "own card, number not imported": ("+6289900000009", "SELF", None, "belum ada di daftar"),
    "the admin's card": (ADMIN_PHONE, 999, None, "bukan milik akun Anda"),
    "a card with no user_id": (ADMIN_PHONE, None, None, "bukan milik akun Anda"),
}


@pytest.mark.parametrize("case", list(CLAIMS))
async def test_every_way_to_claim_a_number(
    api: FakeTelegramAPI, settings: Settings, sessions: Sessions, world: World, case: str
) -> None:
    phone, card_user, registered_as, phrase = CLAIMS[case]
    async with sessions() as session:
        session.add(
            Contact(
                name="Admin Pusat", phone=ADMIN_PHONE, role=Role.admin, region_id=world.region.id
            )
        )
        await session.commit()
    user = Person(api, 710010)
    contact_user_id = user.user_id if isinstance(card_user, str) else card_user  # "SELF"
    async with running(settings):
        await user.text("halo", "Bagikan nomor saya")
        await user.push(
            contact_update(user.user_id, phone, contact_user_id=contact_user_id), phrase
        )
    async with sessions() as session:
        found = await identities.find_identity(
            session=session, channel=Channel.telegram, external_id=str(user.user_id)
        )
    assert (found[1].name if found else None) == registered_as


async def test_command_addressed_to_the_bot_by_name(
    api: FakeTelegramAPI, settings: Settings, world: World
) -> None:
    user = Person(api, 710003)
    async with running(settings):
        await user.register()
        await user.command("lapor", "pilih aksi", bot_username=BOT_USERNAME)
        await user.command("LAPOR", "pilih aksi", bot_username=BOT_USERNAME)


# --------------------------------------------------------------------------- at-least-once


async def test_every_update_delivered_twice_is_answered_once(
    api: FakeTelegramAPI, settings: Settings, world: World
) -> None:
    user = Person(api, 710004)
    async with running(settings):
        await user.register()
        lapor = command_update(user.user_id, "lapor")
        start = len(api.requests)
        api.push_update(lapor)
        api.push_update(lapor)  # the same message again (the fake gives it a new update_id)
        actions = await api.wait_for(is_reply(user.user_id, "pilih aksi"), start=start)
        tap = user.tap_update(actions, f"a:{world.action.id}")
        api.push_update(tap)
        api.push_update(tap)  # the same button press delivered twice
        await api.wait_for(is_reply(user.user_id, "Berapa penerima"), start=start)
        await user.text("7", "daftar penerima")
    assert len(replies(api, user.user_id, "pilih aksi")) == 1
    assert len(replies(api, user.user_id, "Berapa penerima")) == 1


async def test_killed_mid_report_and_restarted_resumes_without_duplicates(
    api: FakeTelegramAPI, settings: Settings, sessions: Sessions, world: World
) -> None:
    user = Person(api, 710005)
    async with running(settings):
        await user.register()
        actions = await user.command("lapor", "pilih aksi")
        await user.tap(actions, f"a:{world.action.id}", "Berapa penerima")
        yes_no = await user.text("12", "daftar penerima")
        # Once the bot is long-polling again (the reply may arrive before that poll does), hold
        # the getUpdates that would confirm the next update, then kill the process: the update
        # was handled and answered but Telegram was never told so.
        answered = max(
            u["update_id"]
            for r in api.requests
            if r.method == "getUpdates"
            for u in (r.result or [])
            if u.get("message", {}).get("text") == "12"
        )
        await api.wait_for(
            lambda r: r.method == "getUpdates" and (r.params.get("offset") or 0) > answered,
            finished=False,
        )
        api.delay_next("getUpdates", 5)
        press = await user.tap(yes_no, "yes", "Catatan tambahan")
        # Killed between two turns. (Killed between Telegram accepting a message and the
        # outbox recording it, the message would go again: the outbox is at-least-once.)
        await eventually(lambda: outbox_settled(sessions))

    async with running(settings):  # a new process over the same database
        await user.tap(press, "skip", "Foto kegiatan")

    delivered = [
        r
        for r in api.requests
        if r.method == "getUpdates"
        and any(
            "callback_query" in u and u["callback_query"]["data"].startswith("yes#")
            for u in (r.result or [])
        )
    ]
    assert len(delivered) >= 2, "the restarted run must have been handed the update again"
    prompt = press.params["text"]
    assert [p["text"] for p in api.sent("sendMessage", user.user_id)].count(prompt) == 1


async def test_a_redelivered_button_press_is_neither_answered_nor_edited_again(
    api: FakeTelegramAPI, settings: Settings, world: World
) -> None:
    """Issue 12, item 18: Telegram may deliver a press twice; only the first is settled."""
    user = Person(api, 710020)
    async with running(settings):
        await user.register()
        actions = await user.command("lapor", "pilih aksi")
        tap = user.tap_update(actions, f"a:{world.action.id}")
        await user.push(tap, "Berapa penerima")
        await api.wait_for("editMessageReplyMarkup")
        start = len(api.requests)
        api.push_update(tap)  # the same press again, under a new update_id
        # The user's next message is handled after the redelivery (one user's updates in
        # order), and leaving `running` waits for what the channel still had in hand.
        await user.text("7", "daftar penerima")
    settled = [
        r.method
        for r in api.requests[start:]
        if r.method in ("answerCallbackQuery", "editMessageReplyMarkup")
    ]
    assert settled == []


async def test_a_slow_download_holds_no_one_else_and_a_crash_loses_nothing(
    api: FakeTelegramAPI, settings: Settings, sessions: Sessions, world: World
) -> None:
    """Issue 12, item 14: while one user's file takes long to download, other users are
    answered; the poll moves past it, and a process killed meanwhile handles it at restart."""
    slow, other = Person(api, 710021), Person(api, 710022)
    async with running(settings):
        await slow.reach_evidence(world)
        api.delay_next("downloadFile", 120)  # longer than this test may take
        photo = api.add_file("slow-1", jpeg_bytes("red"), kind="photo")
        pushed = api.push_update(photo_update(slow.user_id, [photo]))
        await api.wait_for("downloadFile", finished=False)
        await other.text("halo", "Bagikan nomor saya")
        # Telegram is told the photo was received: it is in the inbox, not in a poll's hands.
        await api.wait_for(
            lambda r: (
                r.method == "getUpdates" and (r.params.get("offset") or 0) > pushed["update_id"]
            ),
            finished=False,
        )
        assert not api.pending_updates
        await eventually(lambda: outbox_settled(sessions))  # (what was sent is known sent)
    async with running(settings):  # killed mid-download; a new process over the same database
        await api.wait_for(is_reply(slow.user_id, "✅ Diterima"))
    assert len(replies(api, other.user_id, "Bagikan nomor saya")) == 1


async def test_stored_webhook_update_is_replayed_at_start(
    api: FakeTelegramAPI, settings: Settings, sessions: Sessions, world: World
) -> None:
    update = text_update(710006, "halo")
    update["update_id"] = 1
    key = f"msg:710006:{update['message']['message_id']}"  # as the webhook stores it
    async with transaction(sessions) as session:
        await inbox.store_received(
            session=session, channel=Channel.telegram, message_id=key, payload=update
        )
    async with running(settings):
        await api.wait_for(is_reply(710006, "Bagikan nomor saya"))
    async with sessions() as session:
        row = (await session.exec(select(InboxMessage))).first()
        assert row is not None and row.status.value == "processed"


# --------------------------------------------------------------------------- delivery failures


async def test_429_storm_waits_and_delivers_once(
    api: FakeTelegramAPI, settings: Settings, world: World
) -> None:
    user = Person(api, 710007)
    async with running(settings):
        api.fail_next("sendMessage", status=429, retry_after=1, count=3)
        reply = await user.text("halo", "Bagikan nomor saya")
    failed = [r for r in api.requests if r.method == "sendMessage" and r.status == 429]
    assert len(failed) == 3
    attempts = [*failed, reply]  # as the fake received them
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= 0.95 for gap in gaps)  # each "retry after 1 s" honoured
    assert len(replies(api, user.user_id, "Bagikan nomor saya")) == 1


async def test_blocked_user_is_not_retried(
    api: FakeTelegramAPI, settings: Settings, sessions: Sessions, world: World
) -> None:
    user = Person(api, 710008)
    async with running(settings):
        await user.register()
        api.block(user.user_id)
        start = len(api.requests)
        api.push_update(text_update(user.user_id, "halo lagi"))
        await api.wait_for(lambda r: r.method == "sendMessage" and r.status == 403, start=start)

        async def failed() -> bool:
            async with sessions() as session:
                rows = (await session.exec(select(OutboxMessage))).all()
                return any(row.status is OutboxStatus.failed for row in rows)

        await eventually(failed)
        async with sessions() as session:
            identity = (await session.exec(select(ChannelIdentity))).one()
            assert identity.unreachable_since is not None
        # The user unblocks the bot and writes again. Replies to one user keep their order,
        # so a retry of a refused message would have to go before this reply.
        api.blocked_chats.discard(user.user_id)
        await user.command("lapor", "pilih aksi")
    attempts = [r.params["text"] for r in api.requests[start:] if r.method == "sendMessage"]
    assert attempts and len(attempts) == len(set(attempts))  # each message tried once


async def test_too_big_document_is_refused_before_download(
    api: FakeTelegramAPI, settings: Settings, world: World
) -> None:
    user = Person(api, 710009)
    async with running(settings):
        await user.reach_evidence(world)
        big = api.add_file("big-1", b"%PDF-1.4", file_name="besar.pdf", file_size=25_000_000)
        await user.push(document_update(user.user_id, big), "ukurannya lebih dari")
    assert not [r for r in api.requests if r.method in ("getFile", "downloadFile")]


# --------------------------------------------------------------------------- odd updates


async def test_stickers_edits_groups_and_garbage_do_not_break_it(
    api: FakeTelegramAPI, settings: Settings, world: World
) -> None:
    budi = 5123456789  # the user of the recorded fixtures
    async with running(settings):
        for name in ("sticker", "edited_message", "voice", "location"):
            start = len(api.requests)
            update = fixture(name)
            api.push_update(update)
            chat = (update.get("message") or update["edited_message"])["chat"]["id"]
            await api.wait_for(is_reply(chat, ""), start=start)
        group = fixture("group_message")
        group_chat = group["message"]["chat"]["id"]
        api.push_update(group)
        api.push_update({"message": {"message_id": 1}})  # not a Telegram update at all
        api.push_update(group)  # told once is enough
        await Person(api, budi).text("halo", "Bagikan nomor saya")
    told = api.sent("sendMessage", group_chat)
    assert [p["text"] for p in told] == [PRIVATE_ONLY]


# --------------------------------------------------------------------------- webhook mode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_webhook_checks_the_secret_and_stores_before_answering(
    api: FakeTelegramAPI, database_url: str, data_dir: Path, sessions: Sessions, world: World
) -> None:
    port = free_port()
    settings = settings_for(
        api,
        database_url,
        data_dir,
        telegram_webhook_url="https://laporham.example.go.id/telegram/webhook",
        http_port=port,
        telegram_webhook_secret="rahasia-webhook-123",
    )
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    update = text_update(710010, "halo")
    update["update_id"] = 9001
    async with running(settings), httpx.AsyncClient(timeout=5) as client:
        registered = await api.wait_for("setWebhook")
        assert registered.params["url"] == settings.telegram_webhook_url
        assert registered.params["secret_token"] == "rahasia-webhook-123"
        assert set(registered.params["allowed_updates"]) >= {"message", "callback_query"}

        for headers in ({SECRET_HEADER: "salah"}, {}):
            refused = await client.post(url, json=update, headers=headers)
            assert refused.status_code == 403
        async with sessions() as session:
            assert (await session.exec(select(InboxMessage))).all() == []

        good = {SECRET_HEADER: "rahasia-webhook-123"}
        assert (await client.post(url, json=update, headers=good)).status_code == 200
        await api.wait_for(is_reply(710010, "Bagikan nomor saya"))
        assert (await client.post(url, json=update, headers=good)).status_code == 200  # again
        follow = text_update(710010, "halo lagi")
        follow["update_id"] = 9002
        assert (await client.post(url, json=follow, headers=good)).status_code == 200
        await collect(api, is_reply(710010, "Bagikan nomor saya"), 2, start=0)
    assert len(replies(api, 710010, "Bagikan nomor saya")) == 2  # not 3
    assert not [r for r in api.requests if r.method == "getUpdates"]


async def test_webhook_refuses_a_body_over_1_mb(
    api: FakeTelegramAPI, database_url: str, data_dir: Path, sessions: Sessions, world: World
) -> None:
    """Issue 12, item 16: even with the right secret, a body over 1 MB gets 413 and nothing
    of it is stored, whether its length is declared or it comes in chunks."""
    port = free_port()
    settings = settings_for(
        api,
        database_url,
        data_dir,
        telegram_webhook_url="https://laporham.example.go.id/telegram/webhook",
        http_port=port,
        telegram_webhook_secret="rahasia-webhook-123",
    )
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    good = {SECRET_HEADER: "rahasia-webhook-123"}
    update = text_update(710030, "halo")
    update["update_id"] = 9101
    update["padding"] = "x" * (2 * 1024 * 1024)  # a valid update, only far too big
    body = json.dumps(update).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    async with running(settings), httpx.AsyncClient(timeout=5) as client:
        await api.wait_for("setWebhook")
        declared = await client.post(url, content=body, headers=good)
        assert declared.status_code == 413
        chunked = await client.post(url, content=chunks(), headers=good)
        assert chunked.status_code == 413
        small = text_update(710030, "halo")
        small["update_id"] = 9102
        assert (await client.post(url, json=small, headers=good)).status_code == 200
        await api.wait_for(is_reply(710030, "Bagikan nomor saya"))
    async with sessions() as session:
        assert len((await session.exec(select(InboxMessage))).all()) == 1


def _choice_of(button: dict[str, Any]) -> str:
    """The choice id of a button: its callback data without the prompt tag."""
    return str(button["callback_data"]).rpartition("#")[0]
