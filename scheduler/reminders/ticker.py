"""The reminder ticker (job `reminders` in scheduler/jobs.py, every minute): plan at the
clock's instant, then write each planned message not yet in the outbox, in one transaction.

Planning reads without locks; the write transaction takes the reminder writers' lock and looks
for the keys again, so a restart, a second process or a clock jump never writes a reminder twice:
the idempotency key names the period, office or pemda, contact, slot and day.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Channel, ChannelAdapter
from bot.engine.events import outgoing_to_payload
from scheduler.reminders.messages import compose
from scheduler.reminders.planner import PlannedMessage, active_periods, plan, plan_unreachable
from storage import outbox
from storage.db import transaction
from storage.reminder_policy import ReminderPolicy
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
    # Due at `at` to contacts nobody can reach (never wrote, no WhatsApp): not written.
    unreachable: list[PlannedMessage] = field(default_factory=list)

    @property
    def unsent(self) -> list[PlannedMessage]:
        return [message for message in self.due if message.key not in self.written]


def phone_channel(channels: Mapping[Channel, ChannelAdapter]) -> str | None:
    """The configured channel that may write first to a phone number (WhatsApp: an approved
    template to the imported number), if any. Telegram cannot start a chat with a number."""
    return next(
        (
            str(name)
            for name, adapter in channels.items()
            if adapter.capabilities.user_key_is_phone and adapter.capabilities.needs_inbound_window
        ),
        None,
    )


async def plan_at(
    sessions: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    phone_channel: str | None = None,
    with_unreachable: bool = False,
) -> Plan:
    """What is due at `now` and what of it was written already (a dry run: no writes);
    `with_unreachable`: also what is due to contacts nobody can reach (the operator's plan)."""
    async with sessions() as session:
        periods = active_periods(await dated_periods(session=session), now)
        if not periods:
            return Plan(now, [], set())
        snapshot = await load_snapshot(
            session=session, periods=periods, phone_channel=phone_channel
        )
        due = plan(snapshot, now)
        written = await written_keys(session=session, keys=[message.key for message in due])
    unreachable = plan_unreachable(snapshot, now) if with_unreachable else []
    return Plan(now, due, written, unreachable)


@dataclass
class ReminderTicker:
    sessions: async_sessionmaker[AsyncSession]
    clock: Callable[[], datetime] = utcnow
    wakeup: asyncio.Event | None = None  # the outbox sender's: rows are waiting
    # The channel that may write first to a contact's imported number (`phone_channel()`).
    phone_channel: str | None = None

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
        unsent = (await plan_at(self.sessions, now, phone_channel=self.phone_channel)).unsent
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
                    # The sender holds it in the recipient's quiet hours, and drops it once its
                    # slot is over (the deadline passed, or the next reminder is due).
                    local_zone=message.timezone,
                    quiet_hours=ReminderPolicy.from_stored(message.period.policy).quiet_hours.spelt,
                    expires_at=message.slot.until,
                )
                for message in unsent
                if message.key not in done
            ]
            await outbox.insert_outbox(session=session, rows=rows)
        return len(rows)
