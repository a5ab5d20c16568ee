"""The one sender: every outgoing message leaves through the outbox, after its transaction
committed.

```mermaid
stateDiagram-v2
    [*] --> pending: enqueued in the handler's transaction
    pending --> sending: claimed (attempts + 1)
    sending --> sent: channel accepted it
    sending --> pending: transient error / retry_after (next_attempt_at later)
    sending --> failed: permanent error, unreachable user, or too many attempts
    sending --> pending: process died (released at start-up: at-least-once)
```

Messages to one recipient go out in order, one at a time; different recipients in parallel.
Rate limits are the channel adapters' business (each knows its platform's limits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import (
    ChannelAdapter,
    PermanentSendError,
    RecipientUnreachable,
    SendError,
    TransientSendError,
)
from bot.engine.events import outgoing_from_payload
from storage import conversations
from storage.db import transaction
from storage.models import Channel, OutboxMessage, OutboxStatus
from storage.types import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
POLL_SECONDS = 1.0


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(300, 2 ** max(0, attempts - 1)))


class OutboxSender:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        channels: dict[Channel, ChannelAdapter],
        wakeup: asyncio.Event | None = None,
        clock: Callable[[], datetime] = utcnow,
        batch_size: int = 100,
    ) -> None:
        self.sessions = sessions
        self.channels = channels
        self.wakeup = wakeup or asyncio.Event()
        self.clock = clock
        self.batch_size = batch_size

    async def recover(self) -> int:
        """Rows a dead process left in `sending` are sent again (at-least-once)."""
        async with transaction(self.sessions) as session:
            return await conversations.release_stale_sending(
                session=session, older_than=self.clock()
            )

    async def run(self) -> None:
        await self.recover()
        while True:
            # Clear before draining: a wake-up that arrives during the drain must not be lost.
            self.wakeup.clear()
            if await self.drain():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), timeout=POLL_SECONDS)

    async def drain(self) -> int:
        """Send everything due now, once; return how many rows were handled."""
        handled = 0
        for channel, adapter in list(self.channels.items()):
            async with transaction(self.sessions) as session:
                rows = await conversations.claim_due_outbox(
                    session=session, channel=channel, now=self.clock(), limit=self.batch_size
                )
            by_recipient: dict[str, list[OutboxMessage]] = defaultdict(list)
            for row in rows:
                by_recipient[row.recipient].append(row)
            await asyncio.gather(
                *(self._send_in_order(adapter, queue) for queue in by_recipient.values())
            )
            handled += len(rows)
        return handled

    async def drain_all(self, max_rounds: int = 100) -> None:
        """Drain until nothing is due (tests and the console channel)."""
        for _ in range(max_rounds):
            if not await self.drain():
                return

    async def _send_in_order(self, adapter: ChannelAdapter, queue: list[OutboxMessage]) -> None:
        for index, row in enumerate(queue):
            delivered = await self._send_one(adapter, row)
            if not delivered:
                # Keep the order: what follows a message that must wait, waits too.
                await self._postpone(queue[index + 1 :])
                return

    async def _send_one(self, adapter: ChannelAdapter, row: OutboxMessage) -> bool:
        message = outgoing_from_payload(row.payload)
        try:
            last_seen = None
            if adapter.capabilities.needs_inbound_window:  # only WhatsApp has the 24 h rule
                async with self.sessions() as session:
                    last_seen = await conversations.last_inbound_at(
                        session=session, channel=row.channel, external_id=row.recipient
                    )
            provider_id = await adapter.send(row.recipient, message, last_inbound_at=last_seen)
        except RecipientUnreachable as error:
            await self._finish(row, OutboxStatus.failed, error=str(error), unreachable=True)
            return True
        except PermanentSendError as error:
            await self._finish(row, OutboxStatus.failed, error=str(error))
            return True
        except (TransientSendError, SendError) as error:
            return await self._retry_later(row, error)
        except Exception as error:  # an adapter bug must not kill the sender
            log.exception("send failed for outbox %s", row.id)
            return await self._retry_later(row, TransientSendError(repr(error)))
        await self._finish(row, OutboxStatus.sent, provider_id=provider_id)
        return True

    async def _retry_later(self, row: OutboxMessage, error: SendError) -> bool:
        if row.attempts >= MAX_ATTEMPTS:
            await self._finish(row, OutboxStatus.failed, error=f"gave up: {error}")
            return True
        wait = (
            timedelta(seconds=error.retry_after)
            if error.retry_after is not None
            else backoff(row.attempts)
        )
        async with transaction(self.sessions) as session:
            await conversations.update_outbox(
                session=session,
                outbox_id=row.id or 0,
                status=OutboxStatus.pending,
                next_attempt_at=self.clock() + wait,
                last_error=str(error),
            )
        return False

    async def _postpone(self, rows: list[OutboxMessage]) -> None:
        if not rows:
            return
        async with transaction(self.sessions) as session:
            for row in rows:
                stored = await conversations.outbox_row(session=session, outbox_id=row.id or 0)
                if stored and stored.status is OutboxStatus.sending:
                    stored.status = OutboxStatus.pending
                    stored.attempts = max(0, stored.attempts - 1)  # it was never tried

    async def _finish(
        self,
        row: OutboxMessage,
        status: OutboxStatus,
        *,
        provider_id: str | None = None,
        error: str | None = None,
        unreachable: bool = False,
    ) -> None:
        now = self.clock()
        values: dict[str, object] = {"status": status, "last_error": error}
        if status is OutboxStatus.sent:
            values |= {"sent_at": now, "provider_message_id": provider_id}
        async with transaction(self.sessions) as session:
            await conversations.update_outbox(session=session, outbox_id=row.id or 0, **values)
            if unreachable:
                await conversations.mark_unreachable(
                    session=session, channel=row.channel, external_id=row.recipient, now=now
                )
