"""Named leases: a job only one process may do at a time (polling one bot token with
getUpdates, say) goes to whoever holds its lease. The holder renews it before it expires; when
the holder dies, the lease expires and another process takes it.

Every function takes the caller's session and never commits: take and renew in a transaction
of their own, so the answer is committed before the caller acts on it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Lease


async def take_lease(
    *, session: AsyncSession, name: str, owner: str, now: datetime, until: datetime
) -> bool:
    """Hold `name` until `until`: renewed when `owner` holds it already, taken when it is
    free or expired. False while another owner's lease is still running."""
    result = await session.exec(
        update(Lease)
        .where(
            col(Lease.name) == name,
            or_(col(Lease.owner) == owner, col(Lease.expires_at) <= now),
        )
        .values(owner=owner, expires_at=until)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        return True
    try:
        # The first time anyone asks for it. A savepoint: losing the race to another process's
        # INSERT leaves the caller's transaction usable.
        async with session.begin_nested():
            await session.exec(insert(Lease).values(name=name, owner=owner, expires_at=until))
    except IntegrityError:
        return False
    return True


async def release_lease(*, session: AsyncSession, name: str, owner: str) -> bool:
    """Give `name` up (a graceful stop), so another process need not wait for it to expire."""
    result = await session.exec(
        delete(Lease).where(col(Lease.name) == name, col(Lease.owner) == owner)
    )
    return bool(result.rowcount)


async def lease_holder(*, session: AsyncSession, name: str, now: datetime) -> str | None:
    """Who holds `name` now; None when nobody does (free or expired)."""
    lease = (await session.exec(select(Lease).where(col(Lease.name) == name))).first()
    if lease is None or lease.expires_at <= now:
        return None
    return lease.owner
