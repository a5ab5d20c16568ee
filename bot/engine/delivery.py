"""Delivery receipts: a channel reports what happened to a message it sent (WhatsApp's
`statuses[]`: sent, delivered, read, failed) and the outbox row found by the provider's message
id records it. Channels call this and never query the database themselves.

```mermaid
stateDiagram-v2
    [*] --> sent
    sent --> delivered
    delivered --> read
    sent --> read: receipts may skip a step or come out of order
    sent --> failed: with "code: title"
    delivered --> failed
    failed --> pending: the channel says a resend can fix it (outbox row retried)
```

A receipt for a message id we never sent (another app on the same number) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import identities, outbox
from storage.db import transaction
from storage.types import utcnow

# A receipt only moves a row forward: each status lists the ones it may replace.
REPLACES: dict[str, frozenset[str]] = {
    "sent": frozenset(),
    "delivered": frozenset({"sent"}),
    "read": frozenset({"sent", "delivered"}),
    "failed": frozenset({"sent", "delivered"}),
}
# Resends after a failed receipt: a few, then the row stays failed.
MAX_REQUEUE_ATTEMPTS = 4


class Outcome(StrEnum):
    recorded = "recorded"
    requeued = "requeued"  # failed, and back in the outbox for another try
    ignored = "ignored"  # unknown id, unknown status, or older than what the row has


@dataclass(frozen=True)
class DeliveryUpdate:
    provider_message_id: str
    status: str
    error_code: int | None = None
    error_title: str | None = None
    # Set by the channel when a resend can fix this failure: wait that long, then resend.
    retry_after: float | None = None
    # Set by the channel when the failure says the user can't be reached there: (channel,
    # user key), marked unreachable as a refused send is.
    unreachable: tuple[str, str] | None = None

    @property
    def error(self) -> str | None:
        if self.error_code is None and not self.error_title:
            return None
        return f"{self.error_code}: {self.error_title or ''}".strip()


async def record_statuses(
    sessions: async_sessionmaker[AsyncSession],
    updates: Sequence[DeliveryUpdate],
    *,
    clock: Callable[[], datetime] = utcnow,
) -> list[Outcome]:
    """Record the receipts of one webhook in one transaction (they come in batches)."""
    if not updates:
        return []
    async with transaction(sessions) as session:
        return [await _apply(session, update, clock()) for update in updates]


async def _apply(session: AsyncSession, update: DeliveryUpdate, now: datetime) -> Outcome:
    replaces = REPLACES.get(update.status)
    if replaces is None or not update.provider_message_id:
        return Outcome.ignored
    failed = update.status == "failed"
    if (
        failed
        and update.retry_after is not None
        and await outbox.requeue_failed(
            session=session,
            provider_message_id=update.provider_message_id,
            error=update.error or "failed",
            not_before=now + timedelta(seconds=update.retry_after),
            max_attempts=MAX_REQUEUE_ATTEMPTS,
        )
    ):
        return Outcome.requeued
    recorded = await outbox.advance_delivery(
        session=session,
        provider_message_id=update.provider_message_id,
        delivery_status=update.status,
        replaces=replaces,
        error=update.error or "failed",
        failed=failed,
    )
    if recorded and failed and update.unreachable:
        channel, user_key = update.unreachable
        await identities.mark_unreachable(
            session=session, channel=channel, external_id=user_key, now=now, reason=update.error
        )
    return Outcome.recorded if recorded else Outcome.ignored
