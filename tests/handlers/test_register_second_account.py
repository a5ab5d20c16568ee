"""A second account sharing its own, already-registered number is linked, but not silently:
an audit row and a notice to the region's coordinators (issue #12, item 18)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import AuditLog, OutboxMessage
from tests.support.factories import FOCAL_PHONE, make_world
from tests.support.harness import Harness

Sessions = async_sessionmaker[AsyncSession]


async def test_second_account_is_linked_audited_and_told_to_the_coordinator(
    sessions: Sessions, data_dir: Any
) -> None:
    async with sessions() as session:
        await make_world(session)
        await session.commit()
    coordinator = Harness(sessions, data_dir, user="2002")
    await coordinator.text("halo")
    await coordinator.contact("+6281200000002")
    first = Harness(sessions, data_dir, user="1001")
    await first.text("halo")
    assert "Siti Rahma" in await first.contact(FOCAL_PHONE)

    second = Harness(sessions, data_dir, user="1003")
    await second.text("halo")
    assert "Siti Rahma" in await second.contact(FOCAL_PHONE)

    async with sessions() as session:
        audits = (await session.exec(select(AuditLog))).all()
        notices = [
            row
            for row in (await session.exec(select(OutboxMessage))).all()
            if row.recipient == "2002" and "akun kedua" in str(row.payload.get("text"))
        ]
    assert [a.action for a in audits if a.action == "identity.second_account"] == [
        "identity.second_account"
    ]
    assert len(notices) == 1 and "Siti Rahma" in str(notices[0].payload["text"])
