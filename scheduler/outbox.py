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
    sending --> pending: its sender stopped before trying it (released at once)
    sending --> pending: its sender died: the claim's lease expired (at-least-once)
    sending --> pending: reminder, escalation, broadcast in quiet hours: held until they end
    sending --> failed: such a row expired, or would before its quiet hours end (reason kept)
```

Several processes may send from one database (a deploy overlap, a second worker). Each claim
names its sender (`owner`) and holds the row until a lease expires; the sender renews the
leases of the rows it has in hand, and every sender, at start-up and then periodically, takes
back only rows whose lease has expired, never another live sender's. Claims go replies first,
then reminders, then broadcasts, and the sender holds only `max_in_flight` claimed rows at a
time, so a reply written during a broadcast is claimed ahead of what is left of it; the
channel's rate limiter then lets it pass the broadcast sends already waiting there
(`send_priority`).

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

A graceful stop (`stop()`, on SIGTERM) claims nothing more, puts the rows not yet begun back to
pending at once, lets the sends in hand finish (bounded), and writes every outcome it collected,
so nothing already sent goes out again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
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
    send_priority,
)
from bot.engine.events import outgoing_from_payload
from bot.engine.health import DATABASE, Health, short_reason
from storage import identities, outbox
from storage.db import transaction
from storage.models import OutboxStatus
from storage.outbox import QueuedMessage
from storage.reminder_policy import QuietHours
from storage.types import utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
POLL_SECONDS = 1.0
# Claimed rows held in memory at most (about 4 s of Telegram's pace): a reply written later is
# claimed ahead of the rest of a broadcast instead of queueing behind all of it.
MAX_IN_FLIGHT = 100
# Replies are claimed even past MAX_IN_FLIGHT: at most this many more.
REPLY_ALLOWANCE = 100
# Outcomes are written at most this often (seconds) while nothing else calls for a cycle: one
# write transaction per send would take the database's write lock 25 times a second during a
# broadcast, and every user's turn would queue behind it (SQLite).
OUTCOME_WRITE_SECONDS = 0.25


# Messages nobody is waiting for: held in the recipient's quiet hours (policy's, or 21:00-07:00
# local) until they end. A reply to someone's own message is never held.
HELD_PURPOSES = frozenset({"reminder", "escalation", "broadcast"})
# A contact without a region: the zone most users are in.
DEFAULT_ZONE = "Asia/Jakarta"


def quiet_hold(row: QueuedMessage, now: datetime, zone: str) -> tuple[datetime | None, str | None]:
    """(until when the row must wait, or None: it may go now; the reason it is dropped, or
    None). Dropped: it expired (a reminder's slot ended: its deadline passed, or the next
    reminder is due), or the quiet hours end only after it expires."""
    expires = row.expires_at
    if expires is not None and now >= expires:
        return None, "not sent: expired before it could be sent (outbox backlog or outage)"
    quiet = QuietHours.parse(row.quiet_hours)
    until = quiet.ends_after(now, zone)
    if until is not None and expires is not None and until >= expires:
        return None, f"not sent: quiet hours ({quiet.spelt} {zone}) last past its deadline"
    return until, None


def process_owner() -> str:
    """Who claims: this host and process, and a random part (a pid is reused after a
    restart; the old process's leases must not look like the new one's)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


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
        owner: str | None = None,
        lease: timedelta = outbox.CLAIM_LEASE,
        max_in_flight: int = MAX_IN_FLIGHT,
        stop_grace: float = 5.0,
        health: Health | None = None,
    ) -> None:
        self.sessions = sessions
        self.health = health or Health()  # a database outage is logged once, not every cycle
        self.channels = channels
        self.wakeup = wakeup or asyncio.Event()
        self.clock = clock
        self.batch_size = batch_size
        self.owner = owner or process_owner()
        self.lease = lease
        self.max_in_flight = max_in_flight
        self.stop_grace = stop_grace  # seconds a graceful stop waits for the sends in hand
        # Rows this sender holds (claimed or handed over) whose outcome is not noted yet.
        self._in_hand: set[int] = set()
        self._more_due = False  # the last claim was cut short by max_in_flight
        self._next_upkeep: datetime | None = None  # renew leases, take back expired claims
        self._stopping = asyncio.Event()
        self._queues: dict[RecipientKey, deque[QueuedMessage]] = {}
        self._workers: dict[RecipientKey, asyncio.Task[None]] = {}
        # Recipients whose message waits for a retry, until when: what follows must wait too.
        self._held_until: dict[RecipientKey, datetime] = {}
        self._changes: list[_Change] = []
        self._live = False  # run() is sending: the engine may hand rows over directly
        self._unsent: list[int] = []
        self._changed = asyncio.Event()

    async def recover(self) -> int:
        """Rows whose claim's lease expired (a dead process's) are sent again (at-least-once);
        a live sender's claims are left alone."""
        async with transaction(self.sessions) as session:
            return await outbox.release_expired_claims(session=session, now=self.clock())

    def stop(self) -> None:
        """Stop gracefully (see the module's docstring): from now on no send begins, and no
        hand-off is taken; run() returns once the sends in hand are done and written."""
        self._stopping.set()
        self._live = False
        self._hand_back_queued()

    def _hand_back_queued(self) -> None:
        for queue in self._queues.values():
            self._release(list(queue))
            queue.clear()

    async def run(self) -> None:
        await self.recover()
        claim = True
        self._live = True
        graceful = False
        try:
            while not self._stopping.is_set():
                # Clear before the cycle: a wake-up that arrives during it starts the next one.
                self.wakeup.clear()
                self._changed.clear()
                try:
                    claimed = await self._cycle(claim=claim)
                except Exception as error:
                    # The database is down or locked: keep the outcomes, try again shortly.
                    self.health.failing(DATABASE, f"outbox cycle failed: {short_reason(error)}")
                    await self._pause(POLL_SECONDS)
                    claim = True
                    continue
                self.health.ok(DATABASE)
                if claimed >= self.batch_size and self._room() > 0:
                    continue  # more may be due right now
                claim = await self._wait()
            graceful = True
        finally:
            self._live = False
            await self._finish(grace=self.stop_grace if graceful else 0.0)

    async def _pause(self, seconds: float) -> None:
        """Sleep, cut short by stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    def _room(self) -> int:
        return self.max_in_flight - len(self._in_hand)

    async def _wait(self) -> bool:
        """Until new rows (True), outcomes to write (False, unless a claim was cut short and
        half the room is free again: True), a stop, or the poll interval (True: retries that
        came due are claimed)."""
        events = (self.wakeup, self._changed, self._stopping)
        waits = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait(waits, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        refill = self._more_due and self._room() >= self.max_in_flight // 2
        if self.wakeup.is_set() or not self._changed.is_set() or refill:
            return True
        # Only outcomes to write: gather a few more first, unless woken or stopped meanwhile.
        waits = [asyncio.ensure_future(event.wait()) for event in (self.wakeup, self._stopping)]
        try:
            await asyncio.wait(
                waits, timeout=OUTCOME_WRITE_SECONDS, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in waits:
                waiting.cancel()
        return self.wakeup.is_set()

    async def _finish(self, *, grace: float) -> None:
        """Stopping: rows not begun go back to pending now (another process may send them at
        once), sends in hand get `grace` seconds, then every collected outcome is written.
        A send cut short stays `sending` under its lease: sent again once that expires."""
        self._hand_back_queued()
        workers = list(self._workers.values())
        if workers and grace > 0:
            _, late = await asyncio.wait(workers, timeout=grace)
            workers = list(late)
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        try:
            await self._cycle(claim=False)
        except Exception as error:  # the database is away: those rows are sent again later
            log.warning("outbox outcomes not written at stop: %s", error)

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
        """One transaction: write the outcomes gathered so far, keep this sender's leases
        alive (and take back expired ones) when due, then claim what is due."""
        changes, self._changes = self._changes, []
        unsent, self._unsent = self._unsent, []
        now = self.clock()
        if self._next_upkeep is None:  # recover() has just run, and nothing is in hand yet
            self._next_upkeep = now + self.lease / 3
        upkeep = now >= self._next_upkeep
        if not (claim or changes or unsent or upkeep):
            return 0
        claimed: list[QueuedMessage] = []
        try:
            async with transaction(self.sessions) as session:
                await self._write(session, changes, unsent)
                if upkeep:
                    await self._upkeep(session, now)
                if claim:
                    claimed = await self._claim(session, now)
        except BaseException:
            # Not written: keep them for the next cycle (a crash now sends those rows again).
            self._changes[:0], self._unsent[:0] = changes, unsent
            raise
        if upkeep:
            self._next_upkeep = now + self.lease / 3
        for row in claimed:
            self._dispatch(row)
        return len(claimed)

    async def _upkeep(self, session: AsyncSession, now: datetime) -> None:
        """Renew the leases of the rows in hand (a long wait for a rate limit must not let
        another process take them), and take back claims whose lease expired."""
        await outbox.renew_claims(
            session=session, owner=self.owner, until=now + self.lease, outbox_ids=self._in_hand
        )
        released = await outbox.release_expired_claims(session=session, now=now)
        if released:
            log.warning("outbox: %s rows of a stopped sender taken back", released)

    async def _claim(self, session: AsyncSession, now: datetime) -> list[QueuedMessage]:
        """Due rows up to the room left; past it, replies only (a few, so a broadcast never
        keeps an answer waiting)."""
        claimed: list[QueuedMessage] = []
        room = min(self.batch_size, self._room())
        for channel in self.channels:
            if room > 0:
                taken = await outbox.claim_due_outbox(
                    session=session, channel=channel, now=now, limit=room,
                    owner=self.owner, until=now + self.lease,
                )  # fmt: skip
                self._more_due = len(taken) >= room
                room -= len(taken)
                taken = await self._outside_quiet_hours(session, now, taken)
            else:
                taken = await outbox.claim_due_outbox(
                    session=session, channel=channel, now=now, limit=REPLY_ALLOWANCE,
                    owner=self.owner, until=now + self.lease,
                    lowest_priority=outbox.PRIORITY["reply"],
                )  # fmt: skip
                self._more_due = True
            claimed += taken
        return claimed

    async def _outside_quiet_hours(
        self, session: AsyncSession, now: datetime, rows: list[QueuedMessage]
    ) -> list[QueuedMessage]:
        """Of rows just claimed, those that may go now. A reminder, escalation or broadcast
        that reaches the sender in its recipient's quiet hours (a backlog, an outage, a
        restart) goes back to wait until they end; one that expired, or would by then, is
        dropped with its reason. Replies always go. Written in the claim's transaction."""
        if not any(row.purpose in HELD_PURPOSES for row in rows):
            return rows
        unknown = {
            row.contact_id
            for row in rows
            if row.purpose in HELD_PURPOSES and row.local_zone is None and row.contact_id
        }
        zones = await outbox.contact_zones(session=session, contact_ids=unknown)
        ready: list[QueuedMessage] = []
        held: list[tuple[int, datetime]] = []
        dropped: list[tuple[int, dict[str, object]]] = []
        for row in rows:
            # A row naming neither a zone nor a contact is to nobody we know (an operator's
            # test message, a benchmark): there is no one's night to respect.
            if row.purpose not in HELD_PURPOSES or (row.local_zone is None and not row.contact_id):
                ready.append(row)
                continue
            zone = row.local_zone or zones.get(row.contact_id or 0) or DEFAULT_ZONE
            until, reason = quiet_hold(row, now, zone)
            if reason is not None:
                values = {"status": OutboxStatus.failed, "last_error": reason}
                dropped.append((row.id, values | {"claimed_by": None, "lease_expires_at": None}))
            elif until is not None:
                held.append((row.id, until))
            else:
                ready.append(row)
        await outbox.hold_claimed(session=session, owner=self.owner, held=held)
        await outbox.update_outbox_rows(session=session, changes=dropped, owner=self.owner)
        if held or dropped:
            log.info(
                "outbox: %d rows held for their recipients' quiet hours, %d dropped as expired",
                len(held), len(dropped),
            )  # fmt: skip
        return ready

    async def _write(
        self, session: AsyncSession, changes: list[_Change], unsent: list[int]
    ) -> None:
        await outbox.update_outbox_rows(
            session=session,
            changes=[(change.outbox_id, change.values) for change in changes],
            owner=self.owner,
        )
        await outbox.release_unsent(session=session, outbox_ids=unsent, owner=self.owner)
        for change in changes:
            if change.unreachable:
                channel, recipient = change.unreachable
                reason = change.values.get("last_error")
                await identities.mark_unreachable(
                    session=session, channel=channel, external_id=recipient, now=self.clock(),
                    reason=reason if isinstance(reason, str) else None,
                )  # fmt: skip

    def can_take(self, channel: Channel, recipient: str) -> bool:
        """Whether the engine may write a reply already claimed and hand it over after commit
        (the engine also checks that nothing waits in the table for this recipient)."""
        return self._live and (channel, recipient) not in self._held_until

    def take(self, rows: list[QueuedMessage]) -> None:
        """Committed rows the engine wrote claimed: to their recipient's worker at once."""
        for row in rows:
            self._dispatch(row, handed=True)

    def _dispatch(self, row: QueuedMessage, *, handed: bool = False) -> None:
        if self._stopping.is_set():  # claimed by a cycle that ran as stop() came
            self._release([row])
            return
        key = (Channel(row.channel), row.recipient)  # storage keeps the channel as a string
        held_until = self._held_until.get(key)
        if held_until is not None:
            # A hand-off never passes a hold, even one that has run out: the held rows wait in
            # the table and go first, claimed in order, which is what lifts the hold.
            if handed or held_until > self.clock():
                self._release([row])
                return
            del self._held_until[key]
        self._in_hand.add(row.id)
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
        # This worker's own context: the channel's rate limiter serves replies first.
        send_priority.set(outbox.priority_of(row.purpose))
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
        self._in_hand.discard(row.id)
        values |= {"claimed_by": None, "lease_expires_at": None}  # the claim is over
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
            self._in_hand.difference_update(row.id for row in rows)
            self._unsent += [row.id for row in rows]
            self._changed.set()
