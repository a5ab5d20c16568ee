"""Broadcasts: who may reach whom, the audience's count, the outbox rows written in resumable
batches, and the delivery figures read back from those rows.

Scope is a security boundary: every audience is drawn from `author_regions` (the Kanwil's
province with its kabupaten/kota, a coordinator's own pemda, the whole country for an admin),
and a region asked for by name or code is looked up only among those.

Rows are written in contact id order, a batch per transaction, and the batch moves the
broadcast's `written_through` cursor in the same transaction: a process that dies between two
batches leaves the cursor at the last committed one, and the next `write_next_batch` goes on
from there. Each row's idempotency key is `broadcast:{id}:{contact}` (ON CONFLICT DO NOTHING),
so even two writers at once give every recipient one row.

Every function takes the caller's session and never commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from storage.models import (
    Assignment,
    Audience,
    Broadcast,
    BroadcastState,
    ChannelIdentity,
    Contact,
    Measure,
    OutboxMessage,
    OutboxStatus,
    Period,
    Region,
    RegionKind,
    Role,
    Submission,
    SubmissionStatus,
)
from storage.outbox import outbox_row
from storage.periods import dated_periods_by_deadline, open_now

BROADCASTERS = frozenset({Role.kanwil, Role.coordinator, Role.admin})
ROLES_OF: dict[Audience, tuple[Role, ...]] = {
    Audience.focal_points: (Role.focal_point,),
    Audience.not_submitted: (Role.focal_point,),
    Audience.coordinators: (Role.coordinator,),
    Audience.pemda: (Role.focal_point, Role.coordinator),
}
DONE_STATUSES = (SubmissionStatus.submitted, SubmissionStatus.approved)


class NotAllowed(Exception):
    """The contact may not broadcast, or not to that region."""


@dataclass(frozen=True)
class AuthorScope:
    """Where an author may broadcast: `region` is their own (None for an admin: everywhere);
    `region_ids` every region they may reach (None: all)."""

    region: Region | None
    region_ids: frozenset[int] | None

    def allows(self, region_id: int | None) -> bool:
        if self.region_ids is None:
            return True
        return region_id is not None and region_id in self.region_ids


@dataclass(frozen=True)
class Recipients:
    """What chooses a broadcast's recipients; a Broadcast row carries the same fields."""

    audience: Audience
    region_id: int | None  # None: the whole country
    period_id: int | None = None
    author_id: int | None = None  # the author never gets their own broadcast


@dataclass(frozen=True)
class AudienceCount:
    reachable: int  # contacts with a chat the bot can write to
    without_channel: int  # contacts of the audience who never started a chat (or blocked it)


@dataclass(frozen=True)
class Recipient:
    contact_id: int
    language: str
    channel: str
    chat_id: str


@dataclass(frozen=True)
class Delivery:
    """A broadcast's outbox rows by state; `errors`: (last error, how many) of the failed."""

    total: int
    sent: int
    failed: int
    waiting: int
    errors: tuple[tuple[str, int], ...] = ()

    @property
    def finished(self) -> int:
        return self.sent + self.failed


# --- who may broadcast to where


async def author_scope(*, session: AsyncSession, contact: Contact) -> AuthorScope:
    """The Kanwil: their province and its kabupaten/kota; a coordinator: their own pemda; an
    admin: everywhere. A focal point (or a contact without a region) may not broadcast."""
    if contact.role is Role.admin:
        return AuthorScope(region=None, region_ids=None)
    if contact.role not in BROADCASTERS or contact.region_id is None:
        raise NotAllowed(contact.role.value)
    region = await session.get(Region, contact.region_id)
    if region is None:
        raise NotAllowed("no region")
    if contact.role is Role.kanwil:
        reach = await _with_children(session, region)
        return AuthorScope(region=region, region_ids=frozenset(reach))
    return AuthorScope(region=region, region_ids=frozenset({region.id or 0}))


async def _with_children(session: AsyncSession, region: Region) -> list[int]:
    ids = [region.id or 0]
    if region.kind is RegionKind.provinsi:
        children = await session.exec(select(Region.id).where(Region.parent_id == region.id))
        ids += [child for child in children.all() if child is not None]
    return ids


async def regions_in_scope(*, session: AsyncSession, scope: AuthorScope) -> list[Region]:
    """The pemda an author may pick one of, by code."""
    statement = select(Region).order_by(col(Region.code))
    if scope.region_ids is not None:
        statement = statement.where(col(Region.id).in_(sorted(scope.region_ids)))
    return list((await session.exec(statement)).all())


async def find_region_in_scope(
    *, session: AsyncSession, scope: AuthorScope, typed: str
) -> Region | None:
    """A pemda by its code or its exact name (any letter case), only among those in scope."""
    wanted = typed.strip().casefold()
    if not wanted:
        return None
    statement = select(Region).where(
        (func.lower(Region.code) == wanted) | (func.lower(Region.name) == wanted)
    )
    if scope.region_ids is not None:
        statement = statement.where(col(Region.id).in_(sorted(scope.region_ids)))
    return (await session.exec(statement.limit(1))).first()


async def get_region(*, session: AsyncSession, region_id: int) -> Region | None:
    return await session.get(Region, region_id)


async def find_region_by_code(*, session: AsyncSession, code: str) -> Region | None:
    return (await session.exec(select(Region).where(Region.code == code.strip()))).first()


async def open_period(
    *, session: AsyncSession, region: Region | None, now: datetime
) -> Period | None:
    """The open period with the nearest due date, in the region's time zone (Jakarta's for the
    whole country): the period whose missing reports `not_submitted` chases."""
    timezone = region.timezone if region else "Asia/Jakarta"
    periods = await dated_periods_by_deadline(session=session)
    return next(iter(open_now(periods, timezone, now)), None)


# --- the audience


async def _region_ids(session: AsyncSession, spec: Recipients) -> list[int] | None:
    if spec.region_id is None:
        return None
    if spec.audience is Audience.pemda:
        return [spec.region_id]
    region = await session.get(Region, spec.region_id)
    return await _with_children(session, region) if region else []


def _audience_ids(spec: Recipients, region_ids: list[int] | None) -> SelectOfScalar[int | None]:
    """The contact ids of the audience."""
    statement = select(col(Contact.id)).where(
        col(Contact.active).is_(True), col(Contact.role).in_(ROLES_OF[spec.audience])
    )
    if region_ids is not None:
        statement = statement.where(col(Contact.region_id).in_(region_ids))
    if spec.author_id is not None:
        statement = statement.where(col(Contact.id) != spec.author_id)
    if spec.audience is Audience.not_submitted:
        statement = statement.where(col(Contact.office_id).in_(_offices_owing(spec.period_id)))
    return statement


def _offices_owing(period_id: int | None) -> SelectOfScalar[int]:
    """Offices with an action assigned for the period and not submitted (or approved) yet."""
    done = exists().where(
        col(Submission.action_id) == Assignment.action_id,
        col(Submission.office_id) == Assignment.office_id,
        col(Submission.period_id) == period_id,
        col(Submission.status).in_(DONE_STATUSES),
    )
    due = exists().where(
        col(Measure.action_id) == Assignment.action_id, col(Measure.period_id) == period_id
    )
    return select(Assignment.office_id).where(due, ~done)


def _reachable() -> Any:
    return exists().where(
        col(ChannelIdentity.contact_id) == Contact.id,
        col(ChannelIdentity.unreachable_since).is_(None),
    )


async def count_audience(*, session: AsyncSession, spec: Recipients) -> AudienceCount:
    region_ids = await _region_ids(session, spec)
    ids = _audience_ids(spec, region_ids)
    total = (await session.exec(select(func.count()).select_from(ids.subquery()))).one()
    reachable = (
        await session.exec(select(func.count()).select_from(ids.where(_reachable()).subquery()))
    ).one()
    return AudienceCount(reachable=int(reachable), without_channel=int(total) - int(reachable))


async def create_broadcast(
    *,
    session: AsyncSession,
    spec: Recipients,
    text: str,
    sender_label: str,
    author_channel: str | None = None,
    author_chat_id: str | None = None,
) -> Broadcast:
    """The broadcast, ready for its rows to be written (`write_next_batch`)."""
    counted = await count_audience(session=session, spec=spec)
    broadcast = Broadcast(
        author_id=spec.author_id,
        author_channel=author_channel,
        author_chat_id=author_chat_id,
        sender_label=sender_label,
        region_id=spec.region_id,
        audience=spec.audience,
        period_id=spec.period_id,
        text=text,
        total_recipients=counted.reachable,
        without_channel=counted.without_channel,
    )
    session.add(broadcast)
    await session.flush()
    return broadcast


def recipients_of(broadcast: Broadcast) -> Recipients:
    return Recipients(
        audience=broadcast.audience,
        region_id=broadcast.region_id,
        period_id=broadcast.period_id,
        author_id=broadcast.author_id,
    )


# --- writing the rows


PayloadFor = Callable[[Broadcast, Recipient], dict[str, Any]]


async def write_next_batch(
    *, session: AsyncSession, broadcast_id: int, limit: int, payload_for: PayloadFor
) -> bool:
    """Write the next `limit` recipients' rows and move the cursor past them; True when every
    row is written (the broadcast is then `sending`). The broadcast row is locked first, so two
    writers take turns."""
    broadcast = await _locked(session, broadcast_id)
    if broadcast is None or broadcast.state is not BroadcastState.writing:
        return True
    spec = recipients_of(broadcast)
    region_ids = await _region_ids(session, spec)
    batch = _audience_ids(spec, region_ids).where(col(Contact.id) > broadcast.written_through)
    found = await session.exec(batch.order_by(col(Contact.id)).limit(limit))
    contact_ids = [contact_id for contact_id in found.all() if contact_id is not None]
    recipients = await _recipients(session, contact_ids)
    await _insert_ignoring_duplicates(
        session,
        [
            outbox_row(
                idempotency_key=f"broadcast:{broadcast.id}:{recipient.contact_id}",
                channel=recipient.channel,
                recipient=recipient.chat_id,
                contact_id=recipient.contact_id,
                purpose="broadcast",
                payload=payload_for(broadcast, recipient),
            )
            | {"broadcast_id": broadcast.id}
            for recipient in recipients
        ],
    )
    if contact_ids:
        broadcast.written_through = max(contact_ids)
    if len(contact_ids) < limit:
        broadcast.state = BroadcastState.sending
        broadcast.total_recipients = await _row_count(session, broadcast_id)
    session.add(broadcast)
    await session.flush()
    return broadcast.state is not BroadcastState.writing


async def _locked(session: AsyncSession, broadcast_id: int) -> Broadcast | None:
    statement = select(Broadcast).where(Broadcast.id == broadcast_id).with_for_update()
    return (await session.exec(statement.execution_options(populate_existing=True))).first()


async def _recipients(session: AsyncSession, contact_ids: Sequence[int]) -> list[Recipient]:
    """Each contact's chat: the one they wrote from last (a Telegram and a WhatsApp account:
    the one in use), never one that blocked the bot. Contacts without one are skipped."""
    if not contact_ids:
        return []
    rows = await session.exec(
        select(ChannelIdentity, Contact.language)
        .join(Contact, col(Contact.id) == ChannelIdentity.contact_id)
        .where(
            col(ChannelIdentity.contact_id).in_(list(contact_ids)),
            col(ChannelIdentity.unreachable_since).is_(None),
        )
        .order_by(col(ChannelIdentity.contact_id), col(ChannelIdentity.id))
    )
    best: dict[int, tuple[ChannelIdentity, str]] = {}
    for identity, language in rows.all():
        kept = best.get(identity.contact_id)
        if kept is None or _more_recent(identity, kept[0]):
            best[identity.contact_id] = (identity, language)
    return [
        Recipient(contact_id, language, identity.channel, identity.external_id)
        for contact_id, (identity, language) in sorted(best.items())
    ]


def _more_recent(identity: ChannelIdentity, than: ChannelIdentity) -> bool:
    if identity.last_inbound_at is None:
        return False
    return than.last_inbound_at is None or identity.last_inbound_at > than.last_inbound_at


async def _insert_ignoring_duplicates(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT (idempotency_key) DO NOTHING, in the database's own dialect."""
    if not rows:
        return
    connection = await session.connection()
    table = OutboxMessage.__table__  # type: ignore[attr-defined]  # SQLModel sets it at runtime
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["idempotency_key"])
    await connection.execute(statement, rows)


async def _row_count(session: AsyncSession, broadcast_id: int) -> int:
    statement = select(func.count()).where(OutboxMessage.broadcast_id == broadcast_id)
    return int((await session.exec(statement)).one())


# --- reading back


async def get_broadcast(*, session: AsyncSession, broadcast_id: int) -> Broadcast | None:
    return await session.get(Broadcast, broadcast_id)


async def lock_broadcast(*, session: AsyncSession, broadcast_id: int) -> Broadcast | None:
    """The broadcast, locked for this transaction (progress is reported by one process)."""
    return await _locked(session, broadcast_id)


async def unfinished_broadcast_ids(*, session: AsyncSession) -> list[int]:
    statement = (
        select(Broadcast.id)
        .where(col(Broadcast.state).in_([BroadcastState.writing, BroadcastState.sending]))
        .order_by(col(Broadcast.id))
    )
    return [found for found in (await session.exec(statement)).all() if found is not None]


async def delivery(*, session: AsyncSession, broadcast_id: int) -> Delivery:
    """The broadcast's rows by state, and the reasons of those that failed, most common first."""
    by_status = await session.exec(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.broadcast_id == broadcast_id)
        .group_by(col(OutboxMessage.status))
    )
    counts = {OutboxStatus(status): int(n) for status, n in by_status.all()}
    errors = await session.exec(
        select(OutboxMessage.last_error, func.count())
        .where(
            OutboxMessage.broadcast_id == broadcast_id,
            OutboxMessage.status == OutboxStatus.failed,
        )
        .group_by(col(OutboxMessage.last_error))
        .order_by(func.count().desc())
    )
    sent, failed = counts.get(OutboxStatus.sent, 0), counts.get(OutboxStatus.failed, 0)
    waiting = counts.get(OutboxStatus.pending, 0) + counts.get(OutboxStatus.sending, 0)
    return Delivery(
        total=sent + failed + waiting,
        sent=sent,
        failed=failed,
        waiting=waiting,
        errors=tuple((error or "", int(n)) for error, n in errors.all()),
    )
