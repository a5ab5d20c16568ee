"""The review loop on WhatsApp (signed webhooks into the product, replies to the fake Graph API):
a coordinator's decision buttons fit WhatsApp's reply buttons, a photo goes out as an uploaded
metadata-free thumbnail sent by media id, and the focal point's "open for revision" reply button
opens the returned report."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.app import evidence_store
from bot.engine.channel import Channel
from storage.db import transaction
from storage.models import ChannelIdentity
from storage.types import utcnow
from tests.channels import test_whatsapp as wa
from tests.channels.test_whatsapp import SITI, Json, WhatsApp, choices_of, text_of
from tests.fakes import whatsapp_payloads as wp
from tests.support.reviews import has_exif, submitted_report

Sessions = async_sessionmaker[AsyncSession]
BUDI = "6281200000002"  # make_world's coordinator, +6281200000002
whatsapp = wa.whatsapp  # the same fixture: the product composed with a fake Graph API


def _press(replies: list[Json], pick: str) -> tuple[str, str]:
    """(id, title) of the latest button or row whose id (without its tag) or title is `pick`."""
    for reply in reversed(replies):
        for title, choice_id in choices_of(reply).items():
            if pick in (choice_id.rpartition("#")[0], title) or pick in title:
                return choice_id, title
    raise AssertionError(f"no button {pick!r} in {replies}")


async def test_review_on_whatsapp(whatsapp: WhatsApp, sessions: Sessions) -> None:
    w = whatsapp
    world = await wa._world(sessions)
    submission_id = await submitted_report(
        sessions,
        evidence_store(w.settings),
        action_id=world.action.id or 0,
        office_id=world.office.id or 0,
        period_id=world.period.id or 0,
        focal_point=world.focal_point,
    )
    await wa._register(w)
    await w.say(wp.text_message(BUDI, "halo", name="Budi"))

    queue = await w.say(wp.text_message(BUDI, "periksa"))
    assert "menunggu pemeriksaan: 1" in wa._joined(queue)
    opened = await w.say(wp.button_reply(BUDI, *_press(queue, f"o:{submission_id}")))
    images = [r for r in opened if r["type"] == "image"]
    documents = [r for r in opened if r["type"] == "document"]
    assert len(images) == 1 and len(documents) == 1
    assert not has_exif(w.api.media[images[0]["image"]["id"]].data)
    decide = choices_of(opened[-1])
    assert [title for title in decide] == ["Setujui", "Kembalikan + catatan", "Daftar laporan"]

    await w.say(wp.button_reply(BUDI, *_press(opened, "return")))
    done = await w.say(wp.text_message(BUDI, "Notulen belum ditandatangani"))
    assert "dikembalikan dengan catatan" in wa._joined(done)

    notice = w.api.sent_messages(SITI)[-1]
    assert "Notulen belum ditandatangani" in text_of(notice)
    [(title, button)] = choices_of(notice).items()
    assert button == f"!rev:{submission_id}.2" and title == "Buka untuk revisi"
    revision = await w.say(wp.button_reply(SITI, button, title))
    assert "dikembalikan oleh pemeriksa" in wa._joined(revision)
    assert "Semua sudah lengkap" in wa._joined(revision)


async def test_return_notice_outside_the_window_is_the_approved_template(
    whatsapp: WhatsApp, sessions: Sessions
) -> None:
    """A focal point who has not written for a day gets the 'dikembalikan' template with the
    note (free-form text would be refused by Meta with 131047)."""
    w = whatsapp
    world = await wa._world(sessions)
    submission_id = await submitted_report(
        sessions,
        evidence_store(w.settings),
        action_id=world.action.id or 0,
        office_id=world.office.id or 0,
        period_id=world.period.id or 0,
        focal_point=world.focal_point,
        with_files=False,
    )
    async with transaction(sessions) as session:
        session.add(
            ChannelIdentity(
                contact_id=world.focal_point.id or 0,
                channel=Channel.whatsapp,
                external_id=SITI,
                last_inbound_at=utcnow() - timedelta(days=2),
            )
        )
    await w.say(wp.text_message(BUDI, "halo", name="Budi"))
    queue = await w.say(wp.text_message(BUDI, "periksa"))
    opened = await w.say(wp.button_reply(BUDI, *_press(queue, f"o:{submission_id}")))
    await w.say(wp.button_reply(BUDI, *_press(opened, "return")))
    await w.say(wp.text_message(BUDI, "Notulen\nbelum ada"))
    [notice] = w.api.sent_messages(SITI)
    assert notice["type"] == "template"
    assert notice["template"]["name"] == "laporham_dikembalikan"
    assert text_of(notice) == f"{world.action.title} Periode B08 Notulen. belum ada"
