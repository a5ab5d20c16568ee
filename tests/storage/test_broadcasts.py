"""storage/broadcasts.py: scope, audience counts, which chat a contact is reached on, and rows
written once each even by two writers at once."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Channel
from scheduler.broadcasts import advance_broadcasts, recipient_payload, write_rows
from storage import broadcasts, outbox
from storage.db import transaction
from storage.models import Audience, Broadcast, BroadcastState, ChannelIdentity, OutboxMessage
from storage.types import utcnow
from tests.support.audience import Audience as People
from tests.support.audience import chat_of, make_audience

Sessions = async_sessionmaker[AsyncSession]


async def _people(sessions: Sessions, focal_points: int = 2) -> People:
    async with transaction(sessions) as session:
        return await make_audience(session, extra_focal_points=focal_points - 2)


async def _broadcast(sessions: Sessions, people: People) -> int:
    async with transaction(sessions) as session:
        made = await broadcasts.create_broadcast(
            session=session,
            spec=broadcasts.Recipients(
                audience=Audience.focal_points, region_id=people.world.province.id
            ),
            text="Halo",
            sender_label="Kanwil Lampung",
        )
        return made.id or 0


async def _rows(sessions: Sessions, broadcast_id: int) -> list[OutboxMessage]:
    async with sessions() as session:
        statement = select(OutboxMessage).where(OutboxMessage.broadcast_id == broadcast_id)
        return list((await session.exec(statement)).all())


async def test_scope_follows_the_role_and_region(sessions: Sessions) -> None:
    people = await _people(sessions)
    world = people.world
    async with sessions() as session:
        kanwil = await broadcasts.author_scope(session=session, contact=people.kanwil)
        coordinator = await broadcasts.author_scope(session=session, contact=world.coordinator)
        admin = await broadcasts.author_scope(session=session, contact=people.admin)
        with pytest.raises(broadcasts.NotAllowed):
            await broadcasts.author_scope(session=session, contact=world.focal_point)
        assert kanwil.region_ids == {world.province.id, world.region.id}
        assert coordinator.region_ids == {world.region.id}
        assert admin.allows(people.other_region.id) and admin.allows(None)
        assert not kanwil.allows(people.other_region.id) and not kanwil.allows(None)
        for typed in ("19.71", "Kota Pangkalpinang", "19"):
            assert (
                await broadcasts.find_region_in_scope(session=session, scope=kanwil, typed=typed)
                is None
            )
        found = await broadcasts.find_region_in_scope(session=session, scope=kanwil, typed="18.71")
        assert found is not None and found.id == world.region.id


async def test_a_contact_is_reached_where_they_last_wrote_never_where_they_blocked_us(
    sessions: Sessions,
) -> None:
    people = await _people(sessions)
    focal, other = people.world.focal_point, people.submitted_focal
    async with transaction(sessions) as session:
        session.add(
            ChannelIdentity(
                contact_id=focal.id or 0,
                channel=Channel.whatsapp,
                external_id="6281200000001",
                last_inbound_at=utcnow(),
            )
        )
        telegram = (
            await session.exec(
                select(ChannelIdentity).where(ChannelIdentity.contact_id == other.id)
            )
        ).one()
        telegram.unreachable_since = utcnow() - timedelta(days=1)
        session.add(telegram)
    spec = broadcasts.Recipients(audience=Audience.focal_points, region_id=people.world.region.id)
    async with sessions() as session:
        counted = await broadcasts.count_audience(session=session, spec=spec)
    assert (counted.reachable, counted.without_channel) == (1, 1)
    broadcast_id = await _broadcast(sessions, people)
    await write_rows(sessions, broadcast_id)
    (row,) = await _rows(sessions, broadcast_id)
    assert (row.channel, row.recipient) == (Channel.whatsapp, "6281200000001")


async def test_two_writers_at_once_write_each_recipient_once(sessions: Sessions) -> None:
    people = await _people(sessions, focal_points=45)
    broadcast_id = await _broadcast(sessions, people)
    await asyncio.gather(
        write_rows(sessions, broadcast_id, batch_size=10),
        write_rows(sessions, broadcast_id, batch_size=7),
    )
    rows = await _rows(sessions, broadcast_id)
    assert sorted(row.recipient for row in rows) == sorted(people.focal_chats.values())
    async with sessions() as session:
        written = await session.get(Broadcast, broadcast_id)
    assert written is not None and written.state is BroadcastState.sending
    assert written.total_recipients == 45


async def test_a_row_already_written_is_not_written_again(sessions: Sessions) -> None:
    """Should a cursor ever lag behind its rows, the idempotency key still holds."""
    people = await _people(sessions)
    broadcast_id = await _broadcast(sessions, people)
    focal = people.world.focal_point
    async with transaction(sessions) as session:
        outbox.enqueue(
            session=session,
            idempotency_key=f"broadcast:{broadcast_id}:{focal.id}",
            channel=Channel.telegram,
            recipient=chat_of(focal),
            purpose="broadcast",
            payload={"type": "text", "text": "earlier"},
        )
    await write_rows(sessions, broadcast_id)
    async with sessions() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    assert sorted(row.recipient for row in rows) == sorted(people.focal_chats.values())
    assert [row.payload["text"] for row in rows if row.recipient == chat_of(focal)] == ["earlier"]


def test_the_payload_escapes_the_authors_text() -> None:
    broadcast = Broadcast(sender_label="A & B", audience=Audience.pemda, text="<b>x</b>")
    payload = recipient_payload(broadcast, broadcasts.Recipient(1, "id", Channel.telegram, "1"))
    assert payload["text"] == "📢 <b>Pesan dari A &amp; B</b>\n\n&lt;b&gt;x&lt;/b&gt;"
    assert payload["template_params"] == ["A & B", "<b>x</b>"]  # WhatsApp: plain text


async def test_one_broadcasts_trouble_does_not_stop_the_others(
    sessions: Sessions, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    people = await _people(sessions)
    stuck, fine = await _broadcast(sessions, people), await _broadcast(sessions, people)
    real = broadcasts.write_next_batch

    async def failing_for_the_first(**kwargs: Any) -> bool:
        if kwargs["broadcast_id"] == stuck:
            raise RuntimeError("database hiccup")
        return await real(**kwargs)

    monkeypatch.setattr(broadcasts, "write_next_batch", failing_for_the_first)
    with caplog.at_level(logging.ERROR, logger="scheduler.broadcasts"):
        assert await advance_broadcasts(sessions) == 2
    assert len(await _rows(sessions, fine)) == 2 and await _rows(sessions, stuck) == []
    (line,) = [record.getMessage() for record in caplog.records]
    assert f"broadcast {stuck}: step failed" in line and "\n" not in line
    monkeypatch.setattr(broadcasts, "write_next_batch", real)
    await advance_broadcasts(sessions)  # the next run picks it up
    assert len(await _rows(sessions, stuck)) == 2
