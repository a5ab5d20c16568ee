"""Engine and session factory. The caller owns the transaction: storage functions never commit.

SQLite runs on SQLAlchemy's aiosqlite dialect as shipped: each statement goes to aiosqlite's
worker thread, so a slow statement or a wait for SQLite's lock never stops the event loop.
Transactions follow the dialect documentation's recipe ("Serializable isolation / Savepoints /
Transactional DDL"): the driver's own BEGIN is switched off and a "begin" event emits ours, so
that SELECTs and SAVEPOINTs belong to the transaction. A writer's BEGIN takes the write lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.files import private_directory, private_file

# SQLite: how long a writer waits for the write lock another connection or process (a CLI
# import) holds before "database is locked". The wait is SQLite's busy handler, in aiosqlite's
# worker thread: the event loop keeps running meanwhile.
LOCK_TIMEOUT_SECONDS = 30.0
WRITER = "laporham_writer"  # execution option: this connection's BEGIN takes the write lock
# PostgreSQL error classes worth a retry: connection exceptions (08), the server shutting down or
# starting (57P01-57P03), too many connections (53300), and a serialisation failure or deadlock
# (40001, 40P01), which the server itself asks the client to retry.
# Between two batches of a long write: longer than the longest sleep of SQLite's busy handler
# (100 ms), so a writer waiting for the lock wakes up within the pause and takes it.
BATCH_PAUSE_SECONDS = 0.15
TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P0", "53300", "40001", "40P01")


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_transient(error: BaseException) -> bool:
    """Whether a database error may pass if the same work is tried again: a lost or refused
    connection, a server restart, SQLite's "database is locked" after its busy timeout, a pool
    timeout, a serialisation failure. A bug (a wrong column, a broken constraint) is not."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, sa_exc.OperationalError):
            return True
        sqlstate = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        return isinstance(sqlstate, str) and sqlstate.startswith(TRANSIENT_SQLSTATE_PREFIXES)
    # A pool with no free connection, a pool told the connection is gone, or a refused
    # connection that the driver raises unwrapped (asyncpg while the server is down).
    return isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError | ConnectionError)


def _prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        path = Path(database)
        private_directory(path.parent)
        # SQLite gives its -wal and -shm files the main file's permissions: create it private
        # before SQLite does. Companions left by an older version are made private too.
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if file is path or file.exists():
                private_file(file)


def _sqlite_connect(
    dbapi_connection: Any, _record: ConnectionPoolEntry, *, lock_timeout: float
) -> None:
    # The driver emits no BEGIN of its own: _sqlite_begin does (the documented recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer. FULL: every commit is fsynced before it
    # returns, because a webhook is acknowledged (and never resent) right after its commit;
    # NORMAL could lose the last commits to a power cut.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={round(lock_timeout * 1000)}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the write lock at BEGIN: a read-then-write transaction can then never
    # fail halfway with "database is locked" when another writer got there first. Readers take
    # no lock at all in WAL mode, and never wait for one.
    writer = conn.get_execution_options().get(WRITER, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def create_engine(
    url: str, *, echo: bool = False, lock_timeout: float = LOCK_TIMEOUT_SECONDS
) -> AsyncEngine:
    if not is_sqlite(url):
        return create_async_engine(
            url,
            echo=echo,
            hide_parameters=True,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
        )
    _prepare_sqlite_file(url)
    engine = create_async_engine(url, echo=echo, hide_parameters=True)
    connect = partial(_sqlite_connect, lock_timeout=lock_timeout)
    event.listen(engine.sync_engine, "connect", connect)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


async def ping(engine: AsyncEngine) -> None:
    """Raises unless the database answers a trivial query (/healthz; the caller bounds the time)."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends, rolls back on any exception.

    It begins at once, as a writer: on SQLite that waits for the write lock (up to the
    engine's lock timeout, then OperationalError "database is locked")."""
    async with sessions() as session:
        try:
            await session.connection(execution_options={WRITER: True})
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


Checkpoint = Callable[[], Awaitable[None]]


@asynccontextmanager
async def batched_writes(
    sessions: async_sessionmaker[AsyncSession],
    *,
    pause: float = BATCH_PAUSE_SECONDS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[tuple[AsyncSession, Checkpoint]]:
    """A long write (an import) as a series of short transactions, so that it never holds
    SQLite's write lock (or PostgreSQL's row locks) for long while the bot runs.

    It begins as a reader (reading takes no lock). Each call of the checkpoint commits what was
    written so far, pauses so that a writer waiting in SQLite's busy handler (which polls, and
    would otherwise lose the race for the lock every time) gets its turn, and begins the next
    transaction as a writer. The block's end commits the last batch; an exception rolls back
    only the batch in hand. The work must be idempotent (the importers' upserts are), so that
    running it again after a crash completes it."""
    async with sessions() as session:

        async def checkpoint() -> None:
            await session.commit()
            await sleep(pause)
            await session.connection(execution_options={WRITER: True})

        try:
            yield session, checkpoint
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


async def empty_all_tables(engine: AsyncEngine) -> None:
    """Delete every row, children first. For tests, never for production data."""
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401  (registers every table)

    tables = list(reversed(SQLModel.metadata.sorted_tables))
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in tables)
            await conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        else:
            # Regions reference their province: check foreign keys only at the end.
            await conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            for table in tables:
                await conn.execute(table.delete())
