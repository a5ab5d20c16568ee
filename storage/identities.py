"""Who a chat user is: channel identities (a user key on a channel) linked to contacts, when
the user last wrote, and whether messages still reach them.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import AuditLog, ChannelIdentity, Contact, Role, UnreachableNumber

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


async def get_contact(*, session: AsyncSession, contact_id: int) -> Contact | None:
    return await session.get(Contact, contact_id)


async def find_contact_by_phone(*, session: AsyncSession, phone: str) -> Contact | None:
    statement = select(Contact).where(Contact.phone == phone)
    return (await session.exec(statement)).first()


async def last_inbound_at(
    *, session: AsyncSession, channel: str, external_id: str
) -> datetime | None:
    found = await find_identity(session=session, channel=channel, external_id=external_id)
    return found[0].last_inbound_at if found else None


async def mark_unreachable(
    *,
    session: AsyncSession,
    channel: str,
    external_id: str,
    now: datetime,
    reason: str | None = None,
) -> None:
    """The channel says messages no longer reach this user (blocked the bot; not on
    WhatsApp). Without an identity, it is an imported number we wrote to first (a reminder):
    remembered as such, so the reminder planner stops trying it. Grants no identity."""
    found = await find_identity(session=session, channel=channel, external_id=external_id)
    if found:
        found[0].unreachable_since = now
        return
    number = await session.get(UnreachableNumber, (channel, external_id))
    if number is None:
        number = UnreachableNumber(channel=channel, recipient=external_id, since=now)
    number.reason = (reason or "")[:200] or None
    session.add(number)


async def other_accounts(
    *, session: AsyncSession, contact_id: int, channel: str, external_id: str
) -> list[ChannelIdentity]:
    """The contact's identities on `channel` other than `external_id` (a second account)."""
    statement = select(ChannelIdentity).where(
        ChannelIdentity.contact_id == contact_id,
        ChannelIdentity.channel == channel,
        ChannelIdentity.external_id != external_id,
    )
    return list((await session.exec(statement)).all())


async def region_coordinators(
    *, session: AsyncSession, region_id: int
) -> list[tuple[Contact, ChannelIdentity]]:
    """The active coordinators of a region with each of their channel identities."""
    statement = (
        select(Contact, ChannelIdentity)
        .join(ChannelIdentity, col(ChannelIdentity.contact_id) == Contact.id)
        .where(
            Contact.region_id == region_id,
            Contact.role == Role.coordinator,
            col(Contact.active).is_(True),
        )
    )
    return [(contact, identity) for contact, identity in (await session.exec(statement)).all()]


def audit_second_account(
    *, session: AsyncSession, contact: Contact, channel: str, previous: list[str], now: datetime
) -> None:
    """Record that a further account on a channel was linked to a contact."""
    session.add(
        AuditLog(
            actor_id=contact.id,
            action="identity.second_account",
            entity="contact",
            entity_id=contact.id,
            detail={"channel": channel, "previous_accounts": len(previous)},
            at=now,
        )
    )
