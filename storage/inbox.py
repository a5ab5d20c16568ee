"""Inbound message ids, one row per (channel, message id): a redelivered message is recognised
and handled once. A webhook's message is kept `received` before it is answered; handling it
marks it `processed`.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import InboxMessage, InboxStatus
from storage.models.messaging import UNPROCESSED_INBOX
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
        where=col(InboxMessage.status) == InboxStatus.received,
    ).returning(InboxMessage.id)


# Built once: this runs on every message, and building the statement (SQLAlchemy coerces every
# expression) cost more CPU than running it. Values are bind parameters, given at execution.
# It needs no ORM object, so it runs on the session's connection (SQLAlchemy Core).
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
    connection = await session.connection()
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
        .where(InboxMessage.channel == channel, UNPROCESSED_INBOX)
        .order_by(col(InboxMessage.id))
        .limit(limit)
    )
    return list((await session.exec(statement)).all())
