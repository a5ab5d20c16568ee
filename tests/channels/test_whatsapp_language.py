"""WhatsApp templates go out in the user's language (#12 item 19): the language travels with
the outbox row, through the real channel, against the fake Graph API."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import select

from bot.channels.whatsapp import templates
from bot.engine.events import OutText, outgoing_from_payload
from storage.db import transaction
from storage.models import Contact, OutboxMessage
from tests.channels.test_whatsapp import (
    SITI,
    Sessions,
    WhatsApp,
    _enqueue,
    _register,
    _world,
    text_of,
    whatsapp,
)
from tests.fakes import whatsapp_payloads as wp

__all__ = ["whatsapp"]  # the fixture, imported for this module's tests


async def _speaks(sessions: Sessions, language: str) -> None:
    async with transaction(sessions) as session:
        contact = (await session.exec(select(Contact).where(Contact.phone == "+" + SITI))).one()
        contact.language = language


async def test_an_english_user_gets_the_english_template(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    await _register(whatsapp)
    await _speaks(sessions, "en")
    whatsapp.api.outside_window(SITI)  # the reply must go out as a template
    replies = await whatsapp.say(wp.text_message(SITI, "/status"), twice=False)
    assert [r["type"] for r in replies] == ["template"]
    template = replies[0]["template"]
    assert template["name"] == templates.GENERIC
    assert template["language"] == {"code": "en"}
    assert "Your tasks" in text_of(replies[0])  # English text in the English template
    # The language travelled in the outbox row.
    async with sessions() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    assert outgoing_from_payload(rows[-1].payload).language == "en"


async def test_an_indonesian_user_gets_the_indonesian_template(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    await _register(whatsapp)
    whatsapp.api.outside_window(SITI)
    replies = await whatsapp.say(wp.text_message(SITI, "/status"), twice=False)
    assert replies[0]["template"]["language"] == {"code": "id"}
    assert "Tugas Anda" in text_of(replies[0])


async def test_a_job_message_carries_the_contact_language(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    await _world(sessions)
    await _register(whatsapp)
    whatsapp.api.outside_window(SITI)
    params = ("Siti Rahma", "B08 2025", "Dinas Koperasi dan UMKM", "25 August 2025", "2")
    reminder = OutText(
        text="Deadline B08: 25 August",
        template="laporham_pengingat",
        template_params=params,
        language="en",
    )
    await _enqueue(whatsapp, reminder, "reminder-en")
    await whatsapp.settle()
    sent = whatsapp.api.sent_messages(SITI)[-1]
    assert sent["template"]["name"] == "laporham_pengingat"
    assert sent["template"]["language"] == {"code": "en"}


def test_every_template_has_its_english_translation_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "whatsapp.md").read_text()
    for template in templates.TEMPLATES:
        assert template.body_en.count("{{") == template.body.count("{{") == len(template.params)
        assert template.body_en in doc
