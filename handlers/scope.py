"""Labels of a contact's role and scope, shared by the welcome, help and status texts."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.engine.turn import Turn
from storage import reports
from storage.models import Contact


async def scope_label(session: AsyncSession, contact: Contact) -> str:
    parts = []
    if contact.office_id:
        office = await reports.get_office(session=session, office_id=contact.office_id)
        parts.append(office.name if office else "")
    if contact.region_id:
        region = await reports.get_region(session=session, region_id=contact.region_id)
        parts.append(region.name if region else "")
    return ", ".join(part for part in parts if part) or "-"


def role_label(turn: Turn, contact: Contact) -> str:
    return turn.text(f"role.{contact.role.value}")
