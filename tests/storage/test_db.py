"""SQLite on the event loop's thread: a write lock held by another process is waited for
without stopping the bot, readers never wait, a lock never released ends in an error, and
sqlite3's errors reach the caller as SQLAlchemy's."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage import db
from storage.migrate import upgrade_async


@pytest.fixture
async def sqlite_sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path / 'locks.db'}"
    await upgrade_async(url)
    engine = db.create_engine(url)
    try:
        yield db.session_factory(engine), tmp_path / "locks.db"
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
    sqlite_sessions,
) -> None:
    sessions, path = sqlite_sessions
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def write() -> None:
        async with db.transaction(sessions) as session:
            await session.exec(text("CREATE TABLE written_after_wait (x INTEGER)"))

    with write_lock_held_elsewhere(path) as other:
        ticking = asyncio.create_task(ticker())
        writing = asyncio.create_task(write())
        await asyncio.sleep(0.5)
        assert not writing.done()  # still waiting for the lock...
        assert ticks > 10  # ...and the loop kept running meanwhile
        other.execute("COMMIT")
        await asyncio.wait_for(writing, 5)
        ticking.cancel()

    async with sessions() as session:
        await session.exec(text("SELECT count(*) FROM written_after_wait"))


async def test_a_reader_never_waits_for_a_writer(sqlite_sessions) -> None:
    sessions, path = sqlite_sessions
    with write_lock_held_elsewhere(path):
        async with sessions() as session:  # a plain BEGIN: WAL readers take no lock
            result = await session.exec(text("SELECT count(*) FROM inbox_message"))
            assert result.scalar_one() == 0


async def test_a_lock_never_released_ends_in_an_error(sqlite_sessions, monkeypatch) -> None:
    sessions, path = sqlite_sessions
    monkeypatch.setattr(db, "LOCK_WAIT_SECONDS", 0.3)
    with write_lock_held_elsewhere(path), pytest.raises(db.OperationalError, match="locked"):
        async with db.transaction(sessions):
            pass


async def test_a_sqlite_transaction_ends_without_yielding_to_the_loop(sqlite_sessions) -> None:
    """transaction() closes a SQLite session directly, without SQLAlchemy's cancellation
    shield, because the commit and the close never give the loop a turn: nothing can cancel
    them halfway. If that stops being true (a SQLAlchemy whose adapter yields), this fails."""
    sessions, _ = sqlite_sessions
    turns = 0

    def count_turn() -> None:
        nonlocal turns
        turns += 1

    async with db.transaction(sessions) as session:
        asyncio.get_running_loop().call_soon(count_turn)
        await session.exec(text("CREATE TABLE closed_inline (x INTEGER)"))
        connection = await session.connection()  # Core's path too
        await connection.execute(text("INSERT INTO closed_inline VALUES (1)"))
    assert turns == 0  # statements, commit and close ran without the loop running anything
    await asyncio.sleep(0)
    assert turns == 1
    async with sessions() as session:
        assert (await session.exec(text("SELECT x FROM closed_inline"))).scalar_one() == 1


async def test_a_sqlite_error_is_sqlalchemys_and_the_transaction_writes_nothing(
    sqlite_sessions,
) -> None:
    """The inline adapter hands sqlite3's errors to SQLAlchemy, which raises its own."""
    sessions, _ = sqlite_sessions
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


async def test_core_connection_is_the_transactions_own(sessions) -> None:
    """Cached per transaction: the same within one, a fresh one after commit or rollback."""
    async with sessions() as session:
        first = await db.core_connection(session)
        assert await db.core_connection(session) is first
        assert first.sync_connection is (await session.connection()).sync_connection
        await session.commit()
        second = await db.core_connection(session)
        assert second.sync_connection is (await session.connection()).sync_connection
        await session.rollback()
        third = await db.core_connection(session)
        assert (await third.execute(text("SELECT 1"))).scalar_one() == 1
        assert third.sync_connection is (await session.connection()).sync_connection
