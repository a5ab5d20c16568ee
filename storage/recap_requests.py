"""Recap requests: writing one (idempotent per inbound message), claiming the next due one
with an owner and a lease, and finishing it together with the outbox rows of its answer.

A claim is one short transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two processes
never wait for each other; SQLite: the `BEGIN IMMEDIATE` write lock makes claims take turns).
A claim whose lease ran out (its process died mid-render) is due again. The answer's outbox
rows are written with `INSERT ... ON CONFLICT (idempotency_key) DO NOTHING`: a request made
twice (a lease that expired under a slow render, two processes) still sends each file once.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import OutboxMessage, RecapKind, RecapRequest, RecapState

# Far longer than a national recap takes (2-10 s); an evidence ZIP of one pemda is a few
# hundred MB at most. A process that dies holds its request this long.
RECAP_LEASE = timedelta(minutes=10)
# A request that failed this many times is given up, and the asker told so.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class ClaimedRequest:
    """A request as the job works with it, detached from any session."""

    id: int
    kind: RecapKind
    contact_id: int | None
    channel: str
    chat_id: str
    language: str
    period_id: int | None
    region_id: int | None
    attempts: int


async def add_request(
    *,
    session: AsyncSession,
    source_key: str,
    kind: RecapKind,
    contact_id: int,
    channel: str,
    chat_id: str,
    language: str,
    period_id: int,
    region_id: int | None = None,
    now: datetime,
) -> bool:
    """Record a request, once per `source_key` (the inbound message). False when that message
    had asked already."""
    row = {
        "source_key": source_key,
        "kind": kind,
        "contact_id": contact_id,
        "channel": channel,
        "chat_id": chat_id,
        "language": language,
        "period_id": period_id,
        "region_id": region_id,
        "state": RecapState.pending,
        "attempts": 0,
        "created_at": now,
    }
    connection = await session.connection()
    table = RecapRequest.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["source_key"])
    result = await connection.execute(statement, row)
    return bool(result.rowcount)


def _due(now: datetime) -> Any:
    return or_(
        col(RecapRequest.state) == RecapState.pending,
        (col(RecapRequest.state) == RecapState.working)
        & (col(RecapRequest.lease_expires_at) <= now),
    )


async def any_due(*, session: AsyncSession, now: datetime) -> bool:
    """Whether a request waits: a read without a lock, so an idle job costs no write."""
    statement = select(RecapRequest.id).where(_due(now)).limit(1)
    return (await session.exec(statement)).first() is not None


async def claim_next(
    *, session: AsyncSession, owner: str, now: datetime, lease: timedelta = RECAP_LEASE
) -> ClaimedRequest | None:
    """Take the oldest due request for `owner` until now + `lease`, counting the attempt."""
    statement = (
        select(RecapRequest)
        .where(_due(now))
        .order_by(col(RecapRequest.id))
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    request = (await session.exec(statement)).first()
    if request is None or request.id is None:
        return None
    request.state = RecapState.working
    request.claimed_by = owner
    request.lease_expires_at = now + lease
    request.attempts += 1
    session.add(request)
    await session.flush()
    return ClaimedRequest(
        id=request.id,
        kind=request.kind,
        contact_id=request.contact_id,
        channel=request.channel,
        chat_id=request.chat_id,
        language=request.language,
        period_id=request.period_id,
        region_id=request.region_id,
        attempts=request.attempts,
    )


async def finish(
    *,
    session: AsyncSession,
    request_id: int,
    rows: Sequence[dict[str, Any]],
    now: datetime,
    state: RecapState = RecapState.done,
) -> bool:
    """Write the answer's outbox rows (`storage.outbox.outbox_row`s, keyed by the request:
    a key written already is skipped) and close the request. False when it was closed already
    (another run finished it first): nothing is written then."""
    closed = await session.exec(
        update(RecapRequest)
        .where(
            col(RecapRequest.id) == request_id,
            col(RecapRequest.state).in_([RecapState.pending, RecapState.working]),
        )
        .values(state=state, finished_at=now, claimed_by=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    if not closed.rowcount:
        return False
    if rows:
        connection = await session.connection()
        table = OutboxMessage.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
        await connection.execute(insert, list(rows))
    return True


async def release(*, session: AsyncSession, request_id: int, owner: str) -> None:
    """A try that failed: back to pending at once (the next run tries again), if `owner`
    still holds it."""
    await session.exec(
        update(RecapRequest)
        .where(
            col(RecapRequest.id) == request_id,
            col(RecapRequest.state) == RecapState.working,
            col(RecapRequest.claimed_by) == owner,
        )
        .values(state=RecapState.pending, claimed_by=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )


async def get_request(*, session: AsyncSession, request_id: int) -> RecapRequest | None:
    return await session.get(RecapRequest, request_id)
