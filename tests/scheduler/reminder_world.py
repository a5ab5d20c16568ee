"""A small reporting world for the reminder tests: one kota with one office and its focal point,
the kota's coordinator and the province's Kanwil, each reachable on a channel; a period with a
window set by the test."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ChannelIdentity, Contact, Period, Role, Submission, SubmissionStatus
from tests.support.factories import World, make_world

OPENS = date(2025, 8, 18)
DUE = date(2025, 8, 28)


@dataclass
class ReminderWorld:
    world: World
    kanwil: Contact

    @property
    def period(self) -> Period:
        return self.world.period


async def reminder_world(
    session: AsyncSession,
    *,
    timezone: str = "Asia/Jakarta",
    opens_on: date = OPENS,
    due_on: date = DUE,
) -> ReminderWorld:
    world = await make_world(session, timezone=timezone)
    world.period.opens_on, world.period.due_on = opens_on, due_on
    kanwil = Contact(
        name="Kanwil Lampung", phone="+6281200000003", role=Role.kanwil, region_id=world.province.id
    )
    session.add_all([world.period, kanwil])
    await session.flush()
    for contact, external_id in ((world.focal_point, "101"), (world.coordinator, "102"),
                                 (kanwil, "103")):  # fmt: skip
        session.add(
            ChannelIdentity(contact_id=contact.id or 0, channel="telegram", external_id=external_id)
        )
    await session.commit()
    return ReminderWorld(world, kanwil)


async def hand_in(session: AsyncSession, world: World, *, action_ids: list[int]) -> None:
    for action_id in action_ids:
        session.add(
            Submission(
                action_id=action_id,
                office_id=world.office.id or 0,
                period_id=world.period.id or 0,
                status=SubmissionStatus.submitted,
                submitted_at=datetime(2025, 8, 20, 3, 0).astimezone(),
            )
        )
    await session.commit()
