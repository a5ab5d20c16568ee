"""Regions, offices, actions and periods are read on nearly every message and change only on an
import: storage.reports keeps them for CACHE_SECONDS. A change shows once that has passed."""

from __future__ import annotations

import pytest

from storage import reports
from storage.db import transaction
from storage.models import Office, Region
from tests.support.factories import make_world


async def test_a_renamed_office_and_rezoned_region_show_after_the_cache_time(
    sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(reports, "clock", lambda: now[0])
    async with transaction(sessions) as session:
        world = await make_world(session)
    office_id, region_id = world.office.id or 0, world.region.id or 0

    async def read() -> tuple[str, str]:
        async with sessions() as session:
            office = await reports.get_office(session=session, office_id=office_id)
            region = await reports.get_region(session=session, region_id=region_id)
        assert office is not None and region is not None
        return office.name, region.timezone

    before = await read()
    async with transaction(sessions) as session:
        office = await session.get(Office, office_id)
        region = await session.get(Region, region_id)
        assert office is not None and region is not None
        office.name, region.timezone = "Dinas Baru", "Asia/Jayapura"

    now[0] += reports.CACHE_SECONDS - 1
    assert await read() == before  # within the cache time: no query, the old values
    now[0] += 2
    assert await read() == ("Dinas Baru", "Asia/Jayapura")
