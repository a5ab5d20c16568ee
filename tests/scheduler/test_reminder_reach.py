"""Reminders reach focal points who never wrote to the bot (issue #14 item 1): with WhatsApp
configured, the reminder goes to their imported number (WhatsApp opens the conversation with
the approved template); no channel identity is created for it, so nobody gains an identity by
it; a number WhatsApp refuses (131026) is remembered and not tried again; without WhatsApp they
are counted as unreachable in `laporham reminders plan`."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, delete, func, select

from bot.engine.channel import Channel, RecipientUnreachable
from bot.engine.delivery import DeliveryUpdate, record_statuses
from scheduler.outbox import OutboxSender
from scheduler.reminders import ReminderTicker, plan_at
from scheduler.reminders.operator import history_lines, plan_lines
from storage import identities
from storage.models import ChannelIdentity, OutboxMessage, OutboxStatus, UnreachableNumber
from storage.reminders import Reach, reminder_history, unreachable_numbers
from tests.scheduler.reminder_world import reminder_world
from tests.scheduler.test_outbox import ScriptedChannel
from tests.support.factories import FOCAL_PHONE

WA_ID = FOCAL_PHONE.lstrip("+")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 8, day, hour, minute, tzinfo=ZoneInfo("Asia/Jakarta")).astimezone(UTC)


async def never_wrote(sessions) -> None:
    """The world of the reminder tests, where the focal point has no account (imported only)."""
    async with sessions() as session:
        rw = await reminder_world(session)
        await session.exec(
            delete(ChannelIdentity).where(
                col(ChannelIdentity.contact_id) == rw.world.focal_point.id
            )
        )
        await session.commit()


async def reminders(sessions) -> list[OutboxMessage]:
    async with sessions() as session:
        statement = select(OutboxMessage).where(OutboxMessage.purpose == "reminder")
        return list((await session.exec(statement.order_by(col(OutboxMessage.id)))).all())


async def identity_count(sessions) -> int:
    async with sessions() as session:
        return (await session.exec(select(func.count()).select_from(ChannelIdentity))).one()


class WhatsAppScripted(ScriptedChannel):
    name = Channel.whatsapp


async def test_a_contact_who_never_wrote_gets_the_reminder_at_their_imported_number(
    sessions,
) -> None:
    await never_wrote(sessions)
    before = await identity_count(sessions)
    ticker = ReminderTicker(sessions=sessions, clock=Clock(local(25, 8)), phone_channel="whatsapp")
    await ticker.tick()
    [row] = await reminders(sessions)
    assert (row.channel, row.recipient) == ("whatsapp", WA_ID)
    assert row.payload["template"] == "laporham_pengingat"
    # Writing to a number grants nobody an identity: the account is bound only when that
    # number itself writes (handlers/register.py).
    assert await identity_count(sessions) == before
    async with sessions() as session:
        assert await identities.find_identity(
            session=session, channel="whatsapp", external_id=WA_ID
        ) is None  # fmt: skip


async def test_without_whatsapp_they_are_counted_as_unreachable_in_the_plan(sessions) -> None:
    await never_wrote(sessions)
    assert await ReminderTicker(sessions=sessions, clock=Clock(local(25, 8))).tick() == 0
    plan = await plan_at(sessions, local(25, 8), with_unreachable=True)
    assert plan.due == []
    [message] = plan.unreachable
    assert message.recipient.reach is Reach.no_phone_channel
    lines = plan_lines(plan)
    assert "1 kontak tidak dapat dijangkau: belum pernah menulis ke bot, tanpa WhatsApp:" in lines
    assert "  Siti Rahma: WhatsApp belum dipasang" in lines
    assert not any(WA_ID in line for line in lines)  # no phone numbers on the screen


async def test_a_number_not_on_whatsapp_is_remembered_and_not_tried_every_day(sessions) -> None:
    await never_wrote(sessions)
    clock = Clock(local(25, 8))
    await ReminderTicker(sessions=sessions, clock=clock, phone_channel="whatsapp").tick()
    channel = WhatsAppScripted()
    [row] = await reminders(sessions)
    channel.fail(row.payload["text"], RecipientUnreachable("131026: Message undeliverable"))
    sender = OutboxSender(sessions=sessions, channels={Channel.whatsapp: channel}, clock=clock)
    await sender.drain_all()
    [row] = await reminders(sessions)
    assert row.status is OutboxStatus.failed
    async with sessions() as session:
        [number] = (await session.exec(select(UnreachableNumber))).all()
        assert (number.channel, number.recipient) == ("whatsapp", WA_ID)
        assert number.reason is not None and number.reason.startswith("131026")
        history = await reminder_history(session=session, limit=10)
        refused = await unreachable_numbers(session=session, channel="whatsapp")
    assert await identity_count(sessions) == 2  # still none for the number

    # The next slot (d-1): not written again; the plan says why.
    clock.now = local(27, 8)
    await ReminderTicker(sessions=sessions, clock=clock, phone_channel="whatsapp").tick()
    assert len(await reminders(sessions)) == 1
    plan = await plan_at(sessions, clock.now, phone_channel="whatsapp", with_unreachable=True)
    assert [m.recipient.reach for m in plan.unreachable] == [Reach.not_on_whatsapp]

    lines = history_lines(history, not_on_whatsapp=refused)
    assert "nomor impor" in lines[0]
    assert "nomor tidak terdaftar di WhatsApp (131026): tidak dicoba lagi" in lines[0]
    assert lines[-1] == "1 nomor impor tidak terdaftar di WhatsApp: tidak dikirimi pengingat."


async def test_a_failed_receipt_131026_for_an_imported_number_is_remembered(sessions) -> None:
    """WhatsApp often accepts the send and reports 131026 later, in a status webhook."""
    await never_wrote(sessions)
    await ReminderTicker(
        sessions=sessions, clock=Clock(local(25, 8)), phone_channel="whatsapp"
    ).tick()
    async with sessions() as session:
        [row] = (await session.exec(select(OutboxMessage))).all()
        row.status, row.provider_message_id = OutboxStatus.sent, "wamid.1"
        session.add(row)
        await session.commit()
    update = DeliveryUpdate(
        "wamid.1", "failed", error_code=131026, error_title="Message undeliverable",
        unreachable=("whatsapp", WA_ID),
    )  # fmt: skip
    await record_statuses(sessions, [update])
    plan = await plan_at(sessions, local(27, 8), phone_channel="whatsapp", with_unreachable=True)
    assert [m.recipient.reach for m in plan.unreachable] == [Reach.not_on_whatsapp]
    assert await identity_count(sessions) == 2


async def test_a_contact_with_an_account_still_gets_it_there(sessions) -> None:
    async with sessions() as session:
        await reminder_world(session)
    ticker = ReminderTicker(sessions=sessions, clock=Clock(local(25, 8)), phone_channel="whatsapp")
    await ticker.tick()
    [row] = await reminders(sessions)
    assert (row.channel, row.recipient) == ("telegram", "101")
