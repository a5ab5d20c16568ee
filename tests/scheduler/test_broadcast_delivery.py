"""A broadcast through the real outbox sender and the real Telegram channel (python-telegram-bot)
against the fake Bot API over HTTP: killed while its rows are written and resumed, a storm of
429s, and the delivery report's reasons. Checked against what the fake server recorded."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.telegram import Limits, TelegramChannel
from bot.channels.whatsapp.templates import TEMPLATE_NAMES
from bot.engine.channel import Channel
from scheduler.broadcasts import BROADCAST_TEMPLATE, advance_broadcasts, recipient_payload
from scheduler.outbox import OutboxSender
from storage import broadcasts
from storage.db import transaction
from storage.models import Audience, Broadcast, BroadcastState, ChannelIdentity, OutboxMessage
from storage.types import utcnow
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.support.audience import Audience as People
from tests.support.audience import make_audience
from tests.support.daytime import to_midday

Sessions = async_sessionmaker[AsyncSession]
# Not paced, and a 429 does not hold the channel (the storms below are the outbox's retries to
# count, not real seconds to wait).
FAST = Limits(overall_per_second=1000, chat_burst=1000, chat_period=1, pause_on_429=False)
AUTHOR_CHAT = 4242
FROM_KANWIL = "Pesan dari Kanwil Lampung"


class Clock:
    """The sender's clock: real time moved on by hand, so a retry comes due without waiting."""

    def __init__(self) -> None:
        # Midday in Indonesia: broadcasts are held in their recipients' quiet hours.
        self.ahead = to_midday()

    def __call__(self) -> datetime:
        return utcnow() + self.ahead


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI() as fake:
        yield fake


async def _people(sessions: Sessions, focal_points: int) -> People:
    async with transaction(sessions) as session:
        people = await make_audience(session, extra_focal_points=focal_points - 2)
        session.add(
            ChannelIdentity(
                contact_id=people.kanwil.id or 0,
                channel=Channel.telegram,
                external_id=str(AUTHOR_CHAT),
            )
        )
    return people


async def _broadcast(sessions: Sessions, people: People) -> int:
    """What confirming /siaran writes: the broadcast row, no outbox row yet."""
    async with transaction(sessions) as session:
        made = await broadcasts.create_broadcast(
            session=session,
            spec=broadcasts.Recipients(
                audience=Audience.focal_points,
                region_id=people.world.province.id,
                author_id=people.kanwil.id,
            ),
            text="Bimtek RANHAM hari Senin pukul 09.00.",
            sender_label="Kanwil Lampung",
            author_channel=Channel.telegram,
            author_chat_id=str(AUTHOR_CHAT),
        )
        return made.id or 0


def _sender(
    sessions: Sessions, api: FakeTelegramAPI, tmp_path: Path, clock: Clock
) -> tuple[OutboxSender, TelegramChannel]:
    """A fresh process's sender and channel (nothing kept in memory from an earlier one)."""
    from storage.evidence import LocalEvidenceStore

    channel = TelegramChannel(
        token=api.token, api_url=api.url, store=LocalEvidenceStore(tmp_path), limits=FAST
    )
    return OutboxSender(
        sessions=sessions, channels={Channel.telegram: channel}, clock=clock
    ), channel


def _received(api: FakeTelegramAPI) -> Counter[str]:
    """How many times each chat got the broadcast, as the Bot API recorded it."""
    return Counter(
        str(params["chat_id"])
        for params in api.sent("sendMessage")
        if FROM_KANWIL in str(params.get("text", ""))
    )


def _to_author(api: FakeTelegramAPI) -> list[str]:
    return [str(params["text"]) for params in api.sent("sendMessage", AUTHOR_CHAT)]


async def _until_nothing_waits(
    sessions: Sessions,
    sender: OutboxSender,
    clock: Clock,
    *,
    step: Callable[[], None] | None = None,
) -> None:
    """Run the job and the sender the way `laporham run` does, moving the clock past retries."""
    for _ in range(20):
        await advance_broadcasts(sessions)
        await sender.drain_all()
        async with sessions() as session:
            states = (await session.exec(select(Broadcast.state))).all()
        if all(state is BroadcastState.done for state in states):
            await sender.drain_all()  # the report itself
            return
        clock.ahead += timedelta(seconds=2)
        if step:
            step()
    raise AssertionError("the broadcast never finished")


async def test_a_broadcast_killed_while_writing_resumes_and_reaches_everyone_once(
    sessions: Sessions, api: FakeTelegramAPI, tmp_path: Path
) -> None:
    people = await _people(sessions, focal_points=60)
    broadcast_id = await _broadcast(sessions, people)
    clock = Clock()
    first, first_channel = _sender(sessions, api, tmp_path, clock)
    async with transaction(sessions) as session:
        await broadcasts.write_next_batch(
            session=session, broadcast_id=broadcast_id, limit=25, payload_for=recipient_payload
        )
    # The process dies in the middle of the second batch: its transaction never commits.
    with pytest.raises(RuntimeError, match="killed"):
        async with transaction(sessions) as session:
            await broadcasts.write_next_batch(
                session=session, broadcast_id=broadcast_id, limit=25, payload_for=recipient_payload
            )
            raise RuntimeError("killed")
    await first.drain_all()  # what it had committed went out before it died
    await first_channel.close()
    assert sum(_received(api).values()) == 25

    # The restart: a new sender and channel; the job finds the broadcast half written.
    second, second_channel = _sender(sessions, api, tmp_path, clock)
    try:
        await _until_nothing_waits(sessions, second, clock)
    finally:
        await second_channel.close()
    assert _received(api) == Counter({chat: 1 for chat in people.focal_chats.values()})
    report = _to_author(api)[-1]
    assert f"Laporan siaran #{broadcast_id}" in report and "Terkirim: 60 dari 60" in report


async def test_a_storm_of_429s_during_a_broadcast_loses_nothing(
    sessions: Sessions, api: FakeTelegramAPI, tmp_path: Path
) -> None:
    people = await _people(sessions, focal_points=40)
    await _broadcast(sessions, people)
    clock = Clock()
    api.fail_next("sendMessage", status=429, retry_after=1, count=30)
    sender, channel = _sender(sessions, api, tmp_path, clock)
    try:
        # Another storm on the way, after the first retries.
        storms = iter([lambda: api.fail_next("sendMessage", status=429, retry_after=1, count=10)])
        await _until_nothing_waits(
            sessions, sender, clock, step=lambda: next(storms, lambda: None)()
        )
    finally:
        await channel.close()
    refused = [record for record in api.requests if record.status == 429]
    assert len(refused) == 40
    assert _received(api) == Counter({chat: 1 for chat in people.focal_chats.values()})
    assert "Terkirim: 40 dari 40" in _to_author(api)[-1]


async def test_the_delivery_report_names_why_some_failed(
    sessions: Sessions, api: FakeTelegramAPI, tmp_path: Path
) -> None:
    people = await _people(sessions, focal_points=30)
    broadcast_id = await _broadcast(sessions, people)
    blocked, *others = list(people.focal_chats.values())
    api.block(int(blocked))
    clock = Clock()
    sender, channel = _sender(sessions, api, tmp_path, clock)
    try:
        await _until_nothing_waits(sessions, sender, clock)
    finally:
        await channel.close()
    report = _to_author(api)[-1]
    assert "Terkirim: 29 dari 30" in report and "Gagal: 1" in report
    assert "• memblokir bot: 1" in report
    async with sessions() as session:
        figures = await broadcasts.delivery(session=session, broadcast_id=broadcast_id)
        rows = (
            await session.exec(
                select(OutboxMessage).where(OutboxMessage.broadcast_id == broadcast_id)
            )
        ).all()
    assert (figures.sent, figures.failed, figures.waiting) == (29, 1, 0)
    assert {row.purpose for row in rows} == {"broadcast"}
    assert {row.idempotency_key for row in rows} == {
        f"broadcast:{broadcast_id}:{row.contact_id}" for row in rows
    }
    assert _received(api) == Counter({chat: 1 for chat in others})


def test_the_broadcast_goes_as_the_whatsapp_broadcast_template() -> None:
    assert BROADCAST_TEMPLATE in TEMPLATE_NAMES
