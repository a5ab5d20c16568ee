"""The WhatsApp channel end to end: signed webhooks into the product's HTTP server, the real
engine and database, replies to a fake Graph API over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import App, build, evidence_store, whatsapp_channel
from bot.channels.whatsapp import WEBHOOK_PATH, WhatsAppChannel
from bot.engine.channel import Channel, FetchFailed, FileTooLarge, TransientSendError
from bot.engine.events import Choice, FileReceived, OutFile, OutText, outgoing_to_payload
from bot.http import HttpServer, build_app
from bot.settings import Settings
from storage import identities, inbox, outbox
from storage.db import transaction
from storage.evidence import LocalEvidenceStore
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
from storage.types import utcnow
from tests.fakes import whatsapp_payloads as wp
from tests.fakes.graph_api import FakeGraphAPI
from tests.support.factories import World, make_world
from tests.support.harness import jpeg_bytes, pdf_bytes

TOKEN = "wa-test-token"
SECRET = "wa-app-secret"
VERIFY = "wa-verify-token"
PNID = wp.PHONE_NUMBER_ID
SITI = "6281200000001"  # the focal point of make_world, +6281200000001
SETTLE_SECONDS = 10.0
Json = dict[str, Any]
Sessions = async_sessionmaker[AsyncSession]
_media_ids = itertools.count(4_000_000_000_000_001)


def text_of(body: Json) -> str:
    kind = body["type"]
    if kind == "text":
        return str(body["text"]["body"])
    if kind == "interactive":
        return str(body["interactive"]["body"]["text"])
    if kind in {"image", "document"}:
        return str(body[kind].get("caption", ""))
    params = [
        p["text"]
        for component in body["template"].get("components", [])
        for p in component.get("parameters", [])
        if p["type"] == "text"
    ]
    return " ".join(params)


def choices_of(body: Json) -> dict[str, str]:
    """title -> id of the buttons or list rows of an interactive message."""
    if body.get("type") != "interactive":
        return {}
    action = body["interactive"]["action"]
    if "buttons" in action:
        return {b["reply"]["title"]: b["reply"]["id"] for b in action["buttons"]}
    return {r["title"]: r["id"] for s in action["sections"] for r in s["rows"]}


@dataclass
class WhatsApp:
    api: FakeGraphAPI
    app: App
    adapter: WhatsAppChannel
    client: httpx.AsyncClient
    settings: Settings

    async def post(self, payload: Json, *, secret: str | None = SECRET) -> httpx.Response:
        body = wp.encode(payload)
        headers = wp.signed_headers(body, secret) if secret else {}
        return await self.client.post(WEBHOOK_PATH, content=body, headers=headers)

    async def say(self, payload: Json, *, twice: bool = True) -> list[Json]:
        """Deliver a webhook (twice, as Meta may) and return the replies it caused."""
        wa_id = payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"]
        before = len(self.api.sent_messages(wa_id))
        copies = 2 if twice else 1  # the second copy races the first one's handling
        responses = await asyncio.gather(*(self.post(payload) for _ in range(copies)))
        assert [r.status_code for r in responses] == [200] * copies
        await self.settle()
        if twice:  # and once more after it was handled
            assert (await self.post(payload)).status_code == 200
            await self.settle()
        return self.api.sent_messages(wa_id)[before:]

    async def settle(self) -> None:
        """Until every handler is done and the outbox holds nothing to send. Handlers are
        awaited; the outbox sender signals no "idle", so its table is polled (the timeout only
        guards against a deadlock)."""
        async with asyncio.timeout(SETTLE_SECONDS):
            while True:
                await self.adapter.idle()
                async with self.app.sessions() as session:
                    waiting = await outbox.count_outbox(session=session, statuses=outbox.WAITING)
                if not waiting and not self.adapter.handling:
                    return
                await asyncio.sleep(0.02)

    async def inbox_count(self) -> int:
        async with self.app.sessions() as session:
            return (await session.exec(select(func.count()).select_from(InboxMessage))).one()

    async def outbox(self) -> list[OutboxMessage]:
        async with self.app.sessions() as session:
            statement = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
            return list((await session.exec(statement)).all())

    def add_photo(self) -> str:
        return self.api.add_media(str(next(_media_ids)), jpeg_bytes(), "image/jpeg")


@pytest.fixture
async def whatsapp(
    sessions: Sessions, database_url: str, tmp_path: Path
) -> AsyncIterator[WhatsApp]:
    async with FakeGraphAPI(token=TOKEN, phone_number_id=PNID) as api:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            whatsapp_token=TOKEN,
            whatsapp_phone_number_id=PNID,
            whatsapp_app_secret=SECRET,
            whatsapp_verify_token=VERIFY,
            whatsapp_api_url=api.url,
            database_url=database_url,
            data_dir=tmp_path / "data",
            http_port=0,
        )
        adapter = whatsapp_channel(settings, evidence_store(settings))
        adapter.delays.throughput = 0.2
        adapter.pacing.recipient_burst = 1000  # a test user types faster than anyone (test_pace)
        app = build(settings, [adapter])
        http = HttpServer(build_app(adapter.routes(app.engine)), host="127.0.0.1", port=0)
        await http.start()
        sender = asyncio.create_task(app.sender.run())
        base = f"http://127.0.0.1:{http.port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
                yield WhatsApp(api, app, adapter, client, settings)
        finally:
            sender.cancel()
            with pytest.raises(asyncio.CancelledError):
                await sender
            await adapter.close()
            await http.stop()
            await app.close()


async def _world(sessions: Sessions) -> World:
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    return world


async def _register(w: WhatsApp) -> list[Json]:
    replies = await w.say(wp.text_message(SITI, "halo", name="Siti"))
    text = "\n".join(text_of(r) for r in replies)
    assert "Selamat datang, *Siti Rahma*!" in text and "Dinas Koperasi dan UMKM" in text
    return replies


def _joined(replies: list[Json]) -> str:
    return "\n".join(text_of(r) for r in replies)


def _last_choices(replies: list[Json]) -> dict[str, str]:
    for reply in reversed(replies):
        if found := choices_of(reply):
            return found
    raise AssertionError(f"no choices in {replies}")


# --- handshake and signature ---------------------------------------------------------------


async def test_handshake_echoes_the_challenge_only_for_our_token(whatsapp: WhatsApp) -> None:
    good = {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
    response = await whatsapp.client.get(WEBHOOK_PATH, params=good)
    assert response.status_code == 200 and response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")
    for bad in ({**good, "hub.verify_token": "nope"}, {**good, "hub.mode": "unsubscribe"}, {}):
        assert (await whatsapp.client.get(WEBHOOK_PATH, params=bad)).status_code == 403


async def test_unsigned_or_malformed_webhooks_store_nothing(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    payload = wp.text_message(SITI, "halo")
    assert (await whatsapp.post(payload, secret=None)).status_code == 401
    assert (await whatsapp.post(payload, secret="wrong-secret")).status_code == 403
    body = wp.encode(payload)
    tampered = body.replace(b"halo", b"hola")
    headers = wp.signed_headers(body, SECRET)
    response = await whatsapp.client.post(WEBHOOK_PATH, content=tampered, headers=headers)
    assert response.status_code == 403
    garbage = b'{"object": "whatsapp_business_account", "entry": ['
    headers = wp.signed_headers(garbage, SECRET)
    response = await whatsapp.client.post(WEBHOOK_PATH, content=garbage, headers=headers)
    assert response.status_code == 400
    other = wp.retarget(payload, phone_number_id="5550001111")
    assert (await whatsapp.post(other)).status_code == 200
    await whatsapp.settle()
    assert await whatsapp.inbox_count() == 0
    assert whatsapp.api.sent_messages() == []


# --- the whole journey ---------------------------------------------------------------------


async def test_register_and_report_over_whatsapp(whatsapp: WhatsApp, sessions: Sessions) -> None:
    world = await _world(sessions)
    w = whatsapp
    await _register(w)

    replies = await w.say(wp.text_message(SITI, "/lapor"))
    assert "pilih aksi" in _joined(replies)
    assert replies[-1]["type"] == "interactive"
    choices = _last_choices(replies)
    # Button ids carry their prompt's tag after "#".
    title, button = next(
        (t, i) for t, i in choices.items() if i.rpartition("#")[0] == f"a:{world.action.id}"
    )
    assert all(len(title) <= 20 for title in choices)
    replies = await w.say(wp.button_reply(SITI, button, title))
    assert "Berapa penerima bantuan?" in _joined(replies)
    replies = await w.say(wp.text_message(SITI, "25"))
    assert "daftar penerima" in _joined(replies).lower()
    replies = await w.say(wp.button_reply(SITI, _last_choices(replies)["Ya"], "Ya"))
    assert "Catatan tambahan" in _joined(replies)
    replies = await w.say(wp.button_reply(SITI, _last_choices(replies)["Lewati"], "Lewati"))
    assert "Foto kegiatan" in _joined(replies)

    replies = await w.say(wp.image_message(SITI, w.add_photo(), caption="Sosialisasi"))
    assert "Diterima: Sosialisasi.jpg" in _joined(replies)
    replies = await w.say(wp.text_message(SITI, "/selesai"))
    assert "Tanggal penetapan" in _joined(replies)
    replies = await w.say(wp.text_message(SITI, "25 Agustus 2025"))
    choices = _last_choices(replies)
    assert set(choices) == {"Pelatihan", "Modal usaha", "Kemitraan"}
    replies = await w.say(wp.list_reply(SITI, choices["Modal usaha"], "Modal usaha"))
    assert "Daftar penerima" in _joined(replies)

    pdf = w.api.add_media(str(next(_media_ids)), pdf_bytes(), "application/pdf")
    document = wp.document_message(SITI, pdf, filename="daftar.pdf", mime_type="application/pdf")
    replies = await w.say(document)
    assert "Diterima: daftar.pdf" in _joined(replies)
    replies = await w.say(wp.text_message(SITI, "selesai"))
    assert "Ringkasan" in _joined(replies) and "Semua sudah lengkap" in _joined(replies)
    choices = _last_choices(replies)
    replies = await w.say(wp.button_reply(SITI, choices["Kirim laporan"], "Kirim laporan"))
    assert "Kirim laporan ini?" in _joined(replies)
    choices = _last_choices(replies)
    replies = await w.say(wp.button_reply(SITI, choices["Ya, kirim"], "Ya, kirim"))
    assert "*terkirim*" in _joined(replies)

    async with sessions() as session:
        submission = (await session.exec(select(Submission))).one()
        assert submission.status is SubmissionStatus.submitted
        files = (await session.exec(select(EvidenceFile))).all()
        assert sorted(f.kind for f in files) == ["pdf", "photo"]
    # Every inbound message was read (blue ticks) exactly once, after it was handled.
    receipts = w.api.read_receipts()
    assert len(receipts) == len(set(receipts)) == await w.inbox_count() == 14
    assert all(r.status == OutboxStatus.sent for r in await w.outbox())


async def test_webhook_delivered_twice_is_answered_once(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    replies = await _register(whatsapp)
    payload = wp.text_message(SITI, "/status")
    await asyncio.gather(*(whatsapp.post(payload) for _ in range(4)))
    await whatsapp.settle()
    await whatsapp.post(payload)
    await whatsapp.settle()
    sent = whatsapp.api.sent_messages(SITI)[len(replies) :]
    assert len(sent) == 1 and "Tugas Anda" in text_of(sent[0])


async def test_unregistered_number_is_asked_for_an_invite(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    stranger = "6281299999999"
    replies = await whatsapp.say(wp.text_message(stranger, "lapor"))
    assert "kode undangan" in _joined(replies)
    replies = await whatsapp.say(wp.unsupported_message(stranger, "sticker"))
    assert replies  # an answer, not silence
    before = len(whatsapp.api.sent_messages())
    await whatsapp.post(wp.unsupported_message(stranger, "reaction"))
    await whatsapp.settle()
    assert len(whatsapp.api.sent_messages()) == before


# Every way a WhatsApp sender can claim a number. The sender's number is their own `from`; a
# contact card's fields are typed by the sender and must never register anyone else.
ADMIN = "6281200000099"
OUTSIDER = "6289900000009"


def _card(sender: str, *, phone: str, card_wa_id: str | None) -> Json:
    payload = wp.contacts_message(sender, phone)
    card = payload["entry"][0]["changes"][0]["value"]["messages"][0]["contacts"][0]["phones"][0]
    if card_wa_id is None:
        del card["wa_id"]
    else:
        card["wa_id"] = card_wa_id
    return payload


CLAIMS = {
    # name: (sender, what they send, who the sender is afterwards, a phrase of the reply)
    "own number, imported": (ADMIN, wp.text_message(ADMIN, "halo"), "Admin Pusat", "Admin Pusat"),
    "card naming the admin, wa_id forged to the sender's": (
        OUTSIDER,
        _card(OUTSIDER, phone=ADMIN, card_wa_id=OUTSIDER),
        None,
        "belum ada di daftar kontak",
    ),
    "the admin's own card": (
        OUTSIDER,
        _card(OUTSIDER, phone=ADMIN, card_wa_id=ADMIN),
        None,
        "bukan milik akun Anda",
    ),
    "card with a number and no wa_id": (
        OUTSIDER,
        _card(OUTSIDER, phone=ADMIN, card_wa_id=None),
        None,
        "bukan milik akun Anda",
    ),
    "the sender's own card, not imported": (
        OUTSIDER,
        _card(OUTSIDER, phone=OUTSIDER, card_wa_id=OUTSIDER),
        None,
        "belum ada di daftar kontak",
    ),
    "an imported focal point sending the admin's card": (
        SITI,
        _card(SITI, phone=ADMIN, card_wa_id=SITI),
        "Siti Rahma",
        "Siti Rahma",
    ),
    "a wrong invite code": (OUTSIDER, wp.text_message(OUTSIDER, "/daftar ABCD-1234"), None, "Kode"),
}


@pytest.mark.parametrize("case", list(CLAIMS))
async def test_every_way_to_claim_a_number(
    whatsapp: WhatsApp, sessions: Sessions, case: str
) -> None:
    sender, payload, registered_as, phrase = CLAIMS[case]
    world = await _world(sessions)
    async with sessions() as session:
        session.add(
            Contact(
                name="Admin Pusat", phone=f"+{ADMIN}", role=Role.admin, region_id=world.province.id
            )
        )
        await session.commit()
    replies = await whatsapp.say(payload)
    assert phrase in _joined(replies)
    async with sessions() as session:
        found = await identities.find_identity(
            session=session, channel=Channel.whatsapp, external_id=sender
        )
    assert (found[1].name if found else None) == registered_as


async def test_stored_but_unhandled_message_is_replayed(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    payload = wp.text_message(SITI, "halo", name="Siti")
    event = whatsapp.adapter.parse_stored(
        {"message": payload["entry"][0]["changes"][0]["value"]["messages"][0], "name": "Siti"}
    )
    assert event is not None
    async with transaction(sessions) as session:  # stored by a process that then died
        await inbox.store_received(
            session=session,
            channel=Channel.whatsapp,
            message_id=event.message_id,
            payload=event.raw,
        )
    assert await whatsapp.app.engine.replay_stored() == 1
    await whatsapp.settle()
    assert "Siti Rahma" in _joined(whatsapp.api.sent_messages(SITI))


async def test_a_message_still_queued_in_this_process_is_not_replayed(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    """The replay job runs every minute beside live handling: a message this process stored and
    holds in its queue is not lost, and handling it twice at once would race its own turn."""
    await _world(sessions)
    payload = wp.text_message(SITI, "halo", name="Siti")
    event = whatsapp.adapter.parse_stored(
        {"message": payload["entry"][0]["changes"][0]["value"]["messages"][0], "name": "Siti"}
    )
    assert event is not None
    engine = whatsapp.app.engine
    assert await engine.store_raw(Channel.whatsapp, event.message_id, event.raw)
    assert await engine.replay_stored() == 0  # queued, not lost
    assert await engine.handle(event)
    await whatsapp.settle()
    assert "Siti Rahma" in _joined(whatsapp.api.sent_messages(SITI))
    assert await engine.replay_stored() == 0  # handled: nothing left


# --- delivery receipts ---------------------------------------------------------------------


async def test_statuses_update_the_outbox_rows(whatsapp: WhatsApp, sessions: Sessions) -> None:
    await _world(sessions)
    await _register(whatsapp)  # one message: the welcome
    await whatsapp.say(wp.text_message(SITI, "/bantuan"))  # and a second one
    first, second = (await whatsapp.outbox())[:2]
    assert first.provider_message_id and second.provider_message_id

    for status in ("delivered", "read", "delivered", "sent"):  # late receipts don't go back
        await whatsapp.post(wp.status_update(first.provider_message_id, status, SITI))
    await whatsapp.post(
        wp.status_update(second.provider_message_id, "failed", SITI, errors=[131026])
    )
    unknown = wp.make_wamid(SITI, outbound=True)
    assert (await whatsapp.post(wp.status_update(unknown, "read", SITI))).status_code == 200

    first, second = (await whatsapp.outbox())[:2]
    assert first.delivery_status == "read" and first.status is OutboxStatus.sent
    assert second.delivery_status == "failed" and second.status is OutboxStatus.failed
    assert second.last_error == "131026: Message Undeliverable"


async def test_failed_receipt_outside_window_is_resent_as_template(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    await _register(whatsapp)
    welcome = (await whatsapp.outbox())[0]
    assert welcome.provider_message_id
    failed = wp.status_update(welcome.provider_message_id, "failed", SITI, errors=[131047])
    await whatsapp.post(failed)
    sent = await whatsapp.api.wait_for(
        lambda r: r.json is not None and r.json.get("type") == "template" and not r.failed
    )
    assert sent.json is not None
    assert sent.json["template"]["name"] == "laporham_pemberitahuan"
    assert "Siti Rahma" in text_of(sent.json)
    await whatsapp.settle()
    welcome = (await whatsapp.outbox())[0]
    assert welcome.status is OutboxStatus.sent and welcome.attempts == 2


# --- the 24-hour window and errors ---------------------------------------------------------


async def _last_seen(w: WhatsApp, ago: timedelta) -> None:
    async with transaction(w.app.sessions) as session:
        identity = (await session.exec(select(ChannelIdentity))).one()
        identity.last_inbound_at = utcnow() - ago


async def _enqueue(w: WhatsApp, message: OutText | OutFile, key: str) -> None:
    async with transaction(w.app.sessions) as session:
        outbox.enqueue(
            session=session,
            idempotency_key=key,
            channel=Channel.whatsapp,
            recipient=SITI,
            payload=outgoing_to_payload(message),
            purpose="reminder",
        )
    w.app.engine.outbox_ready.set()


async def test_reminder_after_25_hours_goes_out_as_template(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    # Siti last wrote 25 hours ago (a message delivered late, to have her registered then).
    wrote = (utcnow() - timedelta(hours=25)).timestamp()
    await whatsapp.say(wp.text_message(SITI, "halo", name="Siti", timestamp=wrote))
    await _last_seen(whatsapp, timedelta(hours=25))
    params = ("Siti Rahma", "B08 2025", "Dinas Koperasi dan UMKM", "25 Agustus 2025", "2")
    reminder = OutText(
        text="Batas B08: <b>25 Agustus</b>", template="laporham_pengingat", template_params=params
    )
    await _enqueue(whatsapp, reminder, "reminder-1")
    await _enqueue(whatsapp, OutText(text="<b>Pengumuman</b>\nRapat besok"), "notice-1")
    await whatsapp.settle()
    reminder_body, notice_body = whatsapp.api.sent_messages(SITI)[-2:]
    template = reminder_body["template"]
    assert reminder_body["type"] == "template" and template["name"] == "laporham_pengingat"
    assert template["language"] == {"code": "id"}
    assert [p["text"] for p in template["components"][0]["parameters"]] == list(params)
    assert notice_body["template"]["name"] == "laporham_pemberitahuan"
    assert text_of(notice_body) == "*Pengumuman*. Rapat besok"
    assert not any(r.failed for r in whatsapp.api.requests)  # nothing was tried free-form


async def test_outside_window_error_on_a_reply_falls_back_to_template(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    await _register(whatsapp)
    whatsapp.api.outside_window(SITI)  # Meta's clock disagrees with ours
    replies = await whatsapp.say(wp.text_message(SITI, "/status"), twice=False)
    assert [r["type"] for r in replies] == ["template"]
    assert "Tugas Anda" in text_of(replies[0])
    refused = [r for r in whatsapp.api.requests if r.failed]
    assert len(refused) == 1 and refused[0].response
    assert refused[0].response["error"]["code"] == 131047


async def test_rate_limited_send_is_retried_and_delivered_once(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    await _register(whatsapp)
    whatsapp.api.fail_next(130429, to=SITI)
    replies = await whatsapp.say(wp.text_message(SITI, "/status"), twice=False)
    assert len(replies) == 1 and "Tugas Anda" in text_of(replies[0])
    assert len([r for r in whatsapp.api.requests if r.failed]) == 1
    row = (await whatsapp.outbox())[-1]
    assert row.status is OutboxStatus.sent and row.attempts == 2


async def test_undeliverable_number_is_marked_unreachable(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    await _register(whatsapp)
    whatsapp.api.fail_next(131026, to=SITI)
    await whatsapp.say(wp.text_message(SITI, "/status"), twice=False)
    row = (await whatsapp.outbox())[-1]
    assert row.status is OutboxStatus.failed and row.last_error
    assert row.last_error.startswith("131026: Message Undeliverable")
    async with whatsapp.app.sessions() as session:
        identity = (await session.exec(select(ChannelIdentity))).one()
        assert identity.unreachable_since is not None


# --- message shapes against the fake's validation ------------------------------------------


async def test_long_button_titles_are_trimmed(whatsapp: WhatsApp) -> None:
    labels = [
        "Bantuan usaha bagi perempuan kepala keluarga",
        "Bantuan usaha bagi penyandang disabilitas",
        "Sekolah inklusi",
    ]
    message = OutText(
        text="Pilih aksi:", choices=tuple(Choice(f"a:{n}", t) for n, t in enumerate(labels))
    )
    assert await whatsapp.adapter.send(SITI, message, last_inbound_at=utcnow())
    (body,) = whatsapp.api.sent_messages(SITI)
    titles = [b["reply"]["title"] for b in body["interactive"]["action"]["buttons"]]
    # Cut titles are numbered, and the full labels are listed in the body under the question.
    assert titles == ["1. Bantuan usaha…", "2. Bantuan usaha…", "3. Sekolah inklusi"]
    assert body["interactive"]["body"]["text"] == "Pilih aksi:\n\n" + "\n".join(
        f"{n}. {label}" for n, label in enumerate(labels, start=1)
    )
    assert all(len(t) <= 20 for t in titles) and titles[0].endswith("…")
    assert len(set(titles)) == 3


async def test_six_choices_go_out_as_a_list(whatsapp: WhatsApp) -> None:
    labels = [f"Aksi {n}: pemenuhan hak kelompok rentan tahap {n}" for n in range(1, 7)]
    choices = tuple(Choice(f"a:{n}", label) for n, label in enumerate(labels))
    summary = "\n".join(f"• butir ringkasan {n}" for n in range(100)) + "\n\nPilih aksi:"
    message = OutText(text=summary, choices=choices)
    assert await whatsapp.adapter.send(SITI, message, last_inbound_at=utcnow())
    lead, body = whatsapp.api.sent_messages(SITI)
    assert lead["type"] == "text" and "butir ringkasan 0" in lead["text"]["body"]
    interactive = body["interactive"]
    assert interactive["type"] == "list" and interactive["body"]["text"].endswith("Pilih aksi:")
    rows = interactive["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [c.id for c in choices]
    assert all(len(r["title"]) <= 24 and r["description"] in labels for r in rows)


async def test_files_are_uploaded_and_sent_by_id(whatsapp: WhatsApp) -> None:
    store = LocalEvidenceStore(whatsapp.settings.evidence_dir)
    key = await store.put(pdf_bytes("rekap"), extension="pdf")
    message = OutFile(storage_key=key, filename="rekap.pdf", caption="<b>Rekap</b> B08")
    assert await whatsapp.adapter.send(SITI, message, last_inbound_at=utcnow())
    (body,) = whatsapp.api.sent_messages(SITI)
    media_id = body["document"]["id"]
    assert whatsapp.api.media[media_id].data == pdf_bytes("rekap")
    assert body["document"] == {"id": media_id, "caption": "*Rekap* B08", "filename": "rekap.pdf"}
    # Outside the window the same file travels in a template's header, without a new upload.
    assert await whatsapp.adapter.send(SITI, message, last_inbound_at=None)
    template = whatsapp.api.sent_messages(SITI)[-1]["template"]
    assert template["name"] == "laporham_berkas"
    assert template["components"][0]["parameters"][0]["document"]["id"] == media_id
    uploads = [r for r in whatsapp.api.requests if r.path.endswith("/media")]
    assert len(uploads) == 1


async def test_fetch_file_checks_size_and_expiry(whatsapp: WhatsApp) -> None:
    adapter, api = whatsapp.adapter, whatsapp.api
    photo = jpeg_bytes()
    media_id = api.add_media("7000000000000001", photo, "image/jpeg")
    event = FileReceived(
        channel=Channel.whatsapp, user_key=SITI, chat_id=SITI, message_id="m1", file_ref=media_id
    )
    assert await adapter.fetch_file(event, max_bytes=len(photo)) == photo
    with pytest.raises(FileTooLarge):
        await adapter.fetch_file(event, max_bytes=len(photo) - 1)
    api.media_url_ttl = 0  # the 5-minute URL has expired by the time we download it
    with pytest.raises(FetchFailed):
        await adapter.fetch_file(event, max_bytes=len(photo))
    unknown = FileReceived(
        channel=Channel.whatsapp, user_key=SITI, chat_id=SITI, message_id="m2", file_ref="404"
    )
    with pytest.raises(FetchFailed):
        await adapter.fetch_file(unknown, max_bytes=10_000)
    downloads = [r for r in api.requests if r.path.startswith("/_media/")]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in downloads)


async def test_pace_per_recipient(whatsapp: WhatsApp) -> None:
    pacing = whatsapp.adapter.pacing
    pacing.recipient_burst, pacing.recipient_interval = 2, 0.2
    started = asyncio.get_running_loop().time()
    for n in range(4):
        await whatsapp.adapter.send(SITI, OutText(text=f"pesan {n}"), last_inbound_at=utcnow())
    assert asyncio.get_running_loop().time() - started >= 0.3  # a burst of 2, then 5/s
    assert [text_of(b) for b in whatsapp.api.sent_messages(SITI)] == [
        f"pesan {n}" for n in range(4)
    ]


@asynccontextmanager
async def own_channel(
    w: WhatsApp,
    *,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utcnow,
    drop_send: int | None = None,
) -> AsyncIterator[WhatsAppChannel]:
    """A channel of the test's own to the same fake: `clock` ages what it remembers, `now` is
    its wall clock, and the network drops its `drop_send`-th message send (1-based) before it
    reaches Meta."""
    sends = 0

    async def maybe_drop(request: httpx.Request) -> None:
        nonlocal sends
        if request.url.path.endswith("/messages"):
            sends += 1
            if sends == drop_send:
                raise httpx.ConnectError("dropped", request=request)

    client = httpx.AsyncClient(
        headers={"Authorization": f"Bearer {TOKEN}"}, event_hooks={"request": [maybe_drop]}
    )
    channel = WhatsAppChannel(
        token=TOKEN,
        phone_number_id=PNID,
        app_secret=SECRET,
        verify_token=VERIFY,
        api_url=w.api.url,
        evidence_store=LocalEvidenceStore(w.settings.evidence_dir),
        client=client,
        clock=clock,
        now=now,
    )
    try:
        yield channel
    finally:
        await channel.close()


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


SPLIT = OutText(
    text="\n".join(f"• butir {n}" for n in range(200)) + "\n\nKirim sekarang?",
    choices=(Choice("yes", "Ya"), Choice("no", "Tidak")),
)


async def test_retry_of_a_split_message_does_not_repeat_its_first_part(
    whatsapp: WhatsApp,
) -> None:
    seen = utcnow()
    async with own_channel(whatsapp, drop_send=2) as adapter:
        with pytest.raises(TransientSendError):
            await adapter.send(SITI, SPLIT, last_inbound_at=seen)
        assert await adapter.send(SITI, SPLIT, last_inbound_at=seen)  # the outbox's retry
    assert [b["type"] for b in whatsapp.api.sent_messages(SITI)] == ["text", "interactive"]


async def test_a_retry_after_15_minutes_sends_the_whole_message(whatsapp: WhatsApp) -> None:
    clock, seen = Clock(), utcnow()
    async with own_channel(whatsapp, clock=clock, drop_send=2) as adapter:
        with pytest.raises(TransientSendError):
            await adapter.send(SITI, SPLIT, last_inbound_at=seen)
        clock.now += 15 * 60
        assert await adapter.send(SITI, SPLIT, last_inbound_at=seen)
    kinds = [b["type"] for b in whatsapp.api.sent_messages(SITI)]
    assert kinds == ["text", "text", "interactive"]


async def test_an_upload_is_reused_for_7_days(whatsapp: WhatsApp) -> None:
    clock = Clock()
    store = LocalEvidenceStore(whatsapp.settings.evidence_dir)
    key = await store.put(pdf_bytes("rekap"), extension="pdf")
    message = OutFile(storage_key=key, filename="rekap.pdf")
    async with own_channel(whatsapp, clock=clock) as adapter:
        for elapsed in (0.0, 7 * 86_400 - 1, 7 * 86_400):
            clock.now = 1_000.0 + elapsed
            await adapter.send(SITI, message, last_inbound_at=utcnow())
    ids = [b["document"]["id"] for b in whatsapp.api.sent_messages(SITI)]
    assert ids[0] == ids[1] != ids[2]
    assert len([r for r in whatsapp.api.requests if r.path.endswith("/media")]) == 2


async def test_the_window_closes_5_minutes_early(whatsapp: WhatsApp) -> None:
    """Our last_inbound_at is when we handled the message, a little after the user wrote."""
    wrote = utcnow()
    now = [wrote + timedelta(hours=23, minutes=54)]
    async with own_channel(whatsapp, now=lambda: now[0]) as adapter:
        await adapter.send(SITI, OutText(text="Pengingat"), last_inbound_at=wrote)
        now[0] = wrote + timedelta(hours=23, minutes=55)
        await adapter.send(SITI, OutText(text="Pengingat"), last_inbound_at=wrote)
    assert [b["type"] for b in whatsapp.api.sent_messages(SITI)] == ["text", "template"]


# --- issue 12 item 19: the 24-hour window as Meta counts it --------------------------------


async def test_an_unregistered_sender_is_answered_free_form(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    """The welcome, the invite prompt and a refusal answer a message just received: inside
    the window, so with their line breaks and without depending on a template's approval."""
    await _world(sessions)
    stranger = "6281299999999"
    replies = await whatsapp.say(wp.text_message(stranger, "halo"), twice=False)
    replies += await whatsapp.say(wp.text_message(stranger, "/daftar SALAH"), twice=False)
    replies += await whatsapp.say(wp.unsupported_message(stranger, "sticker"), twice=False)
    assert replies and all(r["type"] != "template" for r in replies)
    assert "kode undangan" in _joined(replies)


async def test_an_answer_to_a_fallback_template_reopens_the_window_at_once(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    await _register(whatsapp)
    whatsapp.api.outside_window(SITI)
    replies = await whatsapp.say(wp.text_message(SITI, "/status"), twice=False)
    assert [r["type"] for r in replies] == ["template"]
    whatsapp.api.inside_window(SITI)  # the user answers the template within the minute
    answered = time.time() + 1  # Meta's stamps are whole seconds: the answer's is the next
    replies = await whatsapp.say(wp.text_message(SITI, "lapor", timestamp=answered), twice=False)
    assert replies and all(r["type"] != "template" for r in replies)
    assert any(choices_of(r) for r in replies)  # the buttons are back


async def test_a_late_delivery_is_judged_by_the_message_own_time(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    """A message Meta delivers a day late (our server was down) opens no window: its reply
    goes straight out as a template, no free-form send is wasted on a 131047."""
    await _world(sessions)
    registered = (utcnow() - timedelta(hours=30)).timestamp()
    await whatsapp.say(wp.text_message(SITI, "halo", name="Siti", timestamp=registered))
    await _last_seen(whatsapp, timedelta(hours=30))  # registration stores when it was handled
    whatsapp.api.outside_window(SITI)  # what Meta thinks: the user last wrote 25 hours ago
    sent = (utcnow() - timedelta(hours=25)).timestamp()
    replies = await whatsapp.say(wp.text_message(SITI, "/status", timestamp=sent), twice=False)
    assert [r["type"] for r in replies] == ["template"]
    assert not any(r.failed for r in whatsapp.api.requests)


async def test_undeliverable_in_a_failed_receipt_marks_the_number_unreachable(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    """Meta often accepts the send and reports 131026 later, in a failed status."""
    await _world(sessions)
    await _register(whatsapp)
    welcome = (await whatsapp.outbox())[0]
    assert welcome.provider_message_id
    await whatsapp.post(
        wp.status_update(welcome.provider_message_id, "failed", SITI, errors=[131026])
    )
    async with whatsapp.app.sessions() as session:
        identity = (await session.exec(select(ChannelIdentity))).one()
        assert identity.unreachable_since is not None


# --- issue 12 item 16: the webhook's body cap --------------------------------------------


async def test_a_webhook_body_over_1_mb_is_refused_unread(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    """Signed or not, declared or streamed without a length: 413, and nothing stored."""
    await _world(sessions)
    big = wp.encode(wp.text_message(SITI, "x" * (1024 * 1024)))
    headers = wp.signed_headers(big, SECRET)
    response = await whatsapp.client.post(WEBHOOK_PATH, content=big, headers=headers)
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length to trust
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    response = await whatsapp.client.post(WEBHOOK_PATH, content=chunks(), headers=headers)
    assert response.status_code == 413
    await whatsapp.settle()
    assert await whatsapp.inbox_count() == 0


# --- issue 12 item 17: one log line per failure, quiet success ----------------------------


def _channel_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("bot.channels.whatsapp") and r.levelno >= logging.INFO
    ]


async def test_each_failure_leaves_one_line_and_success_none(
    whatsapp: WhatsApp, sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    await _world(sessions)
    await _register(whatsapp)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        await whatsapp.say(wp.text_message(SITI, "/status"), twice=False)
        assert _channel_lines(caplog) == []  # quiet success

        whatsapp.api.fail_next(130429, to=SITI)
        await whatsapp.say(wp.text_message(SITI, "/status"), twice=False)
        whatsapp.api.fail_next(131026, to=SITI)
        await whatsapp.say(wp.text_message(SITI, "/bantuan"), twice=False)
        event = FileReceived(
            channel=Channel.whatsapp, user_key=SITI, chat_id=SITI, message_id="m", file_ref="404"
        )
        with pytest.raises(FetchFailed):
            await whatsapp.adapter.fetch_file(event, max_bytes=10_000)
        sent = (await whatsapp.outbox())[0].provider_message_id
        assert sent
        await whatsapp.post(wp.status_update(sent, "failed", SITI, errors=[131000]))

    lines = [r.getMessage() for r in _channel_lines(caplog)]
    assert len(lines) == 4, lines
    assert all(line.startswith("whatsapp …0001: ") for line in lines)
    assert "130429" in lines[0] and "131026" in lines[1] and "download" in lines[2]
    assert "delivery failed: 131000" in lines[3]
    assert not any(SITI in line for line in lines)
