from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.engine.channel import Channel
from storage.models import InboxMessage, Region, RegionKind


async def test_timestamps_come_back_timezone_aware_utc(session) -> None:
    session.add(Region(code="18", name="Lampung", kind=RegionKind.provinsi))
    before = datetime.now(UTC)
    message = InboxMessage(channel=Channel.telegram, message_id="1")
    after = datetime.now(UTC)
    session.add(message)
    await session.commit()
    session.expunge_all()
    loaded = (await session.exec(select(InboxMessage))).one()
    assert loaded.received_at.tzinfo is not None
    assert loaded.received_at.utcoffset().total_seconds() == 0
    assert before <= loaded.received_at <= after  # the default is the time of creation


async def test_inbox_message_id_is_unique_per_channel(session) -> None:
    session.add(InboxMessage(channel=Channel.telegram, message_id="42"))
    session.add(InboxMessage(channel=Channel.whatsapp, message_id="42"))
    await session.commit()
    session.add(InboxMessage(channel=Channel.telegram, message_id="42"))
    with pytest.raises(IntegrityError):
        await session.commit()


async def test_naive_datetimes_are_refused(session) -> None:
    session.add(
        InboxMessage(channel=Channel.console, message_id="x", received_at=datetime(2025, 1, 1))
    )
    with pytest.raises(Exception, match="naive"):
        await session.commit()
