"""Outbox rows: every message to send, from the moment it is written until the platform's
last receipt about it.

A row is written `pending` (or already claimed, `sending`, when the engine hands it straight to
the running sender), claimed by the sender, then marked `sent` or `failed`, or given back to
`pending` for a retry. Delivery receipts arrive later, keyed by the provider's message id: each
is one UPDATE guarded in its WHERE clause, so receipts that arrive together or out of order
(read before delivered) never move a row backwards and need no row lock.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, case, exists, func, insert, or_, update
from sqlalchemy import select as select_columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import OutboxMessage, OutboxStatus
from storage.types import utcnow

WAITING = (OutboxStatus.pending, OutboxStatus.sending)


@dataclass(slots=True)
class QueuedMessage:
    """An outbox row as the sender works with it: light, because every reply becomes one.
    (An ORM OutboxMessage costs more CPU to build than the INSERT that writes it.)"""

    id: int
    channel: str
    recipient: str
    payload: dict[str, Any]
    attempts: int


# SQLModel sets __table__ on every table model but does not declare it.
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime


def outbox_row(
    *,
    idempotency_key: str,
    channel: str,
    recipient: str,
    payload: dict[str, Any],
    contact_id: int | None = None,
    purpose: str = "reply",
    not_before: datetime | None = None,
    claimed: bool = False,
) -> dict[str, Any]:
    """The column values of a message to send, for `insert_outbox`. `claimed`: written as taken
    by the running sender (the engine hands it over after commit), so no claim transaction is
    needed; a crash leaves it `sending`, and `release_stale_sending` sends it after the restart.
    """
    now = utcnow()
    return {
        "idempotency_key": idempotency_key,
        "channel": channel,
        "recipient": recipient,
        "contact_id": contact_id,
        "purpose": purpose,
        "payload": payload,
        "status": OutboxStatus.sending if claimed else OutboxStatus.pending,
        "attempts": 1 if claimed else 0,
        "next_attempt_at": not_before or now,
        "last_error": None,
        "provider_message_id": None,
        "delivery_status": None,
        "created_at": now,
        "sent_at": None,
    }


def enqueue(*, session: AsyncSession, **fields: Any) -> OutboxMessage:
    """A message to send, written with the session's other changes (see `outbox_row`)."""
    message = OutboxMessage(**outbox_row(**fields))
    session.add(message)
    return message


async def has_idempotency_key(*, session: AsyncSession, idempotency_key: str) -> bool:
    """Whether a message with this key was written already (a notice given once)."""
    statement = select(OutboxMessage.id).where(OutboxMessage.idempotency_key == idempotency_key)
    return (await session.exec(statement)).first() is not None


# Built once (values are bind parameters): these run for every message, and building a
# statement costs SQLAlchemy more CPU than running it. They need no ORM objects, so they run on
# the session's connection (SQLAlchemy Core).
_INSERT_OUTBOX_ROW = insert(_OUTBOX).returning(_OUTBOX.c.id)
_INSERT_OUTBOX_ROWS = insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True)


async def insert_outbox(
    *, session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> list[QueuedMessage]:
    """Write new messages (`outbox_row`s) now, in one statement, and return them as the sender
    takes them (the engine's replies: they never enter the session)."""
    if not rows:
        return []
    connection = await session.connection()
    if len(rows) == 1:  # most turns: a plain INSERT, without the many-rows machinery
        ids = [(await connection.execute(_INSERT_OUTBOX_ROW, rows[0])).scalar_one()]
    else:
        ids = list((await connection.execute(_INSERT_OUTBOX_ROWS, list(rows))).scalars())
    return [
        QueuedMessage(
            id=outbox_id,
            channel=row["channel"],
            recipient=row["recipient"],
            payload=row["payload"],
            attempts=row["attempts"],
        )
        for outbox_id, row in zip(ids, rows, strict=True)
    ]


_WAITING_FOR_RECIPIENT = (
    select(OutboxMessage.id)
    .where(
        OutboxMessage.channel == bindparam("channel"),
        OutboxMessage.recipient == bindparam("recipient"),
        OutboxMessage.status == OutboxStatus.pending,
        # Due now, or held for a retry; not a message scheduled for later.
        or_(OutboxMessage.next_attempt_at <= bindparam("now"), col(OutboxMessage.attempts) > 0),
    )
    .limit(1)
)


async def has_waiting_outbox(
    *, session: AsyncSession, channel: str, recipient: str, now: datetime
) -> bool:
    """Whether a message to this recipient waits to be claimed: due now, or held for a retry."""
    params = {"channel": channel, "recipient": recipient, "now": now}
    connection = await session.connection()
    return (await connection.execute(_WAITING_FOR_RECIPIENT, params)).first() is not None


_EARLIER = _OUTBOX.alias("earlier")
# SQLAlchemy's select (sqlmodel's is typed for at most four columns).
_CLAIM_DUE_OUTBOX = (
    select_columns(_OUTBOX.c.id, _OUTBOX.c.channel, _OUTBOX.c.recipient, _OUTBOX.c.payload,
                   _OUTBOX.c.attempts)
    .where(
        _OUTBOX.c.channel == bindparam("channel"),
        _OUTBOX.c.status == OutboxStatus.pending,
        _OUTBOX.c.next_attempt_at <= bindparam("now"),
        # Not while an earlier message to the same recipient waits for its retry.
        ~exists().where(
            _EARLIER.c.channel == _OUTBOX.c.channel,
            _EARLIER.c.recipient == _OUTBOX.c.recipient,
            _EARLIER.c.id < _OUTBOX.c.id,
            _EARLIER.c.status == OutboxStatus.pending,
            _EARLIER.c.next_attempt_at > bindparam("now"),
            _EARLIER.c.attempts > 0,
        ),
    )
    .order_by(_OUTBOX.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)  # fmt: skip
_MARK_SENDING = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=OutboxStatus.sending, attempts=_OUTBOX.c.attempts + 1)
)


async def claim_due_outbox(
    *, session: AsyncSession, channel: str, now: datetime, limit: int
) -> list[QueuedMessage]:
    """Take due messages for sending, in id order (skipping rows another sender holds, on
    PostgreSQL). A message waits while an earlier one to the same recipient is held back for a
    retry: each recipient gets their messages in the order they were written."""
    connection = await session.connection()
    params = {"channel": channel, "now": now, "limit": limit}
    claimed = [
        QueuedMessage(id=row.id, channel=row.channel, recipient=row.recipient,
                      payload=row.payload, attempts=row.attempts + 1)
        for row in await connection.execute(_CLAIM_DUE_OUTBOX, params)
    ]  # fmt: skip
    if claimed:
        await connection.execute(_MARK_SENDING, {"ids": [message.id for message in claimed]})
    return claimed


async def release_stale_sending(*, session: AsyncSession, older_than: datetime) -> int:
    """After a crash, rows left in `sending` go back to pending: at-least-once delivery."""
    result = await session.exec(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.status) == OutboxStatus.sending,
            col(OutboxMessage.next_attempt_at) <= older_than,
        )
        .values(status=OutboxStatus.pending)
    )
    return int(result.rowcount or 0)


async def update_outbox_rows(
    *, session: AsyncSession, changes: Sequence[tuple[int, dict[str, Any]]]
) -> None:
    """Set fields of many outbox rows: one executemany UPDATE per set of columns changed.

    The sender writes the outcome of every send this way, many sends per transaction."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for outbox_id, values in changes:
        by_columns[tuple(sorted(values))].append(
            {"outbox_id": outbox_id} | {f"b_{name}": value for name, value in values.items()}
        )
    if not by_columns:
        return
    connection = await session.connection()
    for columns, rows in by_columns.items():
        await connection.execute(_outbox_update(columns), rows)


@functools.cache
def _outbox_update(columns: tuple[str, ...]) -> Any:
    """The UPDATE of these outbox columns by id, built once per set of columns."""
    return (
        update(_OUTBOX)
        .where(_OUTBOX.c.id == bindparam("outbox_id"))
        .values({name: bindparam(f"b_{name}") for name in columns})
    )


async def release_unsent(*, session: AsyncSession, outbox_ids: Sequence[int]) -> None:
    """Rows claimed but never tried (an earlier message to their recipient must wait): back to
    pending, and the claim's attempt is not counted."""
    if not outbox_ids:
        return
    attempts = col(OutboxMessage.attempts)
    await session.exec(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id).in_(list(outbox_ids)),
            col(OutboxMessage.status) == OutboxStatus.sending,
        )
        .values(
            status=OutboxStatus.pending,
            attempts=case((attempts > 0, attempts - 1), else_=0),
        )
    )


async def count_outbox(*, session: AsyncSession, statuses: Iterable[OutboxStatus]) -> int:
    """How many outbox rows are in these states (tests and benchmarks wait for zero waiting)."""
    statement = (
        select(func.count())
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.status).in_(list(statuses)))
    )
    return int((await session.exec(statement)).one())


# --- delivery receipts: what the platform later says happened to a sent message


async def advance_delivery(
    *,
    session: AsyncSession,
    provider_message_id: str,
    delivery_status: str,
    replaces: Collection[str],
    error: str | None = None,
    failed: bool = False,
) -> bool:
    """Set the row's delivery status if it is still empty or one of `replaces`. A failure also
    fails the row with its reason. False when no row matched (unknown id or a stale receipt)."""
    values: dict[str, object] = {"delivery_status": delivery_status}
    if failed:
        values |= {"status": OutboxStatus.failed, "last_error": error}
    statement = (
        update(OutboxMessage)
        .where(
            col(OutboxMessage.provider_message_id) == provider_message_id,
            or_(
                col(OutboxMessage.delivery_status).is_(None),
                col(OutboxMessage.delivery_status).in_(list(replaces)),
            ),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)
    return bool(result.rowcount)


async def requeue_failed(
    *,
    session: AsyncSession,
    provider_message_id: str,
    error: str,
    not_before: datetime,
    max_attempts: int,
) -> bool:
    """A sent message that failed for a reason a resend can fix (the 24-hour window closed,
    too fast) goes back to pending. Only rows still under `max_attempts`, so a failure that
    keeps coming back ends as failed instead of looping."""
    statement = (
        update(OutboxMessage)
        .where(
            col(OutboxMessage.provider_message_id) == provider_message_id,
            col(OutboxMessage.status) == OutboxStatus.sent,
            col(OutboxMessage.attempts) < max_attempts,
        )
        .values(
            status=OutboxStatus.pending,
            next_attempt_at=not_before,
            last_error=error,
            delivery_status=None,
        )
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)
    return bool(result.rowcount)
