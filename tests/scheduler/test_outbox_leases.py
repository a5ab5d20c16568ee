"""Several senders on one database: claims carry an owner and a lease, recovery takes back only
expired leases, the holder renews its own; claims and the rate limiter serve replies first;
a graceful stop hands back what it has not begun and writes what it has done.

Same scripted channel and fake clock as test_outbox.py: no sleeps."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.channels.pacing import PriorityPacer
from bot.engine.channel import Channel, send_priority
from bot.engine.events import OutText, outgoing_to_payload
from scheduler.outbox import OutboxSender
from storage import leases, outbox
from storage.db import transaction
from storage.models import OutboxMessage, OutboxStatus
from tests.scheduler.test_outbox import (
    Clock,
    ScriptedChannel,
    X,
    Y,
    count,
    enqueue,
    eventually,
    rows,
    running,
)

LEASE = outbox.CLAIM_LEASE.total_seconds()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def channel() -> ScriptedChannel:
    return ScriptedChannel()


@pytest.fixture
def sender(sessions, channel, clock) -> OutboxSender:
    return OutboxSender(sessions=sessions, channels={Channel.telegram: channel}, clock=clock)


def second_sender(sessions, channel, clock, **options) -> OutboxSender:
    return OutboxSender(
        sessions=sessions, channels={Channel.telegram: channel}, clock=clock, **options
    )


async def enqueue_for(sessions, clock: Clock, purpose: str, recipient: str, text: str) -> None:
    async with transaction(sessions) as session:
        outbox.enqueue(
            session=session,
            idempotency_key=f"{purpose}:{recipient}:{text}",
            channel=Channel.telegram,
            recipient=recipient,
            payload=outgoing_to_payload(OutText(text=text)),
            purpose=purpose,
            not_before=clock.now,
        )


# --------------------------------------------------------------------------- leases


async def test_a_second_processs_recovery_never_steals_a_live_senders_claims(
    sessions, channel, clock, sender
) -> None:
    gate = channel.gate("A")
    other_channel = ScriptedChannel()
    other = second_sender(sessions, other_channel, clock)
    async with running(sender):
        await enqueue(sessions, clock, X, "A", "B")
        sender.wakeup.set()
        await eventually(lambda: channel.tried == [(X, "A")])  # A in flight, B queued behind

        # The second process starts: its recovery and its claims leave the first's rows be.
        assert await other.recover() == 0
        assert await other.drain() == 0
        found = await rows(sessions)
        assert {row.claimed_by for row in found.values()} == {sender.owner}
        assert {row.status for row in found.values()} == {OutboxStatus.sending}

        gate.set()
        await eventually(lambda: channel.sent_to(X) == ["A", "B"])
        await eventually(lambda: count_sent(sessions, 2))
    assert other_channel.tried == []
    assert {row.claimed_by for row in (await rows(sessions)).values()} == {None}


async def count_sent(sessions, expected: int) -> bool:
    return await count(sessions, OutboxStatus.sent) == expected


async def test_the_holder_renews_its_leases_while_a_send_is_in_hand(
    sessions, channel, clock, sender
) -> None:
    gate = channel.gate("slow")
    other = second_sender(sessions, ScriptedChannel(), clock)
    async with running(sender):
        await enqueue(sessions, clock, X, "slow")
        sender.wakeup.set()
        await eventually(lambda: channel.tried == [(X, "slow")])
        first_lease = (await rows(sessions))["slow"].lease_expires_at
        assert first_lease == clock.now + outbox.CLAIM_LEASE

        for _ in range(4):  # 4 x LEASE/2: twice the lease, renewed on the way
            clock.advance(LEASE / 2)
            sender.wakeup.set()

            async def renewed() -> bool:
                row = (await rows(sessions))["slow"]
                return row.lease_expires_at == clock.now + outbox.CLAIM_LEASE

            await eventually(renewed)
            assert await other.recover() == 0
        gate.set()
        await eventually(lambda: count_sent(sessions, 1))
    assert channel.sent_to(X) == ["slow"]


async def test_a_dead_senders_claims_are_taken_back_once_their_lease_expires(
    sessions, channel, clock
) -> None:
    await enqueue(sessions, clock, X, "A")
    async with transaction(sessions) as session:
        await outbox.claim_due_outbox(
            session=session, channel=Channel.telegram, now=clock.now, limit=10,
            owner="dead", until=clock.now + outbox.CLAIM_LEASE,
        )  # fmt: skip
    survivor = second_sender(sessions, channel, clock)
    clock.advance(LEASE - 1)
    assert await survivor.recover() == 0
    clock.advance(1)
    assert await survivor.recover() == 1
    await survivor.drain()
    assert channel.sent_to(X) == ["A"]


async def test_an_outcome_is_not_written_over_a_row_another_sender_took_back(
    sessions, clock
) -> None:
    await enqueue(sessions, clock, X, "A")
    async with transaction(sessions) as session:
        [row] = await outbox.claim_due_outbox(
            session=session, channel=Channel.telegram, now=clock.now, limit=1,
            owner="first", until=clock.now,
        )  # fmt: skip
        await outbox.release_expired_claims(session=session, now=clock.now)
        await outbox.claim_due_outbox(
            session=session, channel=Channel.telegram, now=clock.now, limit=1,
            owner="second", until=clock.now + outbox.CLAIM_LEASE,
        )  # fmt: skip
        await outbox.update_outbox_rows(
            session=session, changes=[(row.id, {"status": OutboxStatus.failed})], owner="first"
        )
    assert (await rows(sessions))["A"].claimed_by == "second"
    assert (await rows(sessions))["A"].status is OutboxStatus.sending


async def test_a_named_lease_has_one_holder_until_it_expires(sessions, clock) -> None:
    minute = timedelta(minutes=1)

    async def take(owner: str) -> bool:
        async with transaction(sessions) as session:
            return await leases.take_lease(
                session=session, name="telegram-poll:123", owner=owner,
                now=clock.now, until=clock.now + minute,
            )  # fmt: skip

    assert await take("a")
    assert not await take("b")
    clock.advance(30)
    assert await take("a")  # renewed: a minute from now
    clock.advance(45)
    assert not await take("b")
    clock.advance(15)
    assert await take("b")  # expired: b takes over
    async with sessions() as session:
        assert (
            await leases.lease_holder(session=session, name="telegram-poll:123", now=clock.now)
            == "b"
        )
    async with transaction(sessions) as session:
        assert not await leases.release_lease(session=session, name="telegram-poll:123", owner="a")
        assert await leases.release_lease(session=session, name="telegram-poll:123", owner="b")
    assert await take("a")


# --------------------------------------------------------------------------- priorities


async def test_claims_go_replies_first_then_reminders_then_broadcasts(
    sessions, channel, clock, sender
) -> None:
    for n in range(3):
        await enqueue_for(sessions, clock, "broadcast", f"b{n}", "siaran")
    await enqueue_for(sessions, clock, "reminder", "r0", "pengingat")
    await enqueue_for(sessions, clock, "reply", "u0", "jawaban")

    await sender.drain()

    assert [text for _, text in channel.tried] == [
        "jawaban", "pengingat", "siaran", "siaran", "siaran",
    ]  # fmt: skip


async def test_a_reply_is_claimed_while_a_broadcast_fills_the_sender(
    sessions, channel, clock
) -> None:
    sender = second_sender(sessions, channel, clock, max_in_flight=2)
    gate = channel.gate("siaran")
    for n in range(5):
        await enqueue_for(sessions, clock, "broadcast", f"b{n}", "siaran")
    async with running(sender):
        await eventually(lambda: len(channel.tried) == 2)  # the room is full
        await enqueue_for(sessions, clock, "reply", X, "jawaban")
        sender.wakeup.set()
        await eventually(lambda: channel.sent_to(X) == ["jawaban"])
        assert len(channel.tried) == 3  # no third broadcast send claimed meanwhile
        gate.set()
        await eventually(lambda: count_sent(sessions, 6))


async def test_the_pacer_gives_the_next_slot_to_the_most_urgent_waiter() -> None:
    # The pacer's clock stands still until everyone queues: on a loaded machine a real
    # millisecond could pass before the first task runs, and it would find the slot free.
    frozen = True
    pacer = PriorityPacer(rate=1000, clock=lambda: 0.0 if frozen else time.monotonic())
    order: list[str] = []

    async def send(name: str, priority: int) -> None:
        send_priority.set(priority)
        async with pacer:
            order.append(name)

    await pacer.acquire()  # the current slot is taken: everyone below waits
    tasks = [asyncio.create_task(send(f"broadcast {n}", 2)) for n in range(3)]
    tasks.append(asyncio.create_task(send("reply", 0)))
    tasks.append(asyncio.create_task(send("reminder", 1)))
    await asyncio.sleep(0)  # each task runs up to its wait
    assert pacer.waiting == 5
    frozen = False
    await asyncio.gather(*tasks)
    assert order[:2] == ["reply", "reminder"]
    assert order[2:] == ["broadcast 0", "broadcast 1", "broadcast 2"]


# --------------------------------------------------------------------------- graceful stop


async def test_a_graceful_stop_hands_back_rows_not_begun_and_writes_what_it_sent(
    sessions, channel, clock, sender
) -> None:
    gate = channel.gate("A")
    await enqueue(sessions, clock, X, "A", "B", "C")
    await enqueue(sessions, clock, Y, "D")
    task = asyncio.create_task(sender.run())
    await eventually(lambda: channel.sent_to(Y) == ["D"] and (X, "A") in channel.tried)

    sender.stop()
    gate.set()  # A, in hand when the stop came, finishes within the grace
    await asyncio.wait_for(task, timeout=60)

    found = await rows(sessions)
    assert found["A"].status is OutboxStatus.sent
    assert found["D"].status is OutboxStatus.sent  # its outcome was only in memory
    for text in ("B", "C"):  # never begun: pending at once, the attempt not counted
        assert (found[text].status, found[text].attempts, found[text].claimed_by) == (
            OutboxStatus.pending, 0, None,
        )  # fmt: skip
    assert channel.tried_to(X) == ["A"]

    # The next process sends B and C (no lease to wait for), A and D not again.
    restarted = second_sender(sessions, channel, clock)
    await restarted.drain()
    assert channel.sent_to(X) == ["A", "B", "C"]
    assert channel.sent_to(Y) == ["D"]


async def test_sends_still_in_hand_after_the_grace_are_left_to_their_lease(
    sessions, channel, clock
) -> None:
    sender = second_sender(sessions, channel, clock, stop_grace=0.01)
    channel.gate("stuck")  # never opens
    await enqueue(sessions, clock, X, "stuck")
    task = asyncio.create_task(sender.run())
    await eventually(lambda: channel.tried == [(X, "stuck")])
    sender.stop()
    await asyncio.wait_for(task, timeout=60)
    async with sessions() as session:
        row = (await session.exec(select(OutboxMessage))).one()
    assert (row.status, row.claimed_by) == (OutboxStatus.sending, sender.owner)


async def test_the_pacer_makes_up_for_a_late_wakeup_only_within_its_burst() -> None:
    """At 10/s with a burst of 2: two sends at once, then one per 0.1 s; after a stall (the
    clock jumps a second, as when the event loop was busy) again at most two at once, never
    the ten the stall "owed". On a frozen clock nothing else is ever let through."""
    now = [100.0]
    pacer = PriorityPacer(rate=10, burst=2, clock=lambda: now[0])

    async def let_through(attempts: int) -> int:
        tasks = [asyncio.create_task(pacer.acquire()) for _ in range(attempts)]
        await asyncio.sleep(0)
        through = sum(task.done() for task in tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return through

    assert await let_through(5) == 2
    now[0] += 1.0
    assert await let_through(5) == 2
    now[0] += 0.1  # one interval: one more
    assert await let_through(5) == 1
