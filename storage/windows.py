"""Free-form windows a platform said are closed (WhatsApp's 24 hours, error 131047), kept so
that a restart still knows who needs a template. A recipient's row is replaced by a later
closing; writing again reopens the window (the channel compares with their last message).

Every function takes the caller's session and never commits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ClosedWindow


async def note_window_closed(
    *, session: AsyncSession, channel: str, recipient: str, at: datetime
) -> None:
    """The platform refused a free-form message to `recipient` at `at`."""
    result = await session.exec(
        update(ClosedWindow)
        .where(
            col(ClosedWindow.channel) == channel,
            col(ClosedWindow.recipient) == recipient,
            col(ClosedWindow.closed_at) < at,
        )
        .values(closed_at=at)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        return
    try:
        async with session.begin_nested():  # a concurrent first note wins; so may this one
            await session.exec(
                insert(ClosedWindow).values(channel=channel, recipient=recipient, closed_at=at)
            )
    except IntegrityError:
        pass  # already noted, as late or later


async def window_closed_at(
    *, session: AsyncSession, channel: str, recipient: str
) -> datetime | None:
    """When the platform last said `recipient`'s window is closed; None if it never did."""
    statement = select(ClosedWindow.closed_at).where(
        col(ClosedWindow.channel) == channel, col(ClosedWindow.recipient) == recipient
    )
    return (await session.exec(statement)).first()
