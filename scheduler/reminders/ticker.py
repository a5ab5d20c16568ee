"""The reminder ticker (job `reminders` in scheduler/jobs.py, every minute): plan at the
clock's instant, then write each planned message not yet in the outbox, in one transaction.

Planning reads without locks; the write transaction takes the reminder writers' lock and looks
for the keys again, so a restart, a second process or a clock jump never writes a reminder twice:
the idempotency key names the period, office or pemda, contact, slot and day.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.events import outgoing_to_payload
from scheduler.reminders.messages import compose
from scheduler.reminders.planner import PlannedMessage, active_periods, plan
from storage import outbox
from storage.db import transaction
from storage.reminders import (
    dated_periods,
    load_snapshot,
    serialise_reminder_writers,
    written_keys,
)
from storage.types import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    at: datetime
    due: list[PlannedMessage]  # due at `at`
    written: set[str]  # keys of those the outbox holds already

    @property
    def unsent(self) -> list[PlannedMessage]:
        return [message for message in self.due if message.key not in self.written]


async def plan_at(sessions: async_sessionmaker[AsyncSession], now: datetime) -> Plan:
    """What is due at `now` and what of it was written already (a dry run: no writes)."""
    async with sessions() as session:
        periods = active_periods(await dated_periods(session=session), now)
        if not periods:
            return Plan(now, [], set())
        snapshot = await load_snapshot(session=session, periods=periods)
        due = plan(snapshot, now)
        written = await written_keys(session=session, keys=[message.key for message in due])
    return Plan(now, due, written)


@dataclass
class ReminderTicker:
    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime] = utcnow
    wakeup: asyncio.Event | None = None  # the outbox sender's: rows are waiting

    async def tick(self) -> int:
        """Write the reminders due now; how many were written. Never raises: a failed tick is
        one log line, and the next tick (a minute later) plans again from the data."""
        try:
            written = await self._tick(self.clock())
        except Exception as error:  # a job must not die; the next tick plans again
            log.error("reminders: tick failed: %s", f"{type(error).__name__}: {error}"[:300])
            return 0
        if written and self.wakeup is not None:
            self.wakeup.set()
        return written

    async def _tick(self, now: datetime) -> int:
        unsent = (await plan_at(self.sessions, now)).unsent
        if not unsent:
            return 0
        async with transaction(self.sessions) as session:
            await serialise_reminder_writers(session=session)
            done = await written_keys(session=session, keys=[message.key for message in unsent])
            rows = [
                outbox.outbox_row(
                    idempotency_key=message.key,
                    channel=message.recipient.channel,
                    recipient=message.recipient.chat_id,
                    contact_id=message.recipient.contact_id,
                    purpose=message.purpose,
                    payload=outgoing_to_payload(compose(message, now)),
                    not_before=now,
                )
                for message in unsent
                if message.key not in done
            ]
            await outbox.insert_outbox(session=session, rows=rows)
        return len(rows)
