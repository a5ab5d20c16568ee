"""A broadcast to a WhatsApp contact whose 24-hour window has closed goes out as the approved
broadcast template, through the real WhatsApp channel and sender against the fake Graph API."""

# ruff: noqa: F811  (the fixture imported from test_whatsapp is a parameter here)

from __future__ import annotations

from datetime import timedelta

from scheduler.broadcasts import advance_broadcasts
from storage import broadcasts
from storage.db import transaction
from storage.models import Audience
from storage.types import utcnow
from tests.channels.test_whatsapp import (  # noqa: F401  (fixtures)
    SITI,
    Sessions,
    WhatsApp,
    _last_seen,
    _world,
    whatsapp,
)
from tests.fakes import whatsapp_payloads as wp
from tests.support.daytime import MiddayClock


async def test_a_broadcast_outside_the_window_goes_as_the_broadcast_template(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    world = await _world(sessions)
    wrote = (utcnow() - timedelta(hours=25)).timestamp()
    await whatsapp.say(wp.text_message(SITI, "halo", name="Siti", timestamp=wrote))
    await _last_seen(whatsapp, timedelta(hours=25))
    text = "Bimtek RANHAM hari Senin.\nMohon hadir tepat waktu."
    async with transaction(sessions) as session:
        await broadcasts.create_broadcast(
            session=session,
            spec=broadcasts.Recipients(
                audience=Audience.focal_points,
                region_id=world.region.id,
                author_id=world.coordinator.id,
            ),
            text=text,
            sender_label="Koordinator Kota Bandar Lampung",
        )
    whatsapp.app.sender.clock = MiddayClock()  # broadcasts wait out quiet hours
    await advance_broadcasts(sessions, wakeup=whatsapp.app.engine.outbox_ready)
    await whatsapp.settle()
    body = whatsapp.api.sent_messages(SITI)[-1]
    assert body["type"] == "template"
    template = body["template"]
    assert template["name"] == "laporham_siaran"
    params = [p["text"] for p in template["components"][0]["parameters"]]
    assert params[0] == "Koordinator Kota Bandar Lampung"
    assert "Bimtek RANHAM hari Senin." in params[1] and "Mohon hadir tepat waktu." in params[1]
    assert not any(r.failed for r in whatsapp.api.requests)  # never tried free-form
