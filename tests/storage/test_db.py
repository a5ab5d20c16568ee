"""transaction() and SQLite on the stock aiosqlite dialect: a write lock held by another process
is waited for without stopping the bot, readers never wait, a lock never released ends in an
error, a writer holds the lock from its start, savepoints belong to their transaction, and
sqlite3's errors reach the caller as SQLAlchemy's."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import db, inbox
from storage.migrate import upgrade_async
from storage.models import InboxMessage

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> Path:
    path = tmp_path / "locks.db"
    await upgrade_async(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
async def sqlite_engine(sqlite_file: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(f"sqlite+aiosqlite:///{sqlite_file}")
    try:
        yield engine
    finally:
        await engine.dispose()


@contextmanager
def write_lock_held_elsewhere(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's writer, as a CLI import would be: it holds SQLite's write lock."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        other.close()


async def test_a_writer_waits_for_another_process_without_stopping_the_loop(
    sqlite_engine: AsyncEngine, sqlite_file: Path
) -> None:
    sessions = db.session_factory(sqlite_engine)
    waiting = asyncio.Event()

    def before(*_args: Any) -> None:  # the writer's first statement: it waits for the lock
        waiting.set()

    event.listen(sqlite_engine.sync_engine, "before_cursor_execute", before)

    async def write() -> None:
        async with db.transaction(sessions) as session:
            await session.exec(text("CREATE TABLE written_after_wait (x INTEGER)"))

    with write_lock_held_elsewhere(sqlite_file) as other:
        writing = asyncio.create_task(write())
        await waiting.wait()
        for _ in range(50):  # the loop keeps turning while the writer waits for the lock
            await asyncio.sleep(0)
        assert not writing.done()
        other.execute("COMMIT")
        await writing

    async with sessions() as session:
        await session.exec(text("SELECT count(*) FROM written_after_wait"))


async def test_a_reader_never_waits_for_a_writer(
    sqlite_engine: AsyncEngine, sqlite_file: Path
) -> None:
    sessions = db.session_factory(sqlite_engine)
    with write_lock_held_elsewhere(sqlite_file):
        async with sessions() as session:  # a plain BEGIN: WAL readers take no lock
            result = await session.exec(text("SELECT count(*) FROM inbox_message"))
            assert result.scalar_one() == 0


async def test_a_writer_holds_the_lock_from_its_start(
    sqlite_engine: AsyncEngine, sqlite_file: Path
) -> None:
    """A transaction that reads, then writes what it read, can never fail halfway with
    "database is locked": no other writer gets in between."""
    sessions = db.session_factory(sqlite_engine)
    other = sqlite3.connect(sqlite_file, isolation_level=None, timeout=0)
    try:
        async with db.transaction(sessions):
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again after the commit
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_lock_never_released_ends_in_an_error(sqlite_file: Path) -> None:
    engine = db.create_engine(f"sqlite+aiosqlite:///{sqlite_file}", lock_timeout=0.2)
    try:
        sessions = db.session_factory(engine)
        with (
            write_lock_held_elsewhere(sqlite_file),
            pytest.raises(OperationalError, match="locked"),
        ):
            async with db.transaction(sessions):
                pass
    finally:
        await engine.dispose()


async def test_a_sqlite_error_is_sqlalchemys_and_the_transaction_writes_nothing(
    sqlite_engine: AsyncEngine,
) -> None:
    sessions = db.session_factory(sqlite_engine)
    async with db.transaction(sessions) as session:
        await session.exec(text("CREATE TABLE unique_x (x INTEGER PRIMARY KEY)"))
    with pytest.raises(IntegrityError, match="UNIQUE"):
        async with db.transaction(sessions) as session:
            connection = await session.connection()
            await connection.execute(text("INSERT INTO unique_x VALUES (1)"))
            await connection.execute(text("INSERT INTO unique_x VALUES (2), (1)"))
    async with sessions() as session:
        count = (await session.exec(text("SELECT count(*) FROM unique_x"))).scalar_one()
    assert count == 0


# --- on the suite's database (SQLite or PostgreSQL)


async def _inbox_count(sessions: Sessions) -> int:
    async with sessions() as session:
        statement = select(func.count()).select_from(InboxMessage)
        return int((await session.exec(statement)).one())


async def _store(session: AsyncSession, message_id: str) -> bool:
    return await inbox.store_received(
        session=session, channel="console", message_id=message_id, payload={}
    )


async def test_a_savepoint_belongs_to_its_transaction(sessions: Sessions) -> None:
    """A failed savepoint undoes only its own part; a released one is undone with the rest."""
    async with db.transaction(sessions) as session:
        assert await _store(session, "kept")
        assert not await _store(session, "kept")  # the duplicate's savepoint rolled back alone
    assert await _inbox_count(sessions) == 1

    with pytest.raises(RuntimeError):
        async with db.transaction(sessions) as session:
            assert await _store(session, "undone")  # its savepoint released...
            raise RuntimeError("the turn failed")
    assert await _inbox_count(sessions) == 1  # ...and rolled back with the transaction
