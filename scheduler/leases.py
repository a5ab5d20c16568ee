"""A named lease in the database (storage/leases.py), as a process holds it: take or renew,
each in a transaction of its own, and release at a graceful stop."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import leases
from storage.db import transaction
from storage.types import utcnow

log = logging.getLogger(__name__)


class DatabaseLease:
    """`name` held by `owner` for `ttl` at a time, renewed every third of it (see
    bot.engine.channel.Lease). A database error counts as not holding: better to stop a job
    than to run it twice."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        name: str,
        owner: str,
        ttl: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.name = name
        self.owner = owner
        self.ttl = ttl
        self.clock = clock
        self.renew_seconds = ttl.total_seconds() / 3
        self._held = False

    async def hold(self) -> bool:
        now = self.clock()
        try:
            async with transaction(self.sessions) as session:
                held = await leases.take_lease(
                    session=session, name=self.name, owner=self.owner, now=now, until=now + self.ttl
                )
        except Exception as error:
            log.warning("lease %s: not renewed: %s", self.name, error)
            held = False
        if held != self._held:  # a state change is worth one line; a renewal is not
            log.info("lease %s %s", self.name, "taken" if held else "not held")
        self._held = held
        return held

    async def release(self) -> None:
        try:
            async with transaction(self.sessions) as session:
                await leases.release_lease(session=session, name=self.name, owner=self.owner)
        except Exception as error:  # it expires on its own
            log.warning("lease %s: not released: %s", self.name, error)
        self._held = False
