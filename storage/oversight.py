"""Region-level figures for coordinators and the Kanwil, always scoped by role and region
(docs/contacts.md, "What each role needs"). Every query here starts from `scope_region_ids`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    Action,
    Assignment,
    Contact,
    Measure,
    Office,
    Period,
    Region,
    RegionKind,
    Role,
    Submission,
    SubmissionStatus,
)
from storage.periods import window


@dataclass(frozen=True)
class RegionStatus:
    region_name: str
    period_title: str
    submitted: int
    expected: int


async def scope_region_ids(*, session: AsyncSession, contact: Contact) -> list[int]:
    """The regions a contact may see: none for a focal point (they see their office only)."""
    if contact.role is Role.admin:
        found = await session.exec(select(Region.id))
        return [region_id for region_id in found.all() if region_id is not None]
    if contact.role is Role.focal_point or contact.region_id is None:
        return []
    region = await session.get(Region, contact.region_id)
    if region is None:
        return []
    ids = [region.id or 0]
    if region.kind is RegionKind.provinsi and contact.role in {Role.coordinator, Role.kanwil}:
        children = await session.exec(select(Region.id).where(Region.parent_id == region.id))
        ids += [child for child in children.all() if child is not None]
    return ids


async def status_counts(
    *, session: AsyncSession, contact: Contact, now: datetime
) -> list[RegionStatus]:
    region_ids = await scope_region_ids(session=session, contact=contact)
    if not region_ids:
        return []
    regions = (
        await session.exec(
            select(Region).where(col(Region.id).in_(region_ids)).order_by(col(Region.code))
        )
    ).all()
    periods = (
        await session.exec(
            select(Period).where(col(Period.opens_on).is_not(None), col(Period.due_on).is_not(None))
        )
    ).all()
    result = []
    for region in regions:
        for period in periods:
            opens_on, due_on = period.opens_on, period.due_on
            if opens_on is None or due_on is None:  # never: the query keeps dated periods only
                continue
            if not window(opens_on, due_on, region.timezone).is_open(now):
                continue
            expected, submitted = await _counts(session, region.id or 0, period.id or 0)
            if expected:
                result.append(RegionStatus(region.name, period.title, submitted, expected))
    return result


async def _counts(session: AsyncSession, region_id: int, period_id: int) -> tuple[int, int]:
    """(assigned action x office pairs due in the period, how many of them are submitted)."""
    due = (
        select(Assignment.action_id, Assignment.office_id)
        .join(Office, col(Office.id) == Assignment.office_id)
        .join(Action, col(Action.id) == Assignment.action_id)
        .where(
            Office.region_id == region_id,
            col(Action.id).in_(select(Measure.action_id).where(Measure.period_id == period_id)),
        )
        .subquery()
    )
    expected = (await session.exec(select(func.count()).select_from(due))).one()
    submitted = (
        await session.exec(
            select(func.count())
            .select_from(Submission)
            .join(
                due,
                (due.c.action_id == Submission.action_id)
                & (due.c.office_id == Submission.office_id),
            )
            .where(
                Submission.period_id == period_id,
                col(Submission.status).in_([SubmissionStatus.submitted, SubmissionStatus.approved]),
            )
        )
    ).one()
    return int(expected), int(submitted)
