"""Labels of a contact's role and scope, shared by the welcome, help and status texts."""

from __future__ import annotations

from bot.engine.turn import Turn
from storage import reports
from storage.models import Contact, Role


async def scope_label(turn: Turn, contact: Contact) -> str:
    """The office and region a contact reports for or oversees, in words: an admin has no
    region of their own but sees all of them."""
    parts = []
    if contact.office_id:
        office = await reports.get_office(session=turn.session, office_id=contact.office_id)
        parts.append(office.name if office else "")
    if contact.region_id:
        region = await reports.get_region(session=turn.session, region_id=contact.region_id)
        parts.append(region.name if region else "")
    label = ", ".join(part for part in parts if part)
    if label:
        return label
    return turn.text("scope.everywhere" if contact.role is Role.admin else "scope.unknown")


def role_label(turn: Turn, contact: Contact) -> str:
    return turn.text(f"role.{contact.role.value}")
