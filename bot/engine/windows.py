"""A channel's closed free-form windows (WhatsApp), kept in the database through
storage/windows.py: the composition root gives one to the channel, which reads and notes
through it and never builds a session itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Channel
from storage import windows
from storage.db import transaction


class StoredClosedWindows:
    """bot.engine.channel.ClosedWindows over the database, for one channel."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], channel: Channel) -> None:
        self.sessions = sessions
        self.channel = channel

    async def closed_at(self, chat_id: str) -> datetime | None:
        async with self.sessions() as session:
            return await windows.window_closed_at(
                session=session, channel=self.channel, recipient=chat_id
            )

    async def note_closed(self, chat_id: str, at: datetime) -> None:
        async with transaction(self.sessions) as session:
            await windows.note_window_closed(
                session=session, channel=self.channel, recipient=chat_id, at=at
            )
