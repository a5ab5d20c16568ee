"""A broadcast's world: the Kanwil of Lampung, focal points of two offices of Kota Bandar
Lampung (one office has submitted, one has not), Lampung's coordinator, and a focal point of
another province the Kanwil must never reach. Everyone but the Kanwil has a Telegram chat."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.channel import Channel
from storage.models import (
    Assignment,
    ChannelIdentity,
    Contact,
    Office,
    Region,
    RegionKind,
    Role,
    Submission,
    SubmissionStatus,
)
from tests.support.factories import World, make_world

KANWIL_PHONE = "+6281200000009"
ADMIN_PHONE = "+6281200000010"


@dataclass
class Audience:
    world: World
    kanwil: Contact
    admin: Contact
    other_province: Region
    other_region: Region
    outsider: Contact  # a focal point of the other province
    submitted_office: Office
    submitted_focal: Contact
    focal_chats: dict[int, str]  # contact id -> Telegram chat id, the province's focal points


async def make_audience(session: AsyncSession, *, extra_focal_points: int = 0) -> Audience:
    world = await make_world(session)
    kanwil = Contact(
        name="Kanwil Lampung", phone=KANWIL_PHONE, role=Role.kanwil, region_id=world.province.id
    )
    admin = Contact(name="Admin Pusat", phone=ADMIN_PHONE, role=Role.admin)
    other_province = Region(code="19", name="Kepulauan Bangka Belitung", kind=RegionKind.provinsi)
    session.add_all([kanwil, admin, other_province])
    await session.flush()
    other_region = Region(
        code="19.71",
        name="Kota Pangkalpinang",
        kind=RegionKind.kabkota,
        parent_id=other_province.id,
    )
    submitted_office = Office(region_id=world.region.id or 0, code="sosial", name="Dinas Sosial")
    session.add_all([other_region, submitted_office])
    await session.flush()
    other_office = Office(region_id=other_region.id or 0, code="sosial", name="Dinas Sosial")
    session.add(other_office)
    await session.flush()
    outsider = Contact(
        name="Rina Babel",
        phone="+6281300000001",
        role=Role.focal_point,
        region_id=other_region.id,
        office_id=other_office.id,
    )
    submitted_focal = Contact(
        name="Dewi Sosial",
        phone="+6281200000003",
        role=Role.focal_point,
        region_id=world.region.id,
        office_id=submitted_office.id,
    )
    extras = [
        Contact(
            name=f"Focal {n}",
            phone=f"+62812100{n:05d}",
            role=Role.focal_point,
            region_id=world.region.id,
            office_id=world.office.id,
        )
        for n in range(extra_focal_points)
    ]
    session.add_all([outsider, submitted_focal, *extras])
    await session.flush()
    # The submitted office owes nothing for the open period: both actions are in.
    for action in (world.action, world.second_action):
        session.add(Assignment(action_id=action.id or 0, office_id=submitted_office.id or 0))
        session.add(
            Submission(
                action_id=action.id or 0,
                office_id=submitted_office.id or 0,
                period_id=world.period.id or 0,
                status=SubmissionStatus.submitted,
            )
        )
    focal_points = [world.focal_point, submitted_focal, *extras]
    chats = {contact.id or 0: str(700_000 + (contact.id or 0)) for contact in focal_points}
    for contact in [*focal_points, world.coordinator, outsider]:
        chat = chats.get(contact.id or 0, str(700_000 + (contact.id or 0)))
        session.add(
            ChannelIdentity(contact_id=contact.id or 0, channel=Channel.telegram, external_id=chat)
        )
    await session.flush()
    return Audience(
        world=world,
        kanwil=kanwil,
        admin=admin,
        other_province=other_province,
        other_region=other_region,
        outsider=outsider,
        submitted_office=submitted_office,
        submitted_focal=submitted_focal,
        focal_chats=chats,
    )


def chat_of(contact: Contact) -> str:
    return str(700_000 + (contact.id or 0))
