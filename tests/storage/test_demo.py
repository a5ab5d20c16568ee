from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func
from sqlmodel import select

from storage.demo import DEMO_FOCAL_POINT_PHONE, nearest_period, seed_demo
from storage.models import (
    Action,
    Assignment,
    Contact,
    Measure,
    Office,
    Period,
    Programme,
    Region,
    RegionKind,
    Role,
)

TODAY = date(2026, 7, 20)


async def count(session, query) -> int:
    return (await session.exec(query)).one()


async def test_seed_demo_fills_an_empty_database_once(session) -> None:
    assert await seed_demo(session=session, today=TODAY) is True
    await session.commit()

    regions = select(func.count()).select_from(Region)
    assert await count(session, regions.where(Region.kind == RegionKind.provinsi)) == 2
    assert await count(session, regions.where(Region.kind == RegionKind.kabkota)) == 22
    assert await count(session, select(func.count()).select_from(Programme)) == 2

    open_periods = (
        await session.exec(select(Period).where(Period.opens_on <= TODAY, Period.due_on >= TODAY))
    ).all()
    assert [p.code for p in open_periods] == ["B08"]
    assert open_periods[0].opens_on == TODAY - timedelta(days=3)
    assert open_periods[0].due_on == TODAY + timedelta(days=4)

    assert await seed_demo(session=session, today=TODAY) is False


async def test_the_demo_focal_point_has_work_in_the_open_period(session) -> None:
    await seed_demo(session=session, today=TODAY)
    contact = (
        await session.exec(select(Contact).where(Contact.phone == DEMO_FOCAL_POINT_PHONE))
    ).one()
    assert contact.role is Role.focal_point
    office = await session.get(Office, contact.office_id)
    region = await session.get(Region, office.region_id)
    assert (region.code, office.name) == ("18.71", "Dinas Koperasi dan UMKM")
    measures = (
        await session.exec(
            select(Measure.code)
            .join(Action, Action.id == Measure.action_id)
            .join(Assignment, Assignment.action_id == Action.id)
            .join(Period, Period.id == Measure.period_id)
            .where(Assignment.office_id == office.id, Period.code == "B08")
        )
    ).all()
    assert sorted(measures) == ["B08-1", "B08-2"]


async def test_every_role_has_a_demo_contact(session) -> None:
    await seed_demo(session=session, today=TODAY)
    roles = set((await session.exec(select(Contact.role))).all())
    assert roles == set(Role)


@pytest.mark.parametrize(
    ("month", "period"),
    [(1, "B12"), (2, "B04"), (4, "B04"), (5, "B04"), (6, "B08"), (9, "B08"), (10, "B12")],
)
def test_nearest_period_counts_around_the_year(month: int, period: str) -> None:
    assert nearest_period(date(2026, month, 15)) == period
