"""Who a chat user is: channel identities (a user key on a channel) linked to contacts, when
the user last wrote, and whether messages still reach them.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ChannelIdentity, Contact

_FIND_IDENTITY = (
    select(ChannelIdentity, Contact)
    .join(Contact, col(Contact.id) == ChannelIdentity.contact_id)
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
        identity.contact_id = contact.id  # type: ignore[assignment]  # a stored row: id is set
        identity.unreachable_since = None
        return identity
    identity = ChannelIdentity(
        contact_id=contact.id,  # type: ignore[arg-type]  # a stored row: id is set
        channel=channel,
        external_id=external_id,
    )
    session.add(identity)
    return identity


async def find_contact_by_phone(*, session: AsyncSession, phone: str) -> Contact | None:
    statement = select(Contact).where(Contact.phone == phone)
    return (await session.exec(statement)).first()


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
