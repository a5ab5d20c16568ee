"""Outbox rows: every message to send, from the moment it is written until the platform's
last receipt about it.

A row is written `pending` (or already claimed, `sending`, when the engine hands it straight to
the running sender), claimed by the sender, then marked `sent` or `failed`, or given back to
`pending` for a retry. A claim names its owner (one sender process) and carries a lease: the
owner renews it while the send is in hand, and only a claim whose lease has expired (its
process died) is taken back by another process. Claims go replies first, then reminders, then
broadcasts (`PRIORITY`). Delivery receipts arrive later, keyed by the provider's message id: each
is one UPDATE guarded in its WHERE clause, so receipts that arrive together or out of order
(read before delivered) never move a row backwards and need no row lock.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, case, exists, func, insert, or_, update
from sqlalchemy import select as select_columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Contact, OutboxMessage, OutboxStatus, Region
from storage.types import utcnow

WAITING = (OutboxStatus.pending, OutboxStatus.sending)
# How long a claim holds a row before another process may take it back: far longer than a
# send, and renewed by its sender while the row is in hand (see scheduler/outbox.py).
CLAIM_LEASE = timedelta(seconds=60)
# Lower goes first: someone waiting for an answer before reminders, reminders before
# broadcasts. A purpose not listed goes with reminders.
PRIORITY = {"reply": 0, "reminder": 1, "broadcast": 2}
OTHER_PRIORITY = 1


def priority_of(purpose: str) -> int:
    return PRIORITY.get(purpose, OTHER_PRIORITY)


@dataclass(slots=True)
class QueuedMessage:
    """An outbox row as the sender works with it: light, because every reply becomes one.
    (An ORM OutboxMessage costs more CPU to build than the INSERT that writes it.)"""

    id: int
    channel: str
    recipient: str
    payload: dict[str, Any]
    attempts: int
    purpose: str = "reply"
    contact_id: int | None = None
    # Quiet hours at send time (see OutboxMessage): the recipient's zone if the writer knew it,
    # the quiet hours ("HH:MM-HH:MM") if a policy set them, when it is no longer worth sending.
    local_zone: str | None = None
    quiet_hours: str | None = None
    expires_at: datetime | None = None


# SQLModel sets __table__ on every table model but does not declare it.
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
_CONTACT: Table = Contact.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
_REGION: Table = Region.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime


def outbox_row(
    *,
    idempotency_key: str,
    channel: str,
    recipient: str,
    payload: dict[str, Any],
    contact_id: int | None = None,
    purpose: str = "reply",
    not_before: datetime | None = None,
    claimed_by: str | None = None,
    local_zone: str | None = None,
    quiet_hours: str | None = None,
    expires_at: datetime | None = None,
) -> dict[str, Any]:
    """The column values of a message to send, for `insert_outbox`. `claimed_by`: written as
    taken by that running sender (the engine hands it over after commit), so no claim
    transaction is needed; if that process dies, its lease expires and `release_expired_claims`
    gives the row to whoever sends next. `local_zone`, `quiet_hours`, `expires_at`: what the
    sender needs to hold a reminder, escalation or broadcast in the recipient's quiet hours
    and to drop it once it expired (scheduler/outbox.py).
    """
    now = utcnow()
    claimed = claimed_by is not None
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
        "claimed_by": claimed_by,
        "lease_expires_at": now + CLAIM_LEASE if claimed else None,
        "local_zone": local_zone,
        "quiet_hours": quiet_hours,
        "expires_at": expires_at,
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
            purpose=row["purpose"],
            contact_id=row.get("contact_id"),
            local_zone=row.get("local_zone"),
            quiet_hours=row.get("quiet_hours"),
            expires_at=row.get("expires_at"),
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
_claim_rank = case(PRIORITY, value=_OUTBOX.c.purpose, else_=OTHER_PRIORITY)
# SQLAlchemy's select (sqlmodel's is typed for at most four columns).
_CLAIM_DUE_OUTBOX = (
    select_columns(_OUTBOX.c.id, _OUTBOX.c.channel, _OUTBOX.c.recipient, _OUTBOX.c.payload,
                   _OUTBOX.c.attempts, _OUTBOX.c.purpose, _OUTBOX.c.contact_id,
                   _OUTBOX.c.local_zone, _OUTBOX.c.quiet_hours, _OUTBOX.c.expires_at)
    .where(
        _OUTBOX.c.channel == bindparam("channel"),
        _claim_rank <= bindparam("lowest_priority"),
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
    .order_by(_claim_rank, _OUTBOX.c.id)
    .limit(bindparam("limit"))
    # PostgreSQL: rows another sender is claiming right now are skipped, not waited for, so
    # several senders share the work. SQLite has no row locks: its BEGIN IMMEDIATE write lock
    # (storage/db.py) makes claims take turns.
    .with_for_update(skip_locked=True)
)  # fmt: skip
_MARK_SENDING = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(status=OutboxStatus.sending, attempts=_OUTBOX.c.attempts + 1,
            claimed_by=bindparam("owner"), lease_expires_at=bindparam("until"))
)  # fmt: skip


async def claim_due_outbox(
    *,
    session: AsyncSession,
    channel: str,
    now: datetime,
    limit: int,
    owner: str,
    until: datetime,
    lowest_priority: int = max(PRIORITY.values()),
) -> list[QueuedMessage]:
    """Take due messages for sending, for `owner` until `until`: replies first, then reminders,
    then broadcasts (none below `lowest_priority`), each kind in id order; rows another sender
    is claiming are skipped (PostgreSQL). A message waits while an earlier one to the same
    recipient is held back for a retry: each recipient gets their messages in order."""
    connection = await session.connection()
    params = {"channel": channel, "now": now, "limit": limit, "lowest_priority": lowest_priority}
    claimed = [
        QueuedMessage(id=row.id, channel=row.channel, recipient=row.recipient,
                      payload=row.payload, attempts=row.attempts + 1, purpose=row.purpose,
                      contact_id=row.contact_id, local_zone=row.local_zone,
                      quiet_hours=row.quiet_hours, expires_at=row.expires_at)
        for row in await connection.execute(_CLAIM_DUE_OUTBOX, params)
    ]  # fmt: skip
    if claimed:
        ids = [message.id for message in claimed]
        await connection.execute(_MARK_SENDING, {"ids": ids, "owner": owner, "until": until})
    return claimed


async def contact_zones(*, session: AsyncSession, contact_ids: Collection[int]) -> dict[int, str]:
    """The time zone of each contact's region (a contact without a region is left out): the
    quiet hours of a claimed row whose writer did not name the zone (a broadcast's)."""
    if not contact_ids:
        return {}
    statement = (
        select_columns(_CONTACT.c.id, _REGION.c.timezone)
        .join(_REGION, _REGION.c.id == _CONTACT.c.region_id)
        .where(_CONTACT.c.id.in_(sorted(contact_ids)))
    )
    connection = await session.connection()
    return {contact_id: zone for contact_id, zone in await connection.execute(statement)}


async def hold_claimed(
    *, session: AsyncSession, owner: str, held: Sequence[tuple[int, datetime]]
) -> None:
    """Claimed rows that must not go yet (the recipient's quiet hours): back to pending until
    then, as not tried. Their attempts go back to 0, so a held row is a message scheduled for
    later, never a retry that keeps the recipient's later messages (their replies) waiting."""
    await update_outbox_rows(
        session=session,
        owner=owner,
        changes=[
            (outbox_id, {"status": OutboxStatus.pending, "next_attempt_at": until,
                         "attempts": 0, "claimed_by": None, "lease_expires_at": None})
            for outbox_id, until in held
        ],
    )  # fmt: skip


async def renew_claims(
    *, session: AsyncSession, owner: str, until: datetime, outbox_ids: Collection[int]
) -> int:
    """Extend the lease of these rows that `owner` still holds (their sends are in hand)."""
    if not outbox_ids:
        return 0
    result = await session.exec(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id).in_(list(outbox_ids)),
            col(OutboxMessage.status) == OutboxStatus.sending,
            col(OutboxMessage.claimed_by) == owner,
        )
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


async def release_expired_claims(*, session: AsyncSession, now: datetime) -> int:
    """Rows whose claim's lease ran out (their process died, or stalled past its lease) go back
    to pending: at-least-once delivery. A live process's claims are never touched: it renews
    them. Rows claimed before leases existed have none and count as expired."""
    result = await session.exec(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.status) == OutboxStatus.sending,
            or_(
                col(OutboxMessage.lease_expires_at) <= now,
                col(OutboxMessage.lease_expires_at).is_(None),
            ),
        )
        .values(status=OutboxStatus.pending, claimed_by=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)


async def update_outbox_rows(
    *,
    session: AsyncSession,
    changes: Sequence[tuple[int, dict[str, Any]]],
    owner: str | None = None,
) -> None:
    """Set fields of many outbox rows: one executemany UPDATE per set of columns changed. With
    `owner`, only rows that owner's claim still holds (another process may have taken back a
    row whose lease ran out: its outcome is that process's to write).

    The sender writes the outcome of every send this way, many sends per transaction."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for outbox_id, values in changes:
        by_columns[(*sorted(values), *(("@owner",) if owner else ()))].append(
            {"outbox_id": outbox_id}
            | ({"owner": owner} if owner else {})
            | {f"b_{name}": value for name, value in values.items()}
        )
    if not by_columns:
        return
    connection = await session.connection()
    for columns, rows in by_columns.items():
        await connection.execute(_outbox_update(columns), rows)


@functools.cache
def _outbox_update(columns: tuple[str, ...]) -> Any:
    """The UPDATE of these outbox columns by id (and owner, when "@owner" is among them),
    built once per set of columns."""
    statement = update(_OUTBOX).where(_OUTBOX.c.id == bindparam("outbox_id"))
    if "@owner" in columns:
        statement = statement.where(_OUTBOX.c.claimed_by == bindparam("owner"))
    names = [name for name in columns if name != "@owner"]
    return statement.values({name: bindparam(f"b_{name}") for name in names})


async def release_unsent(
    *, session: AsyncSession, outbox_ids: Sequence[int], owner: str | None = None
) -> None:
    """Rows claimed but never tried (an earlier message to their recipient must wait, or the
    sender is stopping): back to pending at once, and the claim's attempt is not counted.
    With `owner`, only rows that owner still holds."""
    if not outbox_ids:
        return
    attempts = col(OutboxMessage.attempts)
    statement = update(OutboxMessage).where(
        col(OutboxMessage.id).in_(list(outbox_ids)),
        col(OutboxMessage.status) == OutboxStatus.sending,
    )
    if owner is not None:
        statement = statement.where(col(OutboxMessage.claimed_by) == owner)
    await session.exec(
        statement.values(
            status=OutboxStatus.pending,
            attempts=case((attempts > 0, attempts - 1), else_=0),
            claimed_by=None,
            lease_expires_at=None,
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
