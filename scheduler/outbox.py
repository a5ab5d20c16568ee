"""The one sender: every outgoing message leaves through the outbox, after its transaction
committed.

```mermaid
stateDiagram-v2
    [*] --> pending: enqueued in the handler's transaction
    pending --> sending: claimed (attempts + 1)
    sending --> sent: channel accepted it
    sending --> pending: transient error / retry_after (next_attempt_at later)
    sending --> pending: an earlier message to the same recipient must wait (not counted)
    sending --> failed: permanent error, unreachable user, or too many attempts
    sending --> pending: process died (released at start-up: at-least-once)
```

How it runs, in cycles:

```mermaid
sequenceDiagram
    participant E as Engine (after commit)
    participant S as Sender cycle
    participant DB as Database
    participant W as Worker of one recipient
    participant C as Channel adapter
    E-->>S: wake up
    S->>DB: one transaction: write the outcomes gathered so far, claim due rows
    S->>W: hand each row to its recipient's worker (started if idle)
    W->>C: send, one message after the other
    W-->>S: outcome (kept in memory until the next cycle writes it)
```

Messages to one recipient go out in order, one at a time; different recipients in parallel,
each as soon as its row is claimed: no recipient waits for a slow one. Outcomes are written in
batches, so a busy bot spends one transaction on many sends; a crash before that write sends
those messages again at start-up (at-least-once, as before).
Rate limits are the channel adapters' business (each knows its platform's limits).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import (
    Channel,
    ChannelAdapter,
    PermanentSendError,
    RecipientUnreachable,
    SendError,
    TransientSendError,
)
from bot.engine.events import outgoing_from_payload
from bot.engine.health import DATABASE, Health, short_reason
from storage import identities, outbox
from storage.db import transaction
from storage.models import OutboxStatus
from storage.outbox import QueuedMessage
from storage.types import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
POLL_SECONDS = 1.0


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(300, 2 ** max(0, attempts - 1)))


@dataclass
class _Change:
    """What became of one claimed row, written at the start of the next cycle."""

    outbox_id: int
    values: dict[str, object]
    unreachable: tuple[Channel, str] | None = None


RecipientKey = tuple[Channel, str]


class OutboxSender:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        channels: dict[Channel, ChannelAdapter],
        wakeup: asyncio.Event | None = None,
        clock: Callable[[], datetime] = utcnow,
        batch_size: int = 100,
        health: Health | None = None,
    ) -> None:
        self.sessions = sessions
        self.health = health or Health()  # a database outage is logged once, not every cycle
        self.channels = channels
        self.wakeup = wakeup or asyncio.Event()
        self.clock = clock
        self.batch_size = batch_size
        self._queues: dict[RecipientKey, deque[QueuedMessage]] = {}
        self._workers: dict[RecipientKey, asyncio.Task[None]] = {}
        # Recipients whose message waits for a retry, until when: what follows must wait too.
        self._held_until: dict[RecipientKey, datetime] = {}
        self._changes: list[_Change] = []
        self._live = False  # run() is sending: the engine may hand rows over directly
        self._unsent: list[int] = []
        self._changed = asyncio.Event()

    async def recover(self) -> int:
        """Rows a dead process left in `sending` are sent again (at-least-once)."""
        async with transaction(self.sessions) as session:
            return await outbox.release_stale_sending(session=session, older_than=self.clock())

    async def run(self) -> None:
        await self.recover()
        claim = True
        self._live = True
        try:
            while True:
                # Clear before the cycle: a wake-up that arrives during it starts the next one.
                self.wakeup.clear()
                self._changed.clear()
                try:
                    claimed = await self._cycle(claim=claim)
                except Exception as error:
                    # The database is down or locked: keep the outcomes, try again shortly.
                    self.health.failing(DATABASE, f"outbox cycle failed: {short_reason(error)}")
                    await asyncio.sleep(POLL_SECONDS)
                    claim = True
                    continue
                self.health.ok(DATABASE)
                if claimed >= self.batch_size:
                    continue  # more may be due right now
                claim = await self._wait()
        finally:
            self._live = False
            await self._stop_workers()

    async def _wait(self) -> bool:
        """Until new rows (True), outcomes to write (False) or the poll interval (True: retries
        that came due are claimed)."""
        waits = [asyncio.ensure_future(event.wait()) for event in (self.wakeup, self._changed)]
        try:
            await asyncio.wait(waits, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        return self.wakeup.is_set() or not self._changed.is_set()

    async def drain(self) -> int:
        """Send everything due now, once, and record the outcomes; return how many rows were
        claimed."""
        claimed = await self._cycle(claim=True)
        while self._workers:
            await asyncio.gather(*list(self._workers.values()))
        await self._cycle(claim=False)
        return claimed

    async def drain_all(self, max_rounds: int = 100) -> None:
        """Drain until nothing is due (tests and the console channel)."""
        for _ in range(max_rounds):
            if not await self.drain():
                return

    async def _cycle(self, *, claim: bool) -> int:
        """One transaction: write the outcomes gathered so far, then claim what is due."""
        changes, self._changes = self._changes, []
        unsent, self._unsent = self._unsent, []
        if not (claim or changes or unsent):
            return 0
        claimed: list[QueuedMessage] = []
        try:
            async with transaction(self.sessions) as session:
                await self._write(session, changes, unsent)
                if claim:
                    for channel in self.channels:
                        claimed += await outbox.claim_due_outbox(
                            session=session,
                            channel=channel,
                            now=self.clock(),
                            limit=self.batch_size,
                        )
        except BaseException:
            # Not written: keep them for the next cycle (a crash now sends those rows again).
            self._changes[:0], self._unsent[:0] = changes, unsent
            raise
        for row in claimed:
            self._dispatch(row)
        return len(claimed)

    async def _write(
        self, session: AsyncSession, changes: list[_Change], unsent: list[int]
    ) -> None:
        await outbox.update_outbox_rows(
            session=session, changes=[(change.outbox_id, change.values) for change in changes]
        )
        await outbox.release_unsent(session=session, outbox_ids=unsent)
        for change in changes:
            if change.unreachable:
                channel, recipient = change.unreachable
                await identities.mark_unreachable(
                    session=session, channel=channel, external_id=recipient, now=self.clock()
                )

    def can_take(self, channel: Channel, recipient: str) -> bool:
        """Whether the engine may write a reply already claimed and hand it over after commit
        (the engine also checks that nothing waits in the table for this recipient)."""
        return self._live and (channel, recipient) not in self._held_until

    def take(self, rows: list[QueuedMessage]) -> None:
        """Committed rows the engine wrote claimed: to their recipient's worker at once."""
        for row in rows:
            self._dispatch(row, handed=True)

    def _dispatch(self, row: QueuedMessage, *, handed: bool = False) -> None:
        key = (Channel(row.channel), row.recipient)  # storage keeps the channel as a string
        held_until = self._held_until.get(key)
        if held_until is not None:
            # A hand-off never passes a hold, even one that has run out: the held rows wait in
            # the table and go first, claimed in order, which is what lifts the hold.
            if handed or held_until > self.clock():
                self._release([row])
                return
            del self._held_until[key]
        self._queues.setdefault(key, deque()).append(row)
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key))

    async def _work(self, key: RecipientKey) -> None:
        queue = self._queues[key]
        adapter = self.channels[key[0]]
        try:
            while queue:
                row = queue.popleft()
                retry_at = await self._send_one(adapter, row)
                if retry_at is not None:
                    # Keep the order: what follows a message that must wait, waits too.
                    self._held_until[key] = retry_at
                    self._release(list(queue))
                    queue.clear()
        finally:
            del self._queues[key], self._workers[key]

    async def _send_one(self, adapter: ChannelAdapter, row: QueuedMessage) -> datetime | None:
        """Send one row and note its outcome; the time of its retry when it must wait."""
        message = outgoing_from_payload(row.payload)
        try:
            last_seen = None
            if adapter.capabilities.needs_inbound_window:  # only WhatsApp has the 24 h rule
                async with self.sessions() as session:
                    last_seen = await identities.last_inbound_at(
                        session=session, channel=row.channel, external_id=row.recipient
                    )
            provider_id = await adapter.send(row.recipient, message, last_inbound_at=last_seen)
        except RecipientUnreachable as error:
            self._note(row, status=OutboxStatus.failed, last_error=str(error), unreachable=True)
            return None
        except PermanentSendError as error:
            self._note(row, status=OutboxStatus.failed, last_error=str(error))
            return None
        except (TransientSendError, SendError) as error:
            return self._retry_later(row, error)
        except Exception as error:  # an adapter bug must not kill the sender
            log.exception("send failed for outbox %s", row.id)
            return self._retry_later(row, TransientSendError(repr(error)))
        self._note(
            row,
            status=OutboxStatus.sent,
            last_error=None,
            sent_at=self.clock(),
            provider_message_id=provider_id,
        )
        return None

    def _retry_later(self, row: QueuedMessage, error: SendError) -> datetime | None:
        if row.attempts >= MAX_ATTEMPTS:
            self._note(row, status=OutboxStatus.failed, last_error=f"gave up: {error}")
            return None
        wait = (
            timedelta(seconds=error.retry_after)
            if error.retry_after is not None
            else backoff(row.attempts)
        )
        retry_at = self.clock() + wait
        self._note(
            row, status=OutboxStatus.pending, next_attempt_at=retry_at, last_error=str(error)
        )
        return retry_at

    def _note(self, row: QueuedMessage, *, unreachable: bool = False, **values: object) -> None:
        self._changes.append(
            _Change(
                outbox_id=row.id,
                values=values,
                unreachable=(Channel(row.channel), row.recipient) if unreachable else None,
            )
        )
        self._changed.set()

    def _release(self, rows: list[QueuedMessage]) -> None:
        if rows:
            self._unsent += [row.id for row in rows]
            self._changed.set()

    async def _stop_workers(self) -> None:
        """On shutdown: sends in flight are cancelled; their rows stay `sending` and go out
        again after the restart (at-least-once)."""
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
