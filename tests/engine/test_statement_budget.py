"""How many SQL statements the engine runs per handled message, on the benchmark's journey.

Every statement through async SQLAlchemy costs CPU (~0.7 ms on a small server), and statements
are the biggest cost of handling a message. A change that quietly adds a query per message (an
autoflush of the state row, a region read twice) passes every behaviour test, so this test
counts them. It counts statements, never time: the figures are the same on any machine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.engine.events import Inbound
from storage.models import Assignment, Contact, Office, Role
from tests.support.factories import FOCAL_PHONE, make_world
from tests.support.harness import Harness, jpeg_bytes

SECOND_PHONE = "+6281200000009"

# Statements per handled message, the outbox sender's not counted. Measured, on SQLite and
# PostgreSQL alike: 5, 7, 6, 7, 8, 8, 6, 9; each budget is that figure plus one. Every message
# pays for: claiming the inbox id, one SELECT of the locked state with identity and contact,
# one write of the state, one INSERT of the replies. Raising a figure costs every message of
# every user: find the new query first (the failure lists the statements).
BUDGET = {
    "halo": 6,  # + the identity looked up separately and the state INSERTed (a new user)
    # + contact by phone, the identity, the office for the welcome (offices and regions are
    # cached for a minute: the first user of this office reads it)
    "share contact": 8,
    "/lapor": 7,  # + open periods, the office's actions
    "tap action": 8,  # + assigned action, the report created (SELECT FOR UPDATE, INSERT)
    "25": 9,  # + the report, its answers, the answer, the report's updated_at
    "tap Ya": 9,
    "tap Lewati": 7,  # + the report, evidence counts for the prompt
    "photo": 10,  # + a look before the download, the report, the file, updated_at, counts
}


@contextmanager
def counting(engine: AsyncEngine, into: list[str]) -> Iterator[None]:
    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # SQLite's BEGIN IMMEDIATE goes through the cursor too; PostgreSQL's BEGIN does not.
        if not statement.startswith("BEGIN"):
            into.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", before)


async def _second_office(sessions, world) -> None:
    """A second focal point in an office of its own, so that its report starts empty too."""
    async with sessions() as session:
        office = Office(region_id=world.region.id, code="sosial", name="Dinas Sosial")
        session.add(office)
        await session.flush()
        session.add_all(
            [
                Assignment(action_id=world.action.id, office_id=office.id),
                Contact(
                    name="Rina",
                    phone=SECOND_PHONE,
                    role=Role.focal_point,
                    region_id=world.region.id,
                    office_id=office.id,
                ),
            ]
        )
        await session.commit()


Send = Callable[[Harness], Awaitable[object]]


def _journey(action_id: int, phone: str) -> list[tuple[str, Send]]:
    return [
        ("halo", lambda h: h.text("halo")),
        ("share contact", lambda h: h.contact(phone)),
        ("/lapor", lambda h: h.text("/lapor")),
        ("tap action", lambda h: h.choose(f"a:{action_id}")),
        ("25", lambda h: h.text("25")),
        ("tap Ya", lambda h: h.choose("yes")),
        ("tap Lewati", lambda h: h.choose("skip")),
        ("photo", lambda h: h.file(jpeg_bytes(), "kegiatan.jpg", photo=True)),
    ]


async def _walk(
    h: Harness, engine: AsyncEngine, action_id: int, phone: str
) -> dict[str, list[str]]:
    """The journey; for each step, the statements of the engine's handling only (the harness
    runs the outbox sender too, which is not counted)."""
    seen: dict[str, list[str]] = {}
    handle = h.engine.handle
    for name, send in _journey(action_id, phone):
        statements = seen[name] = []

        async def counted(event: Inbound, statements: list[str] = statements) -> bool:
            with counting(engine, statements):
                return await handle(event)

        h.engine.handle = counted  # type: ignore[method-assign]
        await send(h)
    h.engine.handle = handle  # type: ignore[method-assign]
    return seen


async def test_statements_per_message_stay_within_budget(engine, sessions, data_dir) -> None:
    async with sessions() as session:
        world = await make_world(session)
        await session.commit()
    await _second_office(sessions, world)
    action_id = world.action.id or 0
    # The first user warms what is cached per process (the walk of the action), as in a
    # running bot; the second user's journey is the one counted.
    await _walk(Harness(sessions, data_dir, user="2001"), engine, action_id, FOCAL_PHONE)
    h = Harness(sessions, data_dir, user="2002")
    seen = await _walk(h, engine, action_id, SECOND_PHONE)
    assert "Diterima: kegiatan.jpg" in h.channel.texts()[-1]  # the journey went as planned

    counts = {name: len(statements) for name, statements in seen.items()}
    print("statements per step:", counts)
    over = {name: (counts[name], BUDGET[name]) for name in BUDGET if counts[name] > BUDGET[name]}
    listing = "\n".join(
        f"{name}:\n" + "\n".join(f"  {sql[:160]}" for sql in seen[name]) for name in over
    )
    assert not over, (
        f"SQL statements per handled message over budget, (counted, budget): {over}. Each "
        "statement costs ~0.7 ms of CPU on every message of every user: find the new query "
        f"rather than raising the budget.\n{listing}"
    )
