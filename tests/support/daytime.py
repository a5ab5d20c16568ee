"""A sender's clock for tests that send broadcasts or reminders on the wall clock: the real time
moved forward to midday in Indonesia (12:00 WIB, 13:00 WITA, 14:00 WIT), so the recipients'
quiet hours (21:00-07:00 local, held by the outbox sender) never depend on when the suite runs.
Rows written at the real time are due by this clock: it is never behind it."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from storage.types import utcnow

MIDDAY_WIB_IN_UTC = time(5, 0)


def to_midday() -> timedelta:
    """How far the real time is from the next 12:00 WIB (at most a day)."""
    now = utcnow()
    target = datetime.combine(now.date(), MIDDAY_WIB_IN_UTC, tzinfo=now.tzinfo)
    if target < now:
        target += timedelta(days=1)
    return target - now


class MiddayClock:
    """The wall clock, shifted to midday in Indonesia once, when made; then it runs on."""

    def __init__(self) -> None:
        self.ahead = to_midday()

    def __call__(self) -> datetime:
        return utcnow() + self.ahead
