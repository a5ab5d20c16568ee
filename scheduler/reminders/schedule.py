"""When each reminder of a period is due, in one time zone: pure date arithmetic.

A period's slots follow its policy: the morning it opens, N days before the due date, on the due
date, N days after it; each at the policy's `send_at` (08:00) local time. A slot stays relevant
until the next slot's time: after a downtime only the latest slot that has come is sent (late,
once), never the whole backlog. A slot before the deadline is dropped when the deadline passes;
a slot after it is dropped `LATE_CATCH_UP` after its time if no later slot came first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from storage.periods import deadline
from storage.reminder_policy import DEFAULT_QUIET_HOURS, QuietHours, ReminderPolicy

LATE_CATCH_UP = timedelta(days=2)
OPEN = "open"


@dataclass(frozen=True)
class Slot:
    offset: str  # "open", "d-7", "d0", "d+1": part of the idempotency key
    day: date  # the local day it is meant for
    at: datetime  # UTC: when it is due
    until: datetime  # UTC, exclusive: when it is no longer worth sending
    after_due: bool

    def is_current(self, now: datetime) -> bool:
        return self.at <= now < self.until


def offset_label(days_from_due: int) -> str:
    return f"d{days_from_due:+d}" if days_from_due else "d0"


def reminder_slots(
    *, opens_on: date, due_on: date, policy: ReminderPolicy, timezone: str
) -> list[Slot]:
    """The focal points' reminders of one period in one zone, in time order."""
    days: list[tuple[str, date]] = []
    if policy.on_open:
        days.append((OPEN, opens_on))
    days += [(offset_label(-n), due_on - timedelta(days=n)) for n in policy.days_before_due]
    if policy.on_due_date:
        days.append((offset_label(0), due_on))
    days += [(offset_label(n), due_on + timedelta(days=n)) for n in policy.days_after_due]
    # Nothing before the period opens; on the opening day the opening message says it all.
    first = opens_on + timedelta(days=1) if policy.on_open else opens_on
    days = [(label, day) for label, day in days if label == OPEN or day >= first]
    return _slots(days, due_on=due_on, send_at=policy.send_time, timezone=timezone)


def escalation_slots(
    *, opens_on: date, due_on: date, policy: ReminderPolicy, timezone: str
) -> list[Slot]:
    """The coordinators' and the Kanwil's lists of offices still missing, in time order."""
    days = [(offset_label(-n), due_on - timedelta(days=n)) for n in policy.escalate_days_before_due]
    days += [(offset_label(n), due_on + timedelta(days=n)) for n in policy.escalate_days_after_due]
    days = [(label, day) for label, day in days if day >= opens_on]
    return _slots(days, due_on=due_on, send_at=policy.send_time, timezone=timezone)


def _slots(
    days: list[tuple[str, date]], *, due_on: date, send_at: time, timezone: str
) -> list[Slot]:
    zone = ZoneInfo(timezone)
    closes = deadline(due_on, timezone)
    ordered = sorted(set(days), key=lambda pair: (pair[1], pair[0] != OPEN))
    unique: list[tuple[str, date]] = []
    for label, day in ordered:  # two slots on one day: the first (the opening) is enough
        if not unique or unique[-1][1] != day:
            unique.append((label, day))
    instants = [datetime.combine(day, send_at, tzinfo=zone).astimezone(ZoneInfo("UTC"))
                for _, day in unique]  # fmt: skip
    slots = []
    for index, (label, day) in enumerate(unique):
        at = instants[index]
        after_due = day > due_on
        following = instants[index + 1] if index + 1 < len(instants) else None
        if after_due:
            until = following or at + LATE_CATCH_UP
        else:
            until = min(following, closes) if following else closes
        slots.append(Slot(label, day, at, until, after_due))
    return slots


def current_slot(slots: list[Slot], now: datetime) -> Slot | None:
    return next((slot for slot in slots if slot.is_current(now)), None)


def in_quiet_hours(now: datetime, timezone: str, quiet: QuietHours = DEFAULT_QUIET_HOURS) -> bool:
    """21:00 to 07:00 (or the policy's hours) in the recipient's zone: nothing is written for
    them then (and the outbox sender holds what reaches it then: scheduler/outbox.py)."""
    return quiet.covers(now.astimezone(ZoneInfo(timezone)).time())


def may_matter(*, opens_on: date, due_on: date, policy: ReminderPolicy, now: datetime) -> bool:
    """A cheap first cut before loading anything: could any slot of this period be current
    now in any zone (a day of margin on each side covers WIB to WIT)?"""
    last_day = due_on + timedelta(days=max([*policy.days_after_due,
                                            *policy.escalate_days_after_due, 0]))  # fmt: skip
    today = now.date()
    return opens_on - timedelta(days=1) <= today <= last_day + LATE_CATCH_UP + timedelta(days=1)
