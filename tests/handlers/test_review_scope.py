"""Scope is a security boundary: every role against every region, for the review queue and for
opening or deciding a report (table-driven). Nothing outside a reviewer's scope is listed,
opened or decided, whatever button id is pressed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import review
from storage.db import transaction
from storage.models import (
    Contact,
    Office,
    Region,
    RegionKind,
    ReviewEvent,
    Role,
    Submission,
    SubmissionStatus,
)
from storage.types import utcnow
from tests.support.factories import World, make_world
from tests.support.harness import Harness

Sessions = async_sessionmaker[AsyncSession]

# Regions: two provinces, each with kabupaten/kota. Each has one office with a submitted report.
REGIONS = {
    "P1": ("18", "Lampung", None),
    "A": ("18.71", "Kota Bandar Lampung", "P1"),  # make_world's own city
    "B": ("18.01", "Kabupaten Lampung Selatan", "P1"),
    "P2": ("19", "Kepulauan Bangka Belitung", None),
    "C": ("19.71", "Kota Pangkalpinang", "P2"),
}
ALL = frozenset(REGIONS)


@dataclass(frozen=True)
class Case:
    name: str
    role: Role
    region: str | None
    sees: frozenset[str]
    active: bool = True


CASES = [
    *(Case(f"coordinator {r}", Role.coordinator, r, frozenset({r})) for r in REGIONS),
    Case("kanwil P1", Role.kanwil, "P1", frozenset({"P1", "A", "B"})),
    Case("kanwil P2", Role.kanwil, "P2", frozenset({"P2", "C"})),
    Case("kanwil wrongly at a city", Role.kanwil, "A", frozenset()),
    Case("admin", Role.admin, None, ALL),
    *(Case(f"focal point {r}", Role.focal_point, r, frozenset()) for r in REGIONS),
    Case("inactive coordinator A", Role.coordinator, "A", frozenset(), active=False),
]


@dataclass
class Land:
    world: World
    regions: dict[str, Region]
    offices: dict[str, Office]
    submissions: dict[str, int]  # region label -> submitted report id
    contacts: dict[str, Contact]  # case name -> contact


@pytest.fixture
async def land(sessions: Sessions) -> Land:
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    regions = {"P1": world.province, "A": world.region}
    offices = {"A": world.office}
    async with transaction(sessions) as session:
        for label, (code, name, parent) in REGIONS.items():
            if label in regions:
                continue
            region = Region(
                code=code,
                name=name,
                kind=RegionKind.kabkota if parent else RegionKind.provinsi,
                parent_id=regions[parent].id if parent else None,
            )
            session.add(region)
            await session.flush()
            regions[label] = region
        for label, region in regions.items():
            if label not in offices:
                office = Office(region_id=region.id or 0, code="dinsos", name=f"Dinsos {label}")
                session.add(office)
                await session.flush()
                offices[label] = office
        submissions = {}
        for label, office in offices.items():
            submission = Submission(
                action_id=world.action.id or 0,
                office_id=office.id or 0,
                period_id=world.period.id or 0,
                status=SubmissionStatus.submitted,
                submitted_at=utcnow(),
            )
            session.add(submission)
            await session.flush()
            submissions[label] = submission.id or 0
        contacts = {}
        for n, case in enumerate(CASES):
            region = regions[case.region] if case.region else None
            contact = Contact(
                name=case.name,
                phone=f"+62813{n:08d}",
                role=case.role,
                region_id=region.id if region else None,
                office_id=offices[case.region].id if case.role is Role.focal_point else None,
                active=case.active,
            )
            session.add(contact)
            await session.flush()
            contacts[case.name] = contact
    return Land(world, regions, offices, submissions, contacts)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_queue_and_reviewable_are_exactly_the_scope(
    sessions: Sessions, land: Land, case: Case
) -> None:
    contact = land.contacts[case.name]
    async with sessions() as session:
        page = await review.queue(session=session, contact=contact, page=0, page_size=100)
        listed = {e.submission_id for e in page.entries}
        openable = {
            label
            for label, submission_id in land.submissions.items()
            if await review.reviewable(
                session=session, contact=contact, submission_id=submission_id, lock=True
            )
            is not None
        }
    expected = {land.submissions[label] for label in case.sees}
    assert listed == expected and page.total == len(expected)
    assert openable == case.sees


async def test_every_reviewer_in_the_chat_sees_and_decides_only_their_scope(
    sessions: Sessions, data_dir: Path, land: Land
) -> None:
    """Through the engine: each person's /periksa lists exactly their scope's offices; a forged
    press of any other report's id, tagged like the current prompt's buttons, opens nothing;
    a report in scope opens."""
    h = Harness(sessions, data_dir)
    for n, case in enumerate(CASES):
        if not case.active:
            continue
        h.user = f"9{n:03d}"
        await h.text("halo")
        await h.contact(f"+62813{n:08d}")
        queue = await h.text("/periksa")
        offices = {label for label, office in land.offices.items() if office.name in queue}
        if not case.sees:
            assert "Laporan menunggu pemeriksaan" not in queue and not offices, case.name
            refusal = "hanya untuk koordinator" if case.role is Role.focal_point else "Tidak ada"
            assert refusal in queue, case.name
            continue
        assert offices == case.sees, case.name
        tag = h.last_choices()[0][0].rpartition("#")[2]
        for label, submission_id in land.submissions.items():
            if label in case.sees:
                continue
            reply = await h.press(f"o:{submission_id}#{tag}")
            assert "Tombol itu sudah tidak berlaku" in reply, (case.name, label)
            assert "Periksa:" not in reply
        opened = await h.choose(next(wid for wid, _ in h.last_choices()).rpartition("#")[0])
        assert "Periksa:" in opened, case.name
    async with sessions() as session:
        assert (await session.exec(select(ReviewEvent))).all() == []
        statuses = (await session.exec(select(Submission.status))).all()
    assert set(statuses) == {SubmissionStatus.submitted}


async def test_a_reviewer_moved_out_of_scope_cannot_decide_what_they_opened(
    sessions: Sessions, data_dir: Path, land: Land
) -> None:
    """The scope is checked again at the decision, not only when the report was listed."""
    h = Harness(sessions, data_dir)
    n = next(i for i, case in enumerate(CASES) if case.name == "kanwil P1")
    h.user = "8001"
    await h.text("halo")
    await h.contact(f"+62813{n:08d}")
    await h.text("/periksa")
    await h.choose(f"o:{land.submissions['B']}")
    async with transaction(sessions) as session:
        moved = await session.get(Contact, land.contacts["kanwil P1"].id)
        assert moved is not None
        moved.region_id = land.regions["P2"].id
    reply = await h.choose("approve")
    assert "berubah sejak Anda membukanya" in reply
    async with sessions() as session:
        assert (await session.exec(select(ReviewEvent))).all() == []
