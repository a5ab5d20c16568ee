"""Delivery receipts on outbox rows: what the platform later says happened to a sent message.

Each function is one UPDATE keyed by the provider's message id, guarded in its WHERE clause, so
receipts that arrive together or out of order (read before delivered) never move a row
backwards and need no row lock. Like every storage function, none of them commits.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import OutboxMessage, OutboxStatus


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
            OutboxMessage.provider_message_id == provider_message_id,  # type: ignore[arg-type]
            or_(
                OutboxMessage.delivery_status.is_(None),  # type: ignore[union-attr]
                OutboxMessage.delivery_status.in_(list(replaces)),  # type: ignore[union-attr]
            ),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)  # type: ignore[call-overload]
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
            OutboxMessage.provider_message_id == provider_message_id,  # type: ignore[arg-type]
            OutboxMessage.status == OutboxStatus.sent,  # type: ignore[arg-type]
            OutboxMessage.attempts < max_attempts,  # type: ignore[arg-type]
        )
        .values(
            status=OutboxStatus.pending,
            next_attempt_at=not_before,
            last_error=error,
            delivery_status=None,
        )
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)  # type: ignore[call-overload]
    return bool(result.rowcount)
