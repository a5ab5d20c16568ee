"""Column types shared by the tables: UTC-aware timestamps and string-backed enums."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite has no time zones, so values are stored there as naive UTC and given their zone back on
    load; PostgreSQL stores `timestamptz`. A naive value on the way in is a bug, so it raises.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_type(enum: type[Enum]) -> sa.Enum:
    """Store an enum as its values in a VARCHAR: no native PostgreSQL enum, no CHECK constraint,
    so adding a value later needs no migration."""
    return sa.Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=max(20, *(len(str(m.value)) for m in enum)),
        values_callable=lambda members: [str(m.value) for m in members],
    )


def json_type() -> Any:
    return sa.JSON()
