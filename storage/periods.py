"""Period windows in each region's local time, and setting a period's window (`period set`).

A period opens at the start of `opens_on` and closes at the end of `due_on`, both in the region's
own zone (WIB, WITA or WIT): a Papua office's deadline passes two hours before a Jakarta one's.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Period, Programme

ZONE_ABBREVIATIONS = {"Asia/Jakarta": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"}


@dataclass(frozen=True)
class Window:
    opens_at: datetime  # UTC, inclusive
    closes_at: datetime  # UTC, exclusive: the first instant after the due date

    def is_open(self, now: datetime) -> bool:
        return self.opens_at <= now < self.closes_at


def start_of_day(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def deadline(due_on: date, timezone: str) -> datetime:
    """The end of the due date in the region's zone, as a UTC instant (exclusive)."""
    return start_of_day(due_on + timedelta(days=1), timezone)


def window(opens_on: date, due_on: date, timezone: str) -> Window:
    return Window(opens_at=start_of_day(opens_on, timezone), closes_at=deadline(due_on, timezone))


def local_day(now: datetime, timezone: str) -> date:
    return now.astimezone(ZoneInfo(timezone)).date()


def days_left(due_on: date, now: datetime, timezone: str) -> int:
    """Whole days until the due date in the region's calendar: 0 on the due date itself."""
    return (due_on - local_day(now, timezone)).days


def zone_abbreviation(timezone: str) -> str:
    return ZONE_ABBREVIATIONS.get(timezone, timezone)


class CatalogueError(ValueError):
    """A catalogue operation the operator asked for cannot be done (message in Indonesian)."""


ISO_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


def parse_day(text: str) -> date:
    """A `period set` date, YYYY-MM-DD. A well-written date that is not in the calendar
    (2025-02-30) is told as such: "write YYYY-MM-DD" would send the operator looking for a
    typo in the format."""
    found = ISO_DAY.fullmatch(text.strip())
    if found is None:
        raise CatalogueError(f'"{text}": tanggal harus berbentuk YYYY-MM-DD, mis. 2025-08-25.')
    year, month, day = (int(part) for part in found.groups())
    if not 1 <= month <= 12:
        raise CatalogueError(f"Tanggal {text} tidak ada: bulan {month} tidak ada (1 sampai 12).")
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        raise CatalogueError(
            f"Tanggal {text} tidak ada: bulan {month:02d}/{year} hanya sampai tanggal {last}."
        )
    return date(year, month, day)


async def set_period_window(
    *,
    session: AsyncSession,
    programme_code: str | None,
    period_code: str,
    opens_on: date,
    due_on: date,
) -> Period:
    """Set a period's window. Without a programme code: the latest programme (by year) that has a
    period with this code, since operators mean the current cycle when they type `B08`."""
    if opens_on > due_on:
        raise CatalogueError(f"Tanggal buka {opens_on} setelah tenggat {due_on}.")
    query = (
        select(Period)
        .join(Programme, col(Programme.id) == Period.programme_id)
        .where(sa.func.lower(Period.code) == period_code.strip().lower())
        .order_by(col(Programme.year).desc(), col(Programme.id).desc())
    )
    if programme_code is not None:
        query = query.where(Programme.code == programme_code.strip())
    period = (await session.exec(query)).first()
    if period is None:
        where = f' pada program "{programme_code}"' if programme_code else ""
        raise CatalogueError(f'Periode "{period_code}" tidak ditemukan{where}.')
    period.opens_on = opens_on
    period.due_on = due_on
    session.add(period)
    await session.flush()
    return period


async def dated_periods_by_deadline(*, session: AsyncSession) -> list[Period]:
    """Every period with a window, nearest deadline first (a handful of rows)."""
    periods = await session.exec(
        select(Period)
        .where(col(Period.opens_on).is_not(None), col(Period.due_on).is_not(None))
        .order_by(col(Period.due_on), col(Period.id))
    )
    return list(periods.all())


def open_now(periods: list[Period], timezone: str, now: datetime) -> list[Period]:
    """Those of `periods` whose window is open at `now` in this time zone, in their order."""
    return [
        period
        for period in periods
        if period.opens_on
        and period.due_on
        and window(period.opens_on, period.due_on, timezone).is_open(now)
    ]
