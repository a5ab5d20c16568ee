"""The reminder schedule, pure: every offset in all three zones, a period across a month end,
which slot is current after a downtime, and quiet hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.reminders.schedule import (
    LATE_CATCH_UP,
    current_slot,
    escalation_slots,
    in_quiet_hours,
    reminder_slots,
)
from storage.periods import deadline
from storage.reminder_policy import DEFAULT_POLICY, ReminderPolicy

ZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")
OPENS, DUE = date(2025, 8, 18), date(2025, 8, 28)


@pytest.mark.parametrize("timezone", ZONES)
def test_every_offset_is_at_eight_in_the_regions_own_zone(timezone: str) -> None:
    slots = reminder_slots(opens_on=OPENS, due_on=DUE, policy=DEFAULT_POLICY, timezone=timezone)
    expected = [("open", 18), ("d-7", 21), ("d-3", 25), ("d-1", 27), ("d0", 28), ("d+1", 29)]
    assert [(slot.offset, slot.day.day) for slot in slots] == expected
    zone = ZoneInfo(timezone)
    for slot in slots:
        local = slot.at.astimezone(zone)
        assert (local.date(), local.hour, local.minute) == (slot.day, 8, 0)
        assert current_slot(slots, slot.at) == slot
        assert current_slot(slots, slot.at - timedelta(minutes=1)) != slot
    # 08:00 is 01:00 UTC in WIB, midnight in WITA and 23:00 the day before in WIT.
    utc_hour = {"Asia/Jakarta": 1, "Asia/Makassar": 0, "Asia/Jayapura": 23}[timezone]
    assert slots[0].at.astimezone(UTC).hour == utc_hour


def test_a_period_across_a_month_end_counts_days_in_the_calendar() -> None:
    slots = reminder_slots(
        opens_on=date(2025, 11, 26),
        due_on=date(2025, 12, 2),
        policy=DEFAULT_POLICY,
        timezone="Asia/Jayapura",
    )
    # d-7 (25 November) falls before the window opens: dropped.
    assert [(slot.offset, slot.day.isoformat()) for slot in slots] == [
        ("open", "2025-11-26"),
        ("d-3", "2025-11-29"),
        ("d-1", "2025-12-01"),
        ("d0", "2025-12-02"),
        ("d+1", "2025-12-03"),
    ]


def test_on_a_day_shared_with_the_opening_only_the_opening_goes() -> None:
    slots = reminder_slots(
        opens_on=date(2025, 8, 18), due_on=date(2025, 8, 25), policy=DEFAULT_POLICY,
        timezone="Asia/Jakarta",
    )  # fmt: skip
    assert [slot.offset for slot in slots] == ["open", "d-3", "d-1", "d0", "d+1"]


def test_after_a_downtime_only_the_latest_slot_is_current() -> None:
    slots = reminder_slots(opens_on=OPENS, due_on=DUE, policy=DEFAULT_POLICY,
                           timezone="Asia/Jakarta")  # fmt: skip
    by_offset = {slot.offset: slot for slot in slots}
    # Down from before d-3 until just before d-1: d-3 is still current (sent late, once).
    assert current_slot(slots, by_offset["d-1"].at - timedelta(minutes=1)) == by_offset["d-3"]
    # A pre-deadline reminder is dropped at the deadline; d+1 waits for its morning.
    closes = deadline(DUE, "Asia/Jakarta")
    assert current_slot(slots, closes - timedelta(minutes=1)) == by_offset["d0"]
    assert current_slot(slots, closes) is None
    # The last slot after the deadline is dropped when it could not go out in time.
    assert current_slot(slots, by_offset["d+1"].at + LATE_CATCH_UP) is None


def test_escalation_slots_are_the_day_before_and_the_day_after() -> None:
    slots = escalation_slots(opens_on=OPENS, due_on=DUE, policy=DEFAULT_POLICY,
                             timezone="Asia/Makassar")  # fmt: skip
    assert [(slot.offset, slot.day.day, slot.after_due) for slot in slots] == [
        ("d-1", 27, False),
        ("d+1", 29, True),
    ]


def test_a_programmes_own_policy_moves_the_slots() -> None:
    policy = ReminderPolicy(send_at="09:30", on_open=False, days_before_due=[2],
                            on_due_date=False, days_after_due=[1, 3])  # fmt: skip
    slots = reminder_slots(opens_on=OPENS, due_on=DUE, policy=policy, timezone="Asia/Jakarta")
    assert [slot.offset for slot in slots] == ["d-2", "d+1", "d+3"]
    assert slots[0].at.astimezone(ZoneInfo("Asia/Jakarta")).time().isoformat() == "09:30:00"


@pytest.mark.parametrize(
    ("local", "quiet"),
    [("20:59", False), ("21:00", True), ("03:00", True), ("06:59", True), ("07:00", False)],
)
@pytest.mark.parametrize("timezone", ZONES)
def test_quiet_hours_are_nine_to_seven_local(timezone: str, local: str, quiet: bool) -> None:
    hour, minute = (int(part) for part in local.split(":"))
    now = datetime(2025, 8, 25, hour, minute, tzinfo=ZoneInfo(timezone))
    assert in_quiet_hours(now.astimezone(UTC), timezone) is quiet


@pytest.mark.parametrize("send_at", ["21:00", "06:30", "25:00"])
def test_a_policy_cannot_send_in_quiet_hours(send_at: str) -> None:
    with pytest.raises(ValueError, match="send_at"):
        ReminderPolicy(send_at=send_at)
