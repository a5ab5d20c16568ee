"""The reminder ticker on the real database (SQLite, and PostgreSQL with
LAPORHAM_TEST_DATABASE_URL), with an injected clock: who gets what at each slot, in every zone;
nothing to an office that handed in; one reminder however many tickers run; a downtime catches
up once; quiet hours; escalation to coordinators and the Kanwil; the WhatsApp template fits."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from bot.channels.whatsapp.templates import TEMPLATES
from bot.engine.events import OutText, outgoing_from_payload
from scheduler.reminders import ReminderTicker, plan_at
from scheduler.reminders.schedule import reminder_slots
from storage.db import create_engine, session_factory
from storage.models import Answer, ChannelIdentity, OutboxMessage, Question, Submission
from storage.reminder_policy import DEFAULT_POLICY
from tests.scheduler.reminder_world import DUE, OPENS, hand_in, reminder_world

ZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def local(day: int, hour: int, minute: int = 0, *, timezone: str = "Asia/Jakarta") -> datetime:
    """An instant given in the region's zone, in August 2025, as UTC."""
    return datetime(2025, 8, day, hour, minute, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


async def outbox_rows(sessions, purpose: str | None = None) -> list[OutboxMessage]:
    async with sessions() as session:
        statement = select(OutboxMessage).order_by(col(OutboxMessage.id))
        if purpose:
            statement = statement.where(OutboxMessage.purpose == purpose)
        return list((await session.exec(statement)).all())


def text_of(row: OutboxMessage) -> OutText:
    message = outgoing_from_payload(row.payload)
    assert isinstance(message, OutText)
    return message


@pytest.mark.parametrize("timezone", ZONES)
async def test_each_offset_goes_once_at_eight_local_in_every_zone(sessions, timezone) -> None:
    async with sessions() as session:
        await reminder_world(session, timezone=timezone)
    clock = Clock(local(1, 12))
    ticker = ReminderTicker(sessions=sessions, clock=clock)
    slots = reminder_slots(opens_on=OPENS, due_on=DUE, policy=DEFAULT_POLICY, timezone=timezone)
    for slot in slots:
        clock.now = slot.at - timedelta(minutes=1)
        await ticker.tick()
        clock.now = slot.at
        await ticker.tick()
        clock.now = slot.at + timedelta(minutes=1)
        await ticker.tick()
    rows = await outbox_rows(sessions, "reminder")
    assert [row.idempotency_key.split(":")[4] for row in rows] == [s.offset for s in slots]
    for row, slot in zip(rows, slots, strict=True):
        assert row.next_attempt_at == slot.at  # written at the slot's minute, not before
        assert row.recipient == "101" and row.channel == "telegram"
        assert row.next_attempt_at.astimezone(ZoneInfo(timezone)).time() == time(8)


async def test_the_reminder_names_each_action_and_what_it_misses(sessions) -> None:
    async with sessions() as session:
        rw = await reminder_world(session)
        draft = Submission(
            action_id=rw.world.action.id, office_id=rw.world.office.id, period_id=rw.period.id
        )
        session.add(draft)
        await session.flush()
        question = (await session.exec(select(Question).where(Question.code == "jumlah"))).first()
        session.add(Answer(submission_id=draft.id, question_id=question.id, value="12"))
        await session.commit()
    ticker = ReminderTicker(sessions=sessions, clock=Clock(local(25, 8)))
    assert await ticker.tick() >= 1
    [row] = await outbox_rows(sessions, "reminder")
    message = text_of(row)
    assert "Dinas Koperasi dan UMKM Kota Bandar Lampung" in message.text
    lines = message.text.splitlines()
    first = next(line for line in lines if "KK-01" in line)
    # KK-01 has 4 required questions (jumlah answered), 2 evidence requirements.
    assert "Foto kegiatan belum diunggah" in first and "Daftar penerima belum diunggah" in first
    assert "3 pertanyaan belum dijawab" in first
    assert "belum dimulai" in next(line for line in lines if "KK-02" in line)
    assert "3 hari lagi" in message.text and "/lapor" in message.text
    assert message.template == "laporham_pengingat"
    assert message.template_params == (
        "Siti Rahma",
        "B08 2025",
        "Dinas Koperasi dan UMKM Kota Bandar Lampung",
        "28 Agustus 2025 pukul 23.59 WIB",
        "2",
    )
    assert row.contact_id == rw.world.focal_point.id


async def test_the_template_parameters_fit_the_approved_templates(sessions) -> None:
    async with sessions() as session:
        await reminder_world(session)
    ticker = ReminderTicker(sessions=sessions, clock=Clock(local(18, 8)))
    await ticker.tick()
    ticker.clock = Clock(local(21, 8))
    await ticker.tick()
    counts = {template.name: len(template.params) for template in TEMPLATES}
    messages = [text_of(row) for row in await outbox_rows(sessions, "reminder")]
    assert [message.template for message in messages] == [
        "laporham_periode_dibuka",
        "laporham_pengingat",
    ]
    for message in messages:
        assert len(message.template_params) == counts[message.template or ""]


async def test_english_users_get_english(sessions) -> None:
    async with sessions() as session:
        rw = await reminder_world(session)
        rw.world.focal_point.language = "en"
        session.add(rw.world.focal_point)
        await session.commit()
    await ReminderTicker(sessions=sessions, clock=Clock(local(25, 8))).tick()
    [row] = await outbox_rows(sessions, "reminder")
    assert "not started" in text_of(row).text and "/report" in text_of(row).text
    # Outside WhatsApp's window the template goes out in the language the row carries.
    assert row.payload["language"] == "en"


async def test_no_reminder_to_an_office_that_handed_everything_in(sessions) -> None:
    async with sessions() as session:
        rw = await reminder_world(session)
        await hand_in(session, rw.world, action_ids=[rw.world.action.id, rw.world.second_action.id])
    ticker = ReminderTicker(sessions=sessions, clock=Clock(local(27, 8)))
    assert await ticker.tick() == 0
    assert await outbox_rows(sessions) == []


async def test_an_office_that_handed_in_one_action_hears_of_the_other(sessions) -> None:
    async with sessions() as session:
        rw = await reminder_world(session)
        await hand_in(session, rw.world, action_ids=[rw.world.action.id])
    await ReminderTicker(sessions=sessions, clock=Clock(local(27, 8))).tick()
    [row] = await outbox_rows(sessions, "reminder")
    assert "KK-02" in text_of(row).text and "KK-01" not in text_of(row).text
    assert text_of(row).template_params[-1] == "1"


async def test_two_tickers_at_once_write_each_reminder_once(sessions, database_url, caplog) -> None:
    """Two processes: two engines (connection pools) on one database, ticking together. The
    lock makes the second wait and find the keys written: no tick fails on the unique key."""
    async with sessions() as session:
        await reminder_world(session)
    now = local(27, 8)  # d-1: a reminder and both escalations are due
    engines = [create_engine(database_url) for _ in range(2)]
    try:
        tickers = [
            ReminderTicker(sessions=session_factory(engine), clock=Clock(now)) for engine in engines
        ]
        written = await asyncio.gather(*(ticker.tick() for ticker in tickers * 2))
    finally:
        for engine in engines:
            await engine.dispose()
    rows = await outbox_rows(sessions)
    assert sum(written) == len(rows) == 3
    assert len({row.idempotency_key for row in rows}) == 3
    assert sorted(row.purpose for row in rows) == ["escalation", "escalation", "reminder"]
    assert not [record for record in caplog.records if "tick failed" in record.getMessage()]


async def test_a_ticker_down_for_a_day_catches_up_once(sessions) -> None:
    async with sessions() as session:
        await reminder_world(session)
    clock = Clock(local(24, 10))  # d-4: nothing since d-7 that was not sent
    ticker = ReminderTicker(sessions=sessions, clock=clock)
    await ticker.tick()
    before = len(await outbox_rows(sessions, "reminder"))  # the d-7 one, late, once
    # Down from d-4 10:00 to d-2 10:00, over d-3's 08:00.
    clock.now = local(26, 10)
    assert await ticker.tick() == 1
    for minutes in range(1, 4):
        clock.now = local(26, 10, minutes)
        assert await ticker.tick() == 0
    clock.now = local(25, 9)  # the clock jumps back a day: nothing twice
    assert await ticker.tick() == 0
    rows = await outbox_rows(sessions, "reminder")
    assert len(rows) == before + 1
    assert rows[-1].idempotency_key.endswith(":d-3:2025-08-25")


async def test_a_downtime_over_the_deadline_drops_the_reminders_before_it(sessions) -> None:
    async with sessions() as session:
        await reminder_world(session)
    clock = Clock(local(28, 7, 30))  # due date, before 08:00: d-1 is still current
    ticker = ReminderTicker(sessions=sessions, clock=clock)
    await ticker.tick()
    assert [r.idempotency_key.split(":")[4] for r in await outbox_rows(sessions, "reminder")] == [
        "d-1"
    ]
    clock.now = local(29, 7, 30)  # down over d0 08:00 and the deadline: d0 is no longer relevant
    assert await ticker.tick() == 0
    clock.now = local(29, 8)
    await ticker.tick()
    rows = await outbox_rows(sessions, "reminder")
    assert [row.idempotency_key.split(":")[4] for row in rows] == ["d-1", "d+1"]
    late = text_of(rows[-1]).text
    assert "sudah lewat" in late and "koordinator" in late and "lewat 1 hari" in late


async def test_nothing_is_written_in_quiet_hours_and_the_morning_catches_up(sessions) -> None:
    async with sessions() as session:
        await reminder_world(session, timezone="Asia/Makassar")
    clock = Clock(local(25, 21, 30, timezone="Asia/Makassar"))  # d-3, but down until 21:30
    ticker = ReminderTicker(sessions=sessions, clock=clock)
    assert await ticker.tick() == 0
    clock.now = local(26, 6, 59, timezone="Asia/Makassar")
    assert await ticker.tick() == 0
    clock.now = local(26, 7, 0, timezone="Asia/Makassar")
    assert await ticker.tick() == 1
    [row] = await outbox_rows(sessions, "reminder")
    assert row.idempotency_key.endswith(":d-3:2025-08-25")


async def test_coordinator_and_kanwil_get_who_is_still_missing(sessions) -> None:
    async with sessions() as session:
        rw = await reminder_world(session)
        await hand_in(session, rw.world, action_ids=[rw.world.action.id])
    ticker = ReminderTicker(sessions=sessions, clock=Clock(local(29, 8)))  # d+1
    await ticker.tick()
    rows = {row.contact_id: row for row in await outbox_rows(sessions, "escalation")}
    coordinator = text_of(rows[rw.world.coordinator.id]).text
    assert "Kota Bandar Lampung: 1 OPD" in coordinator
    assert "• Dinas Koperasi dan UMKM: KK-02" in coordinator
    assert "lewat 1 hari" in coordinator
    kanwil = text_of(rows[rw.kanwil.id]).text
    assert "Lampung: 1 pemda" in kanwil and "• Kota Bandar Lampung: 1 OPD, 1 aksi" in kanwil
    assert rows[rw.kanwil.id].idempotency_key.startswith(
        f"escalation:{rw.period.id}:{rw.world.province.id}:{rw.kanwil.id}:d+1:"
    )
    # No escalation slot on d-3.
    plan = await plan_at(sessions, local(25, 8))
    assert {message.purpose for message in plan.due} == {"reminder"}


async def test_a_contact_who_blocked_the_bot_is_skipped(sessions) -> None:
    async with sessions() as session:
        rw = await reminder_world(session)
        identity = (
            await session.exec(
                select(ChannelIdentity).where(ChannelIdentity.contact_id == rw.world.focal_point.id)
            )
        ).one()
        identity.unreachable_since = local(20, 8)
        session.add(identity)
        await session.commit()
    await ReminderTicker(sessions=sessions, clock=Clock(local(25, 8))).tick()
    assert await outbox_rows(sessions, "reminder") == []


async def test_a_failed_tick_is_one_log_line_and_no_exception(caplog) -> None:
    class Broken:
        def __call__(self):
            raise RuntimeError("database gone")

    ticker = ReminderTicker(sessions=Broken(), clock=Clock(local(25, 8)))  # type: ignore[arg-type]
    assert await ticker.tick() == 0
    [record] = caplog.records
    assert "database gone" in record.getMessage() and "\n" not in record.getMessage()


async def test_a_contact_on_two_channels_gets_it_once_where_they_last_wrote(sessions) -> None:
    async with sessions() as session:
        rw = await reminder_world(session)
        telegram = (
            await session.exec(
                select(ChannelIdentity).where(ChannelIdentity.contact_id == rw.world.focal_point.id)
            )
        ).one()
        telegram.last_inbound_at = local(20, 9)
        session.add(telegram)
        session.add(
            ChannelIdentity(
                contact_id=rw.world.focal_point.id,
                channel="whatsapp",
                external_id="6281200000001",
                last_inbound_at=local(22, 9),
            )
        )
        await session.commit()
    await ReminderTicker(sessions=sessions, clock=Clock(local(25, 8))).tick()
    [row] = await outbox_rows(sessions, "reminder")
    assert (row.channel, row.recipient) == ("whatsapp", "6281200000001")


async def test_a_period_across_a_month_end_in_wit(sessions) -> None:
    async with sessions() as session:
        await reminder_world(
            session, timezone="Asia/Jayapura", opens_on=date(2025, 11, 26), due_on=date(2025, 12, 2)
        )
    wit = ZoneInfo("Asia/Jayapura")
    clock = Clock(datetime(2025, 12, 1, 8, 0, tzinfo=wit).astimezone(UTC))
    assert await ReminderTicker(sessions=sessions, clock=clock).tick() == 3  # d-1: + escalations
    [row] = await outbox_rows(sessions, "reminder")
    assert row.idempotency_key.endswith(":d-1:2025-12-01")
    message = text_of(row)
    assert "2 Desember 2025 pukul 23.59 WIT (1 hari lagi)" in message.text
    assert message.template_params[3] == "2 Desember 2025 pukul 23.59 WIT"
