"""OutboxSender against the real database with a scripted channel: what is sent, in which order,
what becomes of each row on every kind of failure, and how many statements the outcomes cost.

The sender takes its time from `clock`: the tests move a fake clock instead of sleeping, and
enqueue every row as due at the fake clock's time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import (
    Capabilities,
    Channel,
    PermanentSendError,
    RecipientUnreachable,
    TransientSendError,
)
from bot.engine.events import Outgoing, OutText, outgoing_to_payload
from scheduler.outbox import MAX_ATTEMPTS, OutboxSender
from storage import identities, outbox
from storage.db import transaction
from storage.models import ChannelIdentity, Contact, OutboxMessage, OutboxStatus, Role
from storage.types import utcnow
from tests.support.fake_channel import BUTTONS

X = "1001"
Y = "2002"

_keys = itertools.count(1)


class Clock:
    """The sender's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class ScriptedChannel:
    """A channel adapter that records every send and fails the sends it is told to fail."""

    name = Channel.telegram

    def __init__(self, capabilities: Capabilities = BUTTONS) -> None:
        self.capabilities = capabilities
        self.tried: list[tuple[str, str]] = []  # every call of send, in call order
        self.sent: list[tuple[str, str]] = []  # the calls that succeeded
        self.last_inbound: list[datetime | None] = []
        self.raised: list[tuple[str, str]] = []  # the calls that raised
        self._failures: dict[str, list[BaseException]] = defaultdict(list)
        self._gates: dict[str, asyncio.Event] = {}

    def fail(self, text: str, *errors: BaseException) -> None:
        """The next sends of `text` raise these, one per send."""
        self._failures[text].extend(errors)

    def gate(self, text: str) -> asyncio.Event:
        """Sends of `text` block until the returned event is set."""
        self._gates[text] = asyncio.Event()
        return self._gates[text]

    async def send(
        self, recipient: str, message: Outgoing, *, last_inbound_at: datetime | None = None
    ) -> str | None:
        assert isinstance(message, OutText)
        text = message.text
        self.tried.append((recipient, text))
        self.last_inbound.append(last_inbound_at)
        if text in self._gates:
            await self._gates[text].wait()
        if self._failures[text]:
            self.raised.append((recipient, text))
            raise self._failures[text].pop(0)
        self.sent.append((recipient, text))
        return f"provider-{len(self.sent)}"

    def tried_to(self, recipient: str) -> list[str]:
        return [text for to, text in self.tried if to == recipient]

    def sent_to(self, recipient: str) -> list[str]:
        return [text for to, text in self.sent if to == recipient]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def channel() -> ScriptedChannel:
    return ScriptedChannel()


@pytest.fixture
def sender(sessions, channel, clock) -> OutboxSender:
    return OutboxSender(sessions=sessions, channels={Channel.telegram: channel}, clock=clock)


async def enqueue(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, recipient: str, *texts: str
) -> None:
    """One committed row per text, due now (by the fake clock), in the order given."""
    async with transaction(sessions) as session:
        for text in texts:
            outbox.enqueue(
                session=session,
                idempotency_key=f"test:{next(_keys)}",
                channel=Channel.telegram,
                recipient=recipient,
                payload=outgoing_to_payload(OutText(text=text)),
                not_before=clock.now,
            )
            await session.flush()  # ids in the order given


async def rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, OutboxMessage]:
    """Every outbox row, by its text."""
    async with sessions() as session:
        found = (await session.exec(select(OutboxMessage))).all()
    return {row.payload["text"]: row for row in found}


async def count(sessions: async_sessionmaker[AsyncSession], *statuses: OutboxStatus) -> int:
    async with sessions() as session:
        return await outbox.count_outbox(session=session, statuses=statuses)


async def add_identity(
    sessions: async_sessionmaker[AsyncSession],
    external_id: str,
    *,
    last_inbound_at: datetime | None = None,
) -> None:
    async with transaction(sessions) as session:
        contact = Contact(name="Siti Rahma", phone="+6281200000001", role=Role.focal_point)
        session.add(contact)
        await session.flush()
        session.add(
            ChannelIdentity(
                contact_id=contact.id or 0,
                channel=Channel.telegram,
                external_id=external_id,
                last_inbound_at=last_inbound_at,
            )
        )


async def eventually(check: Callable[[], bool | Awaitable[bool]], within: float = 60.0) -> None:
    """Poll a condition (never a timing assertion: `within` only bounds a hang, and is generous
    because two test workers share two cores with the database)."""
    async with asyncio.timeout(within):
        while True:
            done = check()
            if await done if inspect.isawaitable(done) else done:
                return
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(sender: OutboxSender) -> AsyncIterator[asyncio.Task[None]]:
    """sender.run() in a task, cancelled (as at shutdown) when the block ends."""
    task = asyncio.create_task(sender.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements run on `engine` inside the block (an executemany counts once), and
    "COMMIT" for every transaction committed."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    def commit(_conn: Any) -> None:
        seen.append("COMMIT")

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    event.listen(engine.sync_engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "commit", commit)


# --------------------------------------------------------------------------- sending


async def test_due_rows_are_sent_in_id_order_per_recipient_and_marked_sent(
    sessions, channel, clock, sender
) -> None:
    await enqueue(sessions, clock, X, "x1")
    await enqueue(sessions, clock, Y, "y1")
    await enqueue(sessions, clock, X, "x2", "x3")
    await enqueue(sessions, clock, Y, "y2")

    assert await sender.drain() == 5

    assert channel.sent_to(X) == ["x1", "x2", "x3"]
    assert channel.sent_to(Y) == ["y1", "y2"]
    found = await rows(sessions)
    assert {row.status for row in found.values()} == {OutboxStatus.sent}
    assert {row.provider_message_id for row in found.values()} == {
        f"provider-{n}" for n in range(1, 6)
    }
    assert all(row.sent_at == clock.now for row in found.values())
    assert all(row.attempts == 1 and row.last_error is None for row in found.values())


async def test_rows_not_yet_due_are_left_for_later(sessions, channel, clock, sender) -> None:
    clock.advance(60)
    await enqueue(sessions, clock, X, "in a minute")
    clock.advance(-60)

    assert await sender.drain() == 0
    assert channel.tried == []

    clock.advance(60)
    await sender.drain()
    assert channel.sent_to(X) == ["in a minute"]


async def test_drain_all_sends_more_than_one_batch(sessions, channel, clock) -> None:
    sender = OutboxSender(
        sessions=sessions, channels={Channel.telegram: channel}, clock=clock, batch_size=2
    )
    await enqueue(sessions, clock, X, "1", "2", "3", "4", "5")

    await sender.drain_all()

    assert channel.sent_to(X) == ["1", "2", "3", "4", "5"]
    assert await count(sessions, OutboxStatus.sent) == 5


# --------------------------------------------------------------------------- order under retries


async def test_a_transient_failure_holds_the_recipients_later_messages_until_the_retry(
    sessions, channel, clock, sender
) -> None:
    await enqueue(sessions, clock, X, "A", "B", "C")
    channel.fail("A", TransientSendError("flood", retry_after=30))

    await sender.drain()

    assert channel.tried_to(X) == ["A"]  # B and C were claimed but never tried
    found = await rows(sessions)
    assert found["A"].status is OutboxStatus.pending
    assert found["A"].next_attempt_at == clock.now + timedelta(seconds=30)
    assert found["A"].last_error == "flood"
    assert found["A"].attempts == 1
    for text in ("B", "C"):
        # Released unsent: pending again, and the claim's attempt not counted.
        assert found[text].status is OutboxStatus.pending
        assert found[text].attempts == 0

    clock.advance(29)
    await sender.drain()
    assert channel.tried_to(X) == ["A"]  # not before A's retry time, B and C neither

    clock.advance(2)
    await sender.drain()
    assert channel.tried_to(X) == ["A", "A", "B", "C"]
    assert channel.sent_to(X) == ["A", "B", "C"]
    found = await rows(sessions)
    assert {text: row.attempts for text, row in found.items()} == {"A": 2, "B": 1, "C": 1}
    assert {row.status for row in found.values()} == {OutboxStatus.sent}


async def test_a_message_written_while_its_recipient_is_held_waits_too(
    sessions, channel, clock, sender
) -> None:
    await enqueue(sessions, clock, X, "A")
    channel.fail("A", TransientSendError("flood", retry_after=30))
    await sender.drain()

    clock.advance(10)
    await enqueue(sessions, clock, X, "D")  # due now, but A (earlier) waits for its retry
    await sender.drain()
    assert channel.tried_to(X) == ["A"]
    assert (await rows(sessions))["D"].status is OutboxStatus.pending

    clock.advance(21)
    await sender.drain()
    assert channel.sent_to(X) == ["A", "D"]


async def test_a_message_claimed_while_an_earlier_one_just_failed_is_held_back(
    sessions, channel, clock, sender, monkeypatch
) -> None:
    """The race the in-memory hold is for: A's failure is noted while a cycle is already in its
    transaction, so the database still shows A `sending` and lets B be claimed. B must not
    overtake A."""
    gate = channel.gate("A")
    channel.fail("A", TransientSendError("flood", retry_after=30))
    claim = outbox.claim_due_outbox
    armed = False
    claimed_after_the_failure: list[str] = []

    async def claim_after_a_failed(**kwargs: Any) -> list[outbox.QueuedMessage]:
        nonlocal armed
        if not armed:
            return await claim(**kwargs)
        armed = False
        gate.set()  # A fails now, after this cycle took the outcomes it will write
        await eventually(lambda: channel.raised == [(X, "A")])
        claimed = await claim(**kwargs)
        claimed_after_the_failure.extend(row.payload["text"] for row in claimed)
        return claimed

    monkeypatch.setattr(outbox, "claim_due_outbox", claim_after_a_failed)

    async def a_waits_for_its_retry() -> bool:
        # Written by the cycle after the one that claimed B (with B's release, if released).
        return (await rows(sessions))["A"].status is OutboxStatus.pending

    async with running(sender):
        await enqueue(sessions, clock, X, "A")
        sender.wakeup.set()
        await eventually(lambda: channel.tried == [(X, "A")])
        await enqueue(sessions, clock, X, "B")
        armed = True
        sender.wakeup.set()
        await eventually(a_waits_for_its_retry)
        assert claimed_after_the_failure == ["B"]  # the database did not hold B back...
        assert channel.tried_to(X) == ["A"]  # ...the sender did
        b = (await rows(sessions))["B"]
        assert (b.status, b.attempts) == (OutboxStatus.pending, 0)

    clock.advance(31)
    await sender.drain()
    assert channel.sent_to(X) == ["A", "B"]


async def test_another_recipient_is_not_held_by_ones_failure(
    sessions, channel, clock, sender
) -> None:
    await enqueue(sessions, clock, X, "A", "B")
    await enqueue(sessions, clock, Y, "for Y")
    channel.fail("A", TransientSendError("flood", retry_after=30))

    await sender.drain()

    assert channel.sent_to(Y) == ["for Y"]
    assert (await rows(sessions))["for Y"].status is OutboxStatus.sent
    assert channel.sent_to(X) == []


async def test_a_transient_error_without_retry_after_backs_off(
    sessions, channel, clock, sender
) -> None:
    await enqueue(sessions, clock, X, "A")
    channel.fail("A", TransientSendError("timeout"), TransientSendError("timeout"))

    await sender.drain()
    assert (await rows(sessions))["A"].next_attempt_at == clock.now + timedelta(seconds=1)

    clock.advance(1)
    await sender.drain()
    assert (await rows(sessions))["A"].next_attempt_at == clock.now + timedelta(seconds=2)

    clock.advance(2)
    await sender.drain()
    assert channel.sent_to(X) == ["A"]
    assert (await rows(sessions))["A"].attempts == 3


# --------------------------------------------------------------------------- failures


async def test_a_permanent_error_fails_the_row_and_the_next_message_still_goes(
    sessions, channel, clock, sender
) -> None:
    await enqueue(sessions, clock, X, "A", "B")
    channel.fail("A", PermanentSendError("Bad Request: chat not found"))

    await sender.drain()

    found = await rows(sessions)
    assert found["A"].status is OutboxStatus.failed
    assert found["A"].last_error == "Bad Request: chat not found"
    assert found["B"].status is OutboxStatus.sent
    assert channel.sent_to(X) == ["B"]

    clock.advance(3600)
    await sender.drain()
    assert channel.tried_to(X) == ["A", "B"]  # nothing retried


async def test_an_unreachable_recipient_fails_and_their_identity_is_marked(
    sessions, channel, clock, sender
) -> None:
    await add_identity(sessions, X)
    await enqueue(sessions, clock, X, "A")
    channel.fail("A", RecipientUnreachable("Forbidden: bot was blocked by the user"))

    await sender.drain()

    found = await rows(sessions)
    assert found["A"].status is OutboxStatus.failed
    assert found["A"].last_error == "Forbidden: bot was blocked by the user"
    async with sessions() as session:
        identity, _contact = await identities.find_identity(
            session=session, channel=Channel.telegram, external_id=X
        ) or (None, None)
    assert identity is not None
    assert identity.unreachable_since == clock.now


async def test_an_adapter_bug_is_retried_later_and_the_sender_survives(
    sessions, channel, clock, sender
) -> None:
    await enqueue(sessions, clock, X, "A")
    await enqueue(sessions, clock, Y, "for Y")
    channel.fail("A", RuntimeError("adapter bug"))

    await sender.drain()

    found = await rows(sessions)
    assert found["A"].status is OutboxStatus.pending
    assert found["A"].next_attempt_at > clock.now
    assert "adapter bug" in (found["A"].last_error or "")
    assert found["for Y"].status is OutboxStatus.sent

    clock.advance(60)
    await sender.drain()
    assert channel.sent_to(X) == ["A"]
    assert (await rows(sessions))["A"].status is OutboxStatus.sent


async def test_gives_up_after_max_attempts_and_then_sends_what_waited(
    sessions, channel, clock, sender
) -> None:
    await enqueue(sessions, clock, X, "A", "B")
    channel.fail("A", *(TransientSendError("timeout") for _ in range(MAX_ATTEMPTS)))

    for _ in range(MAX_ATTEMPTS):
        await sender.drain()
        clock.advance(301)  # past the longest backoff

    assert channel.tried_to(X) == ["A"] * MAX_ATTEMPTS + ["B"]
    found = await rows(sessions)
    assert found["A"].status is OutboxStatus.failed
    assert found["A"].attempts == MAX_ATTEMPTS
    assert (found["A"].last_error or "").startswith("gave up")
    assert found["B"].status is OutboxStatus.sent
    assert found["B"].attempts == 1  # held behind A seven times, never counted

    await sender.drain()
    assert len(channel.tried) == MAX_ATTEMPTS + 1


async def test_the_inbound_window_is_looked_up_only_for_channels_that_need_it(
    sessions, clock
) -> None:
    last_wrote = clock.now - timedelta(hours=2)
    await add_identity(sessions, X, last_inbound_at=last_wrote)
    await enqueue(sessions, clock, X, "A")
    await enqueue(sessions, clock, Y, "B")  # no identity: never wrote
    windowed = ScriptedChannel(replace(BUTTONS, needs_inbound_window=True))
    sender = OutboxSender(sessions=sessions, channels={Channel.telegram: windowed}, clock=clock)

    await sender.drain()

    assert dict(zip(windowed.tried, windowed.last_inbound, strict=True)) == {
        (X, "A"): last_wrote,
        (Y, "B"): None,
    }


# --------------------------------------------------------------------------- crash and restart


async def test_recover_sends_again_rows_a_dead_process_left_sending(
    sessions, channel, clock, sender
) -> None:
    await enqueue(sessions, clock, X, "A", "B")
    async with transaction(sessions) as session:  # claimed by a process that then died
        await outbox.claim_due_outbox(
            session=session, channel=Channel.telegram, now=clock.now, limit=10,
            owner="dead-process", until=clock.now + timedelta(seconds=60),
        )  # fmt: skip

    assert await sender.drain() == 0  # rows `sending` are not claimed again...
    assert await sender.recover() == 0  # ...nor taken back while their lease runs...
    clock.advance(60)
    assert await sender.recover() == 2  # ...but once it has expired

    await sender.drain()
    assert channel.sent_to(X) == ["A", "B"]
    assert await count(sessions, OutboxStatus.sent) == 2


# --------------------------------------------------------------------------- batching


async def test_outcomes_of_one_drain_are_written_in_a_bounded_number_of_updates(
    engine, sessions, channel, clock, sender
) -> None:
    recipients = [str(3000 + n) for n in range(20)]
    for recipient in recipients:
        await enqueue(sessions, clock, recipient, f"to {recipient}")

    with statements(engine) as seen:
        await sender.drain()

    assert await count(sessions, OutboxStatus.sent) == 20
    updates = [s for s in seen if s.startswith("UPDATE")]
    outcome_updates = [s for s in updates if "sent_at" in s]
    # One executemany for the 20 outcomes (they change the same columns), one for the claim.
    assert len(outcome_updates) == 1, updates
    assert len(updates) <= 2, updates
    assert seen.count("COMMIT") <= 2  # the claim's transaction and the outcomes'


async def test_outcomes_of_different_kinds_are_one_update_per_kind(
    engine, sessions, channel, clock, sender
) -> None:
    for n in range(10):
        await enqueue(sessions, clock, f"ok{n}", f"ok {n}")
        await enqueue(sessions, clock, f"bad{n}", f"bad {n}")
        channel.fail(f"bad {n}", PermanentSendError("Bad Request"))

    with statements(engine) as seen:
        await sender.drain()

    assert await count(sessions, OutboxStatus.sent) == 10
    assert await count(sessions, OutboxStatus.failed) == 10
    updates = [s for s in seen if s.startswith("UPDATE")]
    assert len(updates) <= 3, updates  # the claim, the sent ones, the failed ones


# --------------------------------------------------------------------------- run()


async def test_run_sends_a_row_enqueued_after_it_started_when_woken(
    sessions, channel, clock, sender
) -> None:
    async def sent() -> bool:
        return await count(sessions, OutboxStatus.sent) == 1

    async with running(sender) as task:
        await enqueue(sessions, clock, X, "A")
        sender.wakeup.set()
        await eventually(sent)
        assert not task.done()

    assert task.cancelled()
    assert channel.sent == [(X, "A")]
    assert (await rows(sessions))["A"].provider_message_id == "provider-1"


async def test_a_send_cut_short_by_shutdown_stays_sending_and_goes_after_restart(
    sessions, channel, clock, sender
) -> None:
    gate = channel.gate("A")

    async with running(sender):
        await enqueue(sessions, clock, X, "A")
        sender.wakeup.set()
        # The send is in flight, blocked on the gate, when the sender is shut down.
        await eventually(lambda: channel.tried == [(X, "A")])

    assert (await rows(sessions))["A"].status is OutboxStatus.sending

    gate.set()
    restarted = OutboxSender(sessions=sessions, channels={Channel.telegram: channel}, clock=clock)
    assert await restarted.recover() == 0  # the stopped sender's lease still runs
    clock.advance(outbox.CLAIM_LEASE.total_seconds())
    assert await restarted.recover() == 1
    await restarted.drain()
    assert channel.sent == [(X, "A")]
    assert (await rows(sessions))["A"].status is OutboxStatus.sent


async def test_a_message_scheduled_for_later_holds_nothing_back(
    sessions, channel, clock, sender
) -> None:
    """Only a message waiting for a retry keeps the order; one scheduled for tomorrow (never
    tried) must not silence the recipient until then."""
    clock.advance(24 * 3600)
    await enqueue(sessions, clock, X, "tomorrow")
    clock.advance(-24 * 3600)
    await enqueue(sessions, clock, X, "now")

    await sender.drain()
    assert channel.sent_to(X) == ["now"]


async def test_a_failing_cycle_keeps_its_outcomes_and_the_sender_goes_on(
    sessions, channel, clock, sender, monkeypatch
) -> None:
    """A database error in one cycle must not stop the sender (and with it the bot), nor lose
    what it was about to record."""
    real = outbox.update_outbox_rows
    failures = iter([RuntimeError("database is locked")])

    async def flaky(**kwargs: Any) -> None:
        error = next(failures, None)
        if error is not None and kwargs["changes"]:
            raise error
        await real(**kwargs)

    monkeypatch.setattr(outbox, "update_outbox_rows", flaky)
    monkeypatch.setattr("scheduler.outbox.POLL_SECONDS", 0.05)

    async def recorded() -> bool:
        return await count(sessions, OutboxStatus.sent) == 1

    async with running(sender) as task:
        await enqueue(sessions, clock, X, "A")
        sender.wakeup.set()
        await eventually(recorded)
        assert not task.done()
    assert channel.sent == [(X, "A")]  # sent once, its outcome written on the next cycle


# --------------------------------------------------------------------------- hand-off


async def hand_over(
    sessions: async_sessionmaker[AsyncSession], sender: OutboxSender, clock: Clock, text: str
) -> None:
    """What the engine does for a reply when `can_take` allowed it: write it claimed, commit,
    then hand it over."""
    row = outbox.outbox_row(
        idempotency_key=f"test:{next(_keys)}",
        channel=Channel.telegram,
        recipient=X,
        payload=outgoing_to_payload(OutText(text=text)),
        not_before=clock.now,
        claimed_by=sender.owner,
    )
    async with transaction(sessions) as session:
        written = await outbox.insert_outbox(session=session, rows=[row])
    sender.take(written)


async def waiting(sessions: async_sessionmaker[AsyncSession], clock: Clock) -> bool:
    async with sessions() as session:
        return await outbox.has_waiting_outbox(
            session=session, channel=Channel.telegram, recipient=X, now=clock.now
        )


async def test_the_sender_takes_hand_offs_only_while_running(sessions, sender) -> None:
    assert not sender.can_take(Channel.telegram, X)  # nobody would send them
    async with running(sender):
        await eventually(lambda: sender.can_take(Channel.telegram, X))
    assert not sender.can_take(Channel.telegram, X)


async def test_handed_off_replies_go_out_in_order_and_are_recorded_sent(
    sessions, channel, clock, sender
) -> None:
    async def both_sent() -> bool:
        return await count(sessions, OutboxStatus.sent) == 2

    async with running(sender):
        await eventually(lambda: sender.can_take(Channel.telegram, X))
        await hand_over(sessions, sender, clock, "A")
        await hand_over(sessions, sender, clock, "B")
        await eventually(lambda: channel.sent_to(X) == ["A", "B"])
        # Outcomes are written by the sender's next cycle: wait for it before shutting down,
        # which would leave them unwritten (the rows `sending`, sent again after a restart).
        await eventually(both_sent)
    assert {row.attempts for row in (await rows(sessions)).values()} == {1}


async def test_a_hand_off_never_passes_a_held_recipient(sessions, channel, clock, sender) -> None:
    await enqueue(sessions, clock, X, "A")
    channel.fail("A", TransientSendError("flood", retry_after=30))
    await sender.drain()  # A now waits for its retry: X is held
    sender._live = True  # as while run() runs, without its background cycles
    assert not sender.can_take(Channel.telegram, X)
    assert await waiting(sessions, clock)

    # Handed over anyway (can_take said yes just before A failed): it goes back to the table.
    await hand_over(sessions, sender, clock, "B")
    await sender.drain()
    assert channel.tried_to(X) == ["A"]
    assert (await rows(sessions))["B"].status is OutboxStatus.pending

    clock.advance(31)
    await sender.drain()
    assert channel.sent_to(X) == ["A", "B"]


async def test_what_counts_as_waiting_for_a_recipient(sessions, channel, clock, sender) -> None:
    assert not await waiting(sessions, clock)
    clock.advance(3600)
    await enqueue(sessions, clock, X, "scheduled")  # for later, never tried: not waiting
    clock.advance(-3600)
    assert not await waiting(sessions, clock)
    await enqueue(sessions, clock, X, "due")
    assert await waiting(sessions, clock)
    await sender.drain()  # "due" sent
    assert not await waiting(sessions, clock)


async def test_insert_outbox_returns_each_row_with_its_own_id(sessions, clock) -> None:
    """One reply is a plain INSERT, several are one INSERT of many rows: either way each
    returned message carries the id of the row written from it."""
    texts = [["solo"], ["first", "second", "third"]]
    returned: dict[str, int] = {}
    for batch in texts:
        new_rows = [
            outbox.outbox_row(
                idempotency_key=f"test:{next(_keys)}",
                channel=Channel.telegram,
                recipient=X,
                payload=outgoing_to_payload(OutText(text=text)),
                not_before=clock.now,
                claimed_by="this-process",
            )
            for text in batch
        ]
        async with transaction(sessions) as session:
            written = await outbox.insert_outbox(session=session, rows=new_rows)
        assert [message.payload["text"] for message in written] == batch
        assert {message.attempts for message in written} == {1}
        returned.update({message.payload["text"]: message.id for message in written})
    stored = await rows(sessions)
    assert returned == {text: row.id for text, row in stored.items()}
    assert {(row.status, row.attempts) for row in stored.values()} == {(OutboxStatus.sending, 1)}
