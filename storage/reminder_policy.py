"""A programme's reminder policy: when focal points are reminded of a period and when their
coordinators and the Kanwil get the list of who is still missing.

The catalogue YAML may carry it (`reminders:`, docs/catalogue.md); every field left out takes the
default below, and a programme without one runs on the defaults. Stored on the programme row as
JSON; read back with `ReminderPolicy.from_stored`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

# Nothing is sent between 21:00 and 07:00 in the recipient's own time zone, unless a
# programme's policy says other hours.
QUIET_FROM = time(21, 0)
QUIET_UNTIL = time(7, 0)


def _clock(value: str) -> time:
    hour, minute = (int(part) for part in value.split(":"))
    return time(hour, minute)


@dataclass(frozen=True)
class QuietHours:
    """From `start` to `end` local time nothing but a reply is delivered. `start` after `end`
    spans midnight (21:00-07:00); an outbox row carries them as "HH:MM-HH:MM" (`spelt`)."""

    start: time = QUIET_FROM
    end: time = QUIET_UNTIL

    @property
    def spelt(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @classmethod
    def parse(cls, spelt: str | None) -> QuietHours:
        """The hours an outbox row carries; none (or an unreadable value): the default."""
        try:
            start, end = (spelt or "").split("-")
            return cls(_clock(start), _clock(end))
        except ValueError:
            return DEFAULT_QUIET_HOURS

    def covers(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, now: datetime, timezone: str) -> datetime | None:
        """When the quiet hours `now` falls in end (UTC), or None when `now` is not quiet in
        that zone."""
        zone = ZoneInfo(timezone)
        local = now.astimezone(zone)
        if not self.covers(local.time()):
            return None
        end = datetime.combine(local.date(), self.end, tzinfo=zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return end.astimezone(UTC)


DEFAULT_QUIET_HOURS = QuietHours()

Days = Annotated[int, Field(ge=1, le=60)]
ClockTime = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{2}:\d{2}$")]


def _distinct(days: list[int]) -> list[int]:
    if len(set(days)) != len(days):
        raise ValueError("ada hari yang ditulis dua kali")
    return sorted(days, reverse=True)


class ReminderPolicy(BaseModel):
    """Days are counted in the recipient's own calendar: `days_before_due: [3]` is three days
    before the due date, at `send_at` local time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    send_at: ClockTime = "08:00"  # local time of each region (WIB, WITA, WIT)
    on_open: bool = True  # the morning the period opens
    days_before_due: list[Days] = Field(default_factory=lambda: [7, 3, 1])
    on_due_date: bool = True
    days_after_due: list[Days] = Field(default_factory=lambda: [1])  # to those still missing
    # Coordinators (their offices still missing) and the Kanwil (per pemda of the province).
    escalate_days_before_due: list[Days] = Field(default_factory=lambda: [1])
    escalate_days_after_due: list[Days] = Field(default_factory=lambda: [1])
    # Nothing but a reply reaches anyone between these, local time; checked again when the
    # message is sent (an outbox backlog must not deliver a reminder at 23:00).
    quiet_from: ClockTime = "21:00"
    quiet_until: ClockTime = "07:00"

    @field_validator(
        "days_before_due", "days_after_due", "escalate_days_before_due", "escalate_days_after_due"
    )
    @classmethod
    def _days_distinct(cls, days: list[int]) -> list[int]:
        return _distinct(days)

    @field_validator("send_at", "quiet_from", "quiet_until")
    @classmethod
    def _a_clock_time(cls, value: str) -> str:
        hour, minute = (int(part) for part in value.split(":"))
        if hour > 23 or minute > 59:
            raise ValueError(f"{value} bukan jam yang ada (HH:MM, 00:00 sampai 23:59)")
        return value

    @model_validator(mode="after")
    def _send_outside_quiet_hours(self) -> ReminderPolicy:
        quiet = self.quiet_hours
        if quiet.start == quiet.end:
            raise ValueError("jam tenang harus punya awal dan akhir yang berbeda")
        if quiet.covers(self.send_time):
            raise ValueError(
                f"{self.send_at} jatuh di jam tenang ({quiet.start:%H.%M}–{quiet.end:%H.%M}): "
                f"pilih jam di luarnya"
            )
        return self

    @property
    def quiet_hours(self) -> QuietHours:
        return QuietHours(_clock(self.quiet_from), _clock(self.quiet_until))

    @property
    def send_time(self) -> time:
        return _clock(self.send_at)

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None) -> ReminderPolicy:
        """The policy of a programme row: its own fields over the defaults. A stored value that
        no longer validates (written by an older version) falls back to the defaults."""
        try:
            return cls.model_validate(stored or {})
        except ValueError:
            return cls()


DEFAULT_POLICY = ReminderPolicy()
