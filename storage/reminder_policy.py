"""A programme's reminder policy: when focal points are reminded of a period and when their
coordinators and the Kanwil get the list of who is still missing.

The catalogue YAML may carry it (`reminders:`, docs/catalogue.md); every field left out takes the
default below, and a programme without one runs on the defaults. Stored on the programme row as
JSON; read back with `ReminderPolicy.from_stored`.
"""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

# Nothing is sent between 21:00 and 07:00 in the recipient's own time zone.
QUIET_FROM = time(21, 0)
QUIET_UNTIL = time(7, 0)

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

    @field_validator(
        "days_before_due", "days_after_due", "escalate_days_before_due", "escalate_days_after_due"
    )
    @classmethod
    def _days_distinct(cls, days: list[int]) -> list[int]:
        return _distinct(days)

    @field_validator("send_at")
    @classmethod
    def _outside_quiet_hours(cls, value: str) -> str:
        hour, minute = (int(part) for part in value.split(":"))
        if hour > 23 or minute > 59:
            raise ValueError(f"{value} bukan jam yang ada (HH:MM, 00:00 sampai 23:59)")
        if not QUIET_UNTIL <= time(hour, minute) < QUIET_FROM:
            raise ValueError(f"{value} jatuh di jam tenang (21.00–07.00): pilih 07:00 sampai 20:59")
        return value

    @property
    def send_time(self) -> time:
        hour, minute = (int(part) for part in self.send_at.split(":"))
        return time(hour, minute)

    @classmethod
    def from_stored(cls, stored: dict[str, Any] | None) -> ReminderPolicy:
        """The policy of a programme row: its own fields over the defaults. A stored value that
        no longer validates (written by an older version) falls back to the defaults."""
        try:
            return cls.model_validate(stored or {})
        except ValueError:
            return cls()


DEFAULT_POLICY = ReminderPolicy()
