"""A reminder written by the ticker, delivered by the real sender and WhatsApp channel to the
fake Graph API over real HTTP: outside the 24-hour window it is the approved template
`laporham_pengingat`, with the parameters in the order the template declares them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import select

from scheduler.reminders import ReminderTicker
from storage.models import ChannelIdentity
from tests.channels.test_whatsapp import SITI, WhatsApp, whatsapp  # noqa: F401  (fixture)
from tests.scheduler.reminder_world import reminder_world


async def test_a_reminder_outside_the_window_is_the_pengingat_template(
    whatsapp: WhatsApp,  # noqa: F811  (the imported fixture)
) -> None:
    sessions = whatsapp.app.sessions
    async with sessions() as session:
        rw = await reminder_world(session, timezone="Asia/Makassar")
        identity = (
            await session.exec(
                select(ChannelIdentity).where(ChannelIdentity.contact_id == rw.world.focal_point.id)
            )
        ).one()
        identity.channel, identity.external_id = "whatsapp", SITI  # never wrote: window closed
        session.add(identity)
        await session.commit()
    at = datetime(2025, 8, 25, 8, 0, tzinfo=ZoneInfo("Asia/Makassar")).astimezone(UTC)
    # The sender keeps the ticker's time: a reminder of 2025 would have expired by the wall
    # clock's, and the recipient's quiet hours are checked when it is sent.
    whatsapp.app.sender.clock = lambda: at
    ticker = ReminderTicker(
        sessions=sessions, clock=lambda: at, wakeup=whatsapp.app.engine.outbox_ready
    )
    assert await ticker.tick() == 1  # d-3: no escalation to the (Telegram) coordinators yet
    await whatsapp.settle()
    [body] = whatsapp.api.sent_messages(SITI)
    assert body["type"] == "template"
    template = body["template"]
    assert template["name"] == "laporham_pengingat"
    assert [p["text"] for p in template["components"][0]["parameters"]] == [
        "Siti Rahma",
        "B08 2025",
        "Dinas Koperasi dan UMKM Kota Bandar Lampung",
        "28 Agustus 2025 pukul 23.59 WITA",
        "2",
    ]
    assert not any(request.failed for request in whatsapp.api.requests)
