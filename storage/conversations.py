"""Inbox, conversation state, outbox and channel identities: the engine's tables.

Every function takes the caller's session and never commits (the engine commits one
transaction per inbound event).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, exists, func, insert, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import core_connection
from storage.models import (
    ChannelIdentity,
    Contact,
    ConversationState,
    InboxMessage,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
)
from storage.types import utcnow


async def store_received(
    *, session: AsyncSession, channel: str, message_id: str, payload: dict[str, Any]
) -> bool:
    """Webhooks: keep the raw message before answering 200. False when it was seen already."""
    return await _insert_once(
        session,
        InboxMessage(
            channel=channel, message_id=message_id, status=InboxStatus.received, payload=payload
        ),
    )


async def _insert_once(session: AsyncSession, message: InboxMessage) -> bool:
    """Insert an inbox row in a savepoint; False if (channel, message_id) exists already."""
    try:
        async with session.begin_nested():
            session.add(message)
    except IntegrityError:
        return False
    return True


def _claim_inbound_statement(insert: Any) -> Any:
    statement = insert(InboxMessage).values(
        channel=bindparam("channel"),
        message_id=bindparam("message_id"),
        status=InboxStatus.processed,
        processed_at=bindparam("now"),
        received_at=bindparam("now"),
    )
    return statement.on_conflict_do_update(
        index_elements=["channel", "message_id"],
        set_={"status": InboxStatus.processed, "processed_at": bindparam("now"), "payload": None},
        where=InboxMessage.status == InboxStatus.received,  # type: ignore[arg-type]
    ).returning(InboxMessage.id)


# Built once: for the few statements that run on every message, building the statement
# (SQLAlchemy coerces every expression) cost more CPU than running it. Values are bind
# parameters, given at execution. Those that need no ORM objects run on the session's
# connection (SQLAlchemy Core): measured, half the CPU of the ORM's execution path.
_CLAIM_INBOUND = {
    "postgresql": _claim_inbound_statement(postgresql.insert),
    "sqlite": _claim_inbound_statement(sqlite.insert),
}


async def claim_inbound(*, session: AsyncSession, channel: str, message_id: str) -> bool:
    """Mark a message processed within the caller's transaction. False if it was processed
    already (a redelivery), so the caller does nothing.

    One statement: insert it as processed, or flip a webhook's stored `received` row; a row
    already `processed` is left alone and nothing is returned.
    """
    connection = await core_connection(session)
    statement = _CLAIM_INBOUND[connection.dialect.name]
    params = {"channel": channel, "message_id": message_id, "now": utcnow()}
    result = await connection.execute(statement, params)
    return result.first() is not None


async def is_processed(*, session: AsyncSession, channel: str, message_id: str) -> bool:
    statement = select(InboxMessage.id).where(
        InboxMessage.channel == channel,
        InboxMessage.message_id == message_id,
        InboxMessage.status == InboxStatus.processed,
    )
    return (await session.exec(statement)).first() is not None


async def unprocessed_inbound(
    *, session: AsyncSession, channel: str, limit: int = 500
) -> list[InboxMessage]:
    """Webhook messages stored but not processed (the process died in between)."""
    statement = (
        select(InboxMessage)
        .where(InboxMessage.channel == channel, InboxMessage.status == InboxStatus.received)
        .order_by(InboxMessage.id)  # type: ignore[arg-type]
        .limit(limit)
    )
    return list((await session.exec(statement)).all())


@dataclass(frozen=True)
class Conversation:
    """What the engine reads first for every message: the user's state, and who they are."""

    state: ConversationState
    identity: ChannelIdentity | None
    contact: Contact | None


_OPEN_CONVERSATION = (
    select(ConversationState, ChannelIdentity, Contact)
    .select_from(ConversationState)
    .outerjoin(
        ChannelIdentity,
        (col(ChannelIdentity.channel) == bindparam("channel"))
        & (col(ChannelIdentity.external_id) == bindparam("user_key")),
    )
    .outerjoin(Contact, col(Contact.id) == ChannelIdentity.contact_id)
    .where(
        ConversationState.channel == bindparam("channel"),
        ConversationState.user_key == bindparam("user_key"),
    )
    # Only the state row: PostgreSQL refuses to lock the nullable side of an outer join.
    .with_for_update(of=ConversationState)  # type: ignore[arg-type]
)


async def open_conversation(*, session: AsyncSession, channel: str, user_key: str) -> Conversation:
    """The user's state, locked for this transaction (PostgreSQL), with their channel identity
    and contact, in one SELECT: this runs for every message. (The contact's region, read on
    most messages too, comes from `reports.get_region`'s cache.)

    The state comes back detached from the session, and a new user's is not inserted yet: a
    turn changes the state several times, and while attached every autoflush (before each
    query of the handler) would write it again. `save_state` writes it once, at the end."""
    params = {"channel": channel, "user_key": user_key}
    row = (await session.exec(_OPEN_CONVERSATION, params=params)).first()
    if row is None:  # a first message; its identity can exist already (imported, state lost)
        found = await find_identity(session=session, channel=channel, external_id=user_key)
        state = ConversationState(channel=channel, user_key=user_key, data={})
        return Conversation(state, *(found or (None, None)))
    state, identity, contact = row
    session.expunge(state)
    return Conversation(state, identity, contact)


_STATE = ConversationState.__table__  # type: ignore[attr-defined]
_SAVE_STATE = (
    update(_STATE)
    .where(_STATE.c.id == bindparam("state_id"))
    .values(
        contact_id=bindparam("b_contact_id"),
        flow=bindparam("b_flow"),
        step=bindparam("b_step"),
        data=bindparam("b_data"),
        updated_at=bindparam("b_updated_at"),
    )
)


async def save_state(*, session: AsyncSession, state: ConversationState) -> None:
    """Write the turn's state (from `open_conversation`) once: one UPDATE, or one INSERT for a
    new user."""
    if state.id is None:
        session.add(state)
        return
    connection = await core_connection(session)
    await connection.execute(
        _SAVE_STATE,
        {
            "state_id": state.id,
            "b_contact_id": state.contact_id,
            "b_flow": state.flow,
            "b_step": state.step,
            "b_data": state.data,
            "b_updated_at": state.updated_at,
        },
    )


_FIND_IDENTITY = (
    select(ChannelIdentity, Contact)
    .join(Contact, Contact.id == ChannelIdentity.contact_id)  # type: ignore[arg-type]
    .where(
        ChannelIdentity.channel == bindparam("channel"),
        ChannelIdentity.external_id == bindparam("external_id"),
    )
)


async def find_identity(
    *, session: AsyncSession, channel: str, external_id: str
) -> tuple[ChannelIdentity, Contact] | None:
    params = {"channel": channel, "external_id": external_id}
    row = (await session.exec(_FIND_IDENTITY, params=params)).first()
    return (row[0], row[1]) if row else None


def attach_identity(
    *,
    session: AsyncSession,
    contact: Contact,
    identity: ChannelIdentity | None,
    channel: str,
    external_id: str,
) -> ChannelIdentity:
    """Attach a channel identity to a contact (moving it if it belonged to someone else).
    `identity`: the one of (channel, external_id) the caller looked up in this transaction (the
    engine does for every message), or None if there is none. Not flushed, so that what the
    caller sets next (the time of this message) goes into the same INSERT or UPDATE."""
    if identity is not None:
        identity.contact_id = contact.id  # type: ignore[assignment]
        identity.unreachable_since = None
        return identity
    identity = ChannelIdentity(
        contact_id=contact.id,  # type: ignore[arg-type]
        channel=channel,
        external_id=external_id,
    )
    session.add(identity)
    return identity


async def find_contact_by_phone(*, session: AsyncSession, phone: str) -> Contact | None:
    statement = select(Contact).where(Contact.phone == phone)
    return (await session.exec(statement)).first()


@dataclass(slots=True)
class QueuedMessage:
    """An outbox row as the sender works with it: light, because every reply becomes one.
    (An ORM OutboxMessage costs more CPU to build than the INSERT that writes it.)"""

    id: int
    channel: str
    recipient: str
    payload: dict[str, Any]
    attempts: int


_OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]


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


_INSERT_OUTBOX_ROW = insert(_OUTBOX).returning(_OUTBOX.c.id)
_INSERT_OUTBOX_ROWS = insert(_OUTBOX).returning(_OUTBOX.c.id, sort_by_parameter_order=True)


async def insert_outbox(
    *, session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> list[QueuedMessage]:
    """Write new messages (`outbox_row`s) now, in one statement, and return them as the sender
    takes them (the engine's replies: they never enter the session)."""
    if not rows:
        return []
    connection = await core_connection(session)
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
    connection = await core_connection(session)
    return (await connection.execute(_WAITING_FOR_RECIPIENT, params)).first() is not None


_EARLIER = _OUTBOX.alias("earlier")
_CLAIM_DUE_OUTBOX = (
    select(_OUTBOX.c.id, _OUTBOX.c.channel, _OUTBOX.c.recipient, _OUTBOX.c.payload,
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
    connection = await core_connection(session)
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
    result = await session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(
            OutboxMessage.status == OutboxStatus.sending,  # type: ignore[arg-type]
            OutboxMessage.next_attempt_at <= older_than,  # type: ignore[arg-type]
        )
        .values(status=OutboxStatus.pending)
    )
    return int(result.rowcount or 0)


async def last_inbound_at(
    *, session: AsyncSession, channel: str, external_id: str
) -> datetime | None:
    found = await find_identity(session=session, channel=channel, external_id=external_id)
    return found[0].last_inbound_at if found else None


async def mark_unreachable(
    *, session: AsyncSession, channel: str, external_id: str, now: datetime
) -> None:
    found = await find_identity(session=session, channel=channel, external_id=external_id)
    if found:
        found[0].unreachable_since = now


async def peek_state(
    *, session: AsyncSession, channel: str, user_key: str
) -> ConversationState | None:
    """The user's state without locking or creating it (for checks outside a transaction)."""
    statement = select(ConversationState).where(
        ConversationState.channel == channel, ConversationState.user_key == user_key
    )
    return (await session.exec(statement)).first()


async def peek_state_for_file(
    *, session: AsyncSession, channel: str, user_key: str, message_id: str
) -> ConversationState | None:
    """Before a file's transaction: the state of a registered user (without locking or creating
    it), or None when the user is unknown or the message was handled already. One SELECT for
    what would be three lookups (inbox, identity, state)."""
    params = {"channel": channel, "user_key": user_key, "message_id": message_id}
    return (await session.exec(_PEEK_STATE_FOR_FILE, params=params)).first()


_PEEK_STATE_FOR_FILE = select(ConversationState).where(
    ConversationState.channel == bindparam("channel"),
    ConversationState.user_key == bindparam("user_key"),
    exists().where(
        ChannelIdentity.channel == bindparam("channel"),
        ChannelIdentity.external_id == bindparam("user_key"),
    ),
    ~exists().where(
        InboxMessage.channel == bindparam("channel"),
        InboxMessage.message_id == bindparam("message_id"),
        InboxMessage.status == InboxStatus.processed,
    ),
)


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
    connection = await core_connection(session)
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
    await session.exec(  # type: ignore[call-overload]
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id).in_(list(outbox_ids)),
            OutboxMessage.status == OutboxStatus.sending,  # type: ignore[arg-type]
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


WAITING = (OutboxStatus.pending, OutboxStatus.sending)
