"""Conversation state: each chat user's flow, step and answers so far, one row per (channel,
user key). The engine opens it first for every message and saves it once at the end.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, bindparam, exists, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.identities import find_identity
from storage.models import (
    ChannelIdentity,
    Contact,
    ConversationState,
    InboxMessage,
    InboxStatus,
)


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
    .with_for_update(of=ConversationState)
)


async def open_conversation(*, session: AsyncSession, channel: str, user_key: str) -> Conversation:
    """The user's state, locked for this transaction (PostgreSQL), with their channel identity
    and contact, in one SELECT: this runs for every message.

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


# SQLModel sets __table__ on every table model but does not declare it.
_STATE: Table = ConversationState.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
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
    connection = await session.connection()
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


async def peek_state(
    *, session: AsyncSession, channel: str, user_key: str
) -> ConversationState | None:
    """The user's state without locking or creating it (for checks outside a transaction)."""
    statement = select(ConversationState).where(
        ConversationState.channel == channel, ConversationState.user_key == user_key
    )
    return (await session.exec(statement)).first()


_PEEK_STATE_FOR_FILE = select(ConversationState).where(
    ConversationState.channel == bindparam("channel"),
    ConversationState.user_key == bindparam("user_key"),
    exists().where(
        col(ChannelIdentity.channel) == bindparam("channel"),
        col(ChannelIdentity.external_id) == bindparam("user_key"),
    ),
    ~exists().where(
        col(InboxMessage.channel) == bindparam("channel"),
        col(InboxMessage.message_id) == bindparam("message_id"),
        col(InboxMessage.status) == InboxStatus.processed,
    ),
)


async def peek_state_for_file(
    *, session: AsyncSession, channel: str, user_key: str, message_id: str
) -> ConversationState | None:
    """Before a file's transaction: the state of a registered user (without locking or creating
    it), or None when the user is unknown or the message was handled already. One SELECT for
    what would be three lookups (inbox, identity, state)."""
    params = {"channel": channel, "user_key": user_key, "message_id": message_id}
    return (await session.exec(_PEEK_STATE_FOR_FILE, params=params)).first()
