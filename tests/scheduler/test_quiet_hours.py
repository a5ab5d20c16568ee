"""Quiet hours at send time (issue #14 item 2): a reminder, escalation or broadcast that reaches
the outbox sender in its recipient's quiet hours (a backlog, an outage, a restart) waits until
they end and then goes once; one that would only go after its deadline is dropped with its
reason; a reply always goes at once. Real database, a scripted channel, an injected clock, in
WIB, WITA and WIT."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Channel
from bot.engine.events import OutText, outgoing_to_payload
from scheduler.outbox import OutboxSender, quiet_hold
from scheduler.reminders import ReminderTicker
from scheduler.reminders.schedule import reminder_slots
from storage import outbox
from storage.db import transaction
from storage.models import Contact, OutboxMessage, OutboxStatus, Region, RegionKind, Role
from storage.outbox import QueuedMessage
from storage.reminder_policy import DEFAULT_POLICY, QuietHours, ReminderPolicy
from tests.scheduler.reminder_world import DUE, OPENS, reminder_world
from tests.scheduler.test_outbox import ScriptedChannel

ZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")
TO = "1001"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def local(day: int, hour: int, minute: int = 0, *, timezone: str) -> datetime:
    """An instant given in `timezone`, in August 2025, as UTC."""
    return datetime(2025, 8, day, hour, minute, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


async def write(
    sessions: async_sessionmaker[AsyncSession],
    text: str,
    *,
    purpose: str,
    due: datetime,
    zone: str | None = None,
    contact_id: int | None = None,
    expires_at: datetime | None = None,
    quiet_hours: str | None = None,
) -> None:
    async with transaction(sessions) as session:
        row = outbox.outbox_row(
            idempotency_key=f"test:{text}",
            channel=Channel.telegram,
            recipient=TO,
            contact_id=contact_id,
            purpose=purpose,
            payload=outgoing_to_payload(OutText(text=text)),
            not_before=due,
            local_zone=zone,
            quiet_hours=quiet_hours,
            expires_at=expires_at,
        )
        await outbox.insert_outbox(session=session, rows=[row])


async def row_of(sessions: async_sessionmaker[AsyncSession], text: str) -> OutboxMessage:
    async with sessions() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    [found] = [row for row in rows if row.payload.get("text") == text]
    return found


def sender_at(sessions, channel: ScriptedChannel, clock: Clock) -> OutboxSender:
    return OutboxSender(sessions=sessions, channels={Channel.telegram: channel}, clock=clock)


@pytest.mark.parametrize("zone", ZONES)
async def test_a_reminder_due_at_2059_local_goes(sessions, zone) -> None:
    channel, clock = ScriptedChannel(), Clock(local(25, 20, 59, timezone=zone))
    await write(sessions, "d-3", purpose="reminder", due=clock.now, zone=zone)
    await sender_at(sessions, channel, clock).drain_all()
    assert channel.sent_to(TO) == ["d-3"]


@pytest.mark.parametrize("zone", ZONES)
async def test_a_reminder_reaching_the_sender_at_2130_waits_until_0700_and_goes_once(
    sessions, zone
) -> None:
    channel, clock = ScriptedChannel(), Clock(local(25, 8, timezone=zone))
    # Written at 08:00, but the outbox was backed up (or the process down) until 21:30.
    await write(sessions, "d-3", purpose="reminder", due=clock.now, zone=zone)
    clock.now = local(25, 21, 30, timezone=zone)
    sender = sender_at(sessions, channel, clock)
    await sender.drain_all()
    assert channel.tried == []
    held = await row_of(sessions, "d-3")
    assert held.status is OutboxStatus.pending and held.attempts == 0
    assert held.next_attempt_at == local(26, 7, timezone=zone)
    assert held.next_attempt_at.astimezone(ZoneInfo(zone)).time() == time(7)

    clock.now = local(26, 6, 59, timezone=zone)
    await sender.drain_all()
    assert channel.tried == []
    clock.now = local(26, 7, timezone=zone)
    await sender.drain_all()
    clock.now += timedelta(minutes=5)
    await sender.drain_all()
    assert channel.sent_to(TO) == ["d-3"]  # once
    assert (await row_of(sessions, "d-3")).status is OutboxStatus.sent


@pytest.mark.parametrize("zone", ZONES)
async def test_a_broadcast_waits_in_its_recipients_zone_from_their_region(sessions, zone) -> None:
    """A broadcast row names no zone: the sender reads the recipient's region's."""
    async with transaction(sessions) as session:
        region = Region(code="91", name="Papua", kind=RegionKind.provinsi, timezone=zone)
        session.add(region)
        await session.flush()
        contact = Contact(name="Yohana", role=Role.focal_point, region_id=region.id)
        session.add(contact)
        await session.flush()
        contact_id = contact.id
    channel, clock = ScriptedChannel(), Clock(local(25, 21, 30, timezone=zone))
    await write(sessions, "siaran", purpose="broadcast", due=clock.now, contact_id=contact_id)
    sender = sender_at(sessions, channel, clock)
    await sender.drain_all()
    assert channel.tried == []
    clock.now = local(26, 7, timezone=zone)
    await sender.drain_all()
    assert channel.sent_to(TO) == ["siaran"]


@pytest.mark.parametrize("zone", ZONES)
async def test_a_reply_at_2300_goes_at_once_past_a_held_reminder(sessions, zone) -> None:
    channel, clock = ScriptedChannel(), Clock(local(25, 23, timezone=zone))
    await write(sessions, "pengingat", purpose="reminder", due=clock.now, zone=zone)
    await write(sessions, "jawaban", purpose="reply", due=clock.now, zone=zone)
    sender = sender_at(sessions, channel, clock)
    await sender.drain_all()
    assert channel.sent_to(TO) == ["jawaban"]
    # A reply written later to the same person is not kept behind the held reminder either
    # (the engine hands a reply straight to the sender only when nothing waits before it).
    async with sessions() as session:
        assert not await outbox.has_waiting_outbox(
            session=session, channel=Channel.telegram, recipient=TO, now=clock.now
        )
    await write(sessions, "jawaban 2", purpose="reply", due=clock.now)
    await sender.drain_all()
    assert channel.sent_to(TO) == ["jawaban", "jawaban 2"]


@pytest.mark.parametrize("zone", ZONES)
async def test_a_reminder_held_past_its_deadline_is_dropped_with_the_reason(sessions, zone) -> None:
    """The d0 reminder reaches the sender at 21:30 on the due date: quiet hours end after the
    deadline (23.59), so it is not sent at all, rather than late."""
    deadline = local(28, 23, 59, timezone=zone) + timedelta(minutes=1)
    channel, clock = ScriptedChannel(), Clock(local(28, 21, 30, timezone=zone))
    await write(
        sessions, "d0", purpose="reminder", due=local(28, 8, timezone=zone), zone=zone,
        expires_at=deadline,
    )  # fmt: skip
    sender = sender_at(sessions, channel, clock)
    await sender.drain_all()
    clock.now = local(29, 7, timezone=zone)
    await sender.drain_all()
    assert channel.tried == []
    row = await row_of(sessions, "d0")
    assert row.status is OutboxStatus.failed and row.sent_at is None
    assert row.last_error is not None and row.last_error.startswith("not sent: quiet hours")


async def test_an_expired_row_is_dropped_even_outside_quiet_hours(sessions) -> None:
    zone = "Asia/Jakarta"
    channel, clock = ScriptedChannel(), Clock(local(26, 9, timezone=zone))
    await write(
        sessions, "d-3", purpose="escalation", due=local(25, 8, timezone=zone), zone=zone,
        expires_at=local(26, 8, timezone=zone),
    )  # fmt: skip
    await sender_at(sessions, channel, clock).drain_all()
    assert channel.tried == []
    row = await row_of(sessions, "d-3")
    assert row.status is OutboxStatus.failed
    assert row.last_error is not None and row.last_error.startswith("not sent: expired")


async def test_the_rows_own_quiet_hours_count(sessions) -> None:
    """A policy with quiet hours 22:00-06:00: at 21:30 the reminder goes."""
    zone = "Asia/Makassar"
    channel, clock = ScriptedChannel(), Clock(local(25, 21, 30, timezone=zone))
    await write(
        sessions, "d-3", purpose="reminder", due=clock.now, zone=zone, quiet_hours="22:00-06:00"
    )
    await sender_at(sessions, channel, clock).drain_all()
    assert channel.sent_to(TO) == ["d-3"]


@pytest.mark.parametrize("zone", ZONES)
async def test_a_reminder_written_at_eight_and_sent_after_an_outage_waits_for_the_morning(
    sessions, zone
) -> None:
    """End to end: the ticker writes d-3 at 08:00; the sender comes back at 22:00; the
    reminder goes the next morning at 07:00 (its slot lasts until d-1's 08:00)."""
    async with sessions() as session:
        await reminder_world(session, timezone=zone)
    clock = Clock(local(25, 8, timezone=zone))
    assert await ReminderTicker(sessions=sessions, clock=clock).tick() == 1
    channel = ScriptedChannel()
    sender = OutboxSender(sessions=sessions, channels={Channel.telegram: channel}, clock=clock)
    clock.now = local(25, 22, timezone=zone)
    await sender.drain_all()
    assert channel.tried == []
    clock.now = local(26, 7, timezone=zone)
    await sender.drain_all()
    assert [to for to, _ in channel.sent] == ["101"]
    [row] = await _reminder_rows(sessions)
    assert row.local_zone == zone and row.quiet_hours == "21:00-07:00"
    slots = reminder_slots(opens_on=OPENS, due_on=DUE, policy=DEFAULT_POLICY, timezone=zone)
    assert row.expires_at == next(slot.until for slot in slots if slot.offset == "d-3")


async def _reminder_rows(sessions) -> list[OutboxMessage]:
    async with sessions() as session:
        statement = select(OutboxMessage).where(OutboxMessage.purpose == "reminder")
        return list((await session.exec(statement)).all())


def test_quiet_hours_spanning_midnight_and_not() -> None:
    night = QuietHours.parse("21:00-07:00")
    assert night.covers(time(21)) and night.covers(time(6, 59)) and not night.covers(time(7))
    assert not night.covers(time(20, 59))
    early = QuietHours.parse("00:00-06:00")
    assert early.covers(time(0)) and not early.covers(time(23))
    assert QuietHours.parse(None) == QuietHours.parse("nonsense") == night


def test_quiet_hold_decides_without_a_database() -> None:
    zone = "Asia/Jayapura"
    row = QueuedMessage(id=1, channel="telegram", recipient=TO, payload={}, attempts=1,
                        purpose="reminder")  # fmt: skip
    assert quiet_hold(row, local(25, 20, 59, timezone=zone), zone) == (None, None)
    assert quiet_hold(row, local(25, 3, timezone=zone), zone) == (
        local(25, 7, timezone=zone),
        None,
    )


def test_a_policy_may_set_its_quiet_hours_but_not_send_in_them() -> None:
    policy = ReminderPolicy.model_validate({"quiet_from": "22:00", "quiet_until": "06:00"})
    assert policy.quiet_hours.spelt == "22:00-06:00"
    with pytest.raises(ValueError, match="jam tenang"):
        ReminderPolicy.model_validate({"quiet_from": "07:00", "quiet_until": "09:00"})
    with pytest.raises(ValueError, match="berbeda"):
        ReminderPolicy.model_validate({"quiet_from": "22:00", "quiet_until": "22:00"})


async def test_a_row_to_nobody_we_know_is_not_held(sessions) -> None:
    """Neither a zone nor a contact (an operator's test row, a benchmark): nobody's night."""
    channel, clock = ScriptedChannel(), Clock(local(25, 23, timezone="Asia/Jakarta"))
    await write(sessions, "uji", purpose="broadcast", due=clock.now)
    await sender_at(sessions, channel, clock).drain_all()
    assert channel.sent_to(TO) == ["uji"]
