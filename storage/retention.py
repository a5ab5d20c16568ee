"""Upkeep of the message tables: what may be pruned after the retention age, and the query
planner's statistics on SQLite.

Pruning works in batches, each in its own short transaction (the caller's, see
`scheduler/jobs.py`): the ids are found by a read, which takes no lock, and the DELETE by primary
key repeats the conditions, so a row that changed in between (a failed message requeued) is
left alone.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import InboxMessage, InboxStatus, OutboxMessage, OutboxStatus

# SQLite's ANALYZE looks at about this many rows per index instead of all of them: statistics
# good enough for the planner, gathered in milliseconds even at national size.
ANALYSIS_LIMIT = 1000
FINISHED_OUTBOX = (OutboxStatus.sent, OutboxStatus.failed)


def _inbox_prunable(before: datetime) -> list[Any]:
    # Only processed rows: a `received` row is a message still to be handled (replay).
    return [
        col(InboxMessage.status) == InboxStatus.processed,
        col(InboxMessage.processed_at) < before,
    ]


def _outbox_prunable(before: datetime) -> list[Any]:
    # Only finished rows: pending and sending rows are messages still to go.
    return [
        col(OutboxMessage.status).in_(FINISHED_OUTBOX),
        col(OutboxMessage.created_at) < before,
    ]


async def prunable_inbox_ids(*, session: AsyncSession, before: datetime, limit: int) -> list[int]:
    """Ids of processed inbox rows handled before `before`, oldest first."""
    statement = (
        select(InboxMessage.id)
        .where(*_inbox_prunable(before))
        .order_by(col(InboxMessage.id))
        .limit(limit)
    )
    return [row for row in (await session.exec(statement)).all() if row is not None]


async def delete_inbox_rows(*, session: AsyncSession, ids: Sequence[int], before: datetime) -> int:
    if not ids:
        return 0
    statement = (
        delete(InboxMessage)
        .where(col(InboxMessage.id).in_(ids), *_inbox_prunable(before))
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)
    return int(result.rowcount or 0)


async def prunable_outbox_ids(*, session: AsyncSession, before: datetime, limit: int) -> list[int]:
    """Ids of sent or failed outbox rows written before `before`, oldest first."""
    statement = (
        select(OutboxMessage.id)
        .where(*_outbox_prunable(before))
        .order_by(col(OutboxMessage.id))
        .limit(limit)
    )
    return [row for row in (await session.exec(statement)).all() if row is not None]


async def delete_outbox_rows(*, session: AsyncSession, ids: Sequence[int], before: datetime) -> int:
    if not ids:
        return 0
    statement = (
        delete(OutboxMessage)
        .where(col(OutboxMessage.id).in_(ids), *_outbox_prunable(before))
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)
    return int(result.rowcount or 0)


async def refresh_statistics(*, session: AsyncSession) -> bool:
    """SQLite: keep the query planner's statistics current (`PRAGMA optimize`, as SQLite's
    documentation recommends for long-lived applications; a first `ANALYZE` when there are no
    statistics yet, since older SQLite versions only optimize tables this connection queried).
    Without statistics one status query picked an index that made it 100 times slower.
    PostgreSQL: nothing; its autovacuum keeps its statistics. True when something ran."""
    connection = await session.connection()
    if connection.dialect.name != "sqlite":
        return False
    await connection.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
    has_statistics = (
        await connection.exec_driver_sql(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'"
        )
    ).first()
    # 0x10002: consider every table, not only those this connection used (SQLite 3.46+).
    await connection.exec_driver_sql("PRAGMA optimize=0x10002" if has_statistics else "ANALYZE")
    return True
