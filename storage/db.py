"""Engine and session factory. The caller owns the transaction: storage functions never commit."""

from __future__ import annotations

import asyncio
import collections
import sqlite3
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import aiosqlite
from sqlalchemy import event
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection, AsyncAdapt_dbapi_cursor
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_
from sqlmodel.ext.asyncio.session import AsyncSession

# SQLite: how long its busy handler may hold the event loop, and how long a writer waits, in
# all, for a lock another process holds.
BUSY_TIMEOUT_MS = 50
LOCK_RETRY_SECONDS = 0.05
LOCK_WAIT_SECONDS = 30.0
WRITER = "laporham_writer"  # execution option: this connection's BEGIN takes the write lock


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer. The busy timeout is short because SQLite
    # runs on the event loop's thread (see InlineSQLiteConnection): its busy handler would stop
    # the whole bot while it waits. transaction() waits for the lock asynchronously instead.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # pysqlite's own transaction handling is disabled so that BEGIN below is ours.
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # A writer takes the write lock at BEGIN: a read-then-write transaction can then never
    # fail halfway with "database is locked" when another writer got there first. Readers take
    # no lock at all in WAL mode, and never wait for one.
    begin = "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITER) else "BEGIN"
    # Straight on sqlite3's connection (InlineSQLiteConnection wraps it anyway): a BEGIN
    # through SQLAlchemy's statement machinery cost a quarter of an empty transaction.
    try:
        conn.connection.driver_connection.execute(begin)
    except sqlite3.OperationalError as error:  # "database is locked": as SQLAlchemy raises it
        raise OperationalError(begin, None, error) from error


async def _nothing() -> None:
    return None


class InlineSQLiteCursor(AsyncAdapt_dbapi_cursor):
    """A sqlite3 cursor, called directly on the event loop's thread.

    SQLAlchemy's aiosqlite adapter turns each statement into three awaits (open the cursor,
    execute and fetch, close), each a chain of coroutines through aiosqlite to its worker
    thread. A statement of this bot takes SQLite microseconds; the adapter around it took three
    times what SQLAlchemy itself spends on the statement. Here the calls are plain sqlite3
    calls, and all rows are fetched at once as the aiosqlite adapter does.
    What it costs: a slow statement blocks the loop while it runs, so nothing here may scan big
    tables (exports will get their own thread), and lock waits must not happen in SQLite's busy
    handler (see BUSY_TIMEOUT_MS and transaction()).
    """

    __slots__ = ()
    _awaitable_cursor_close = False  # close() calls sqlite3's close directly

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = self._connection.cursor()
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        result = self._cursor.execute(operation, () if parameters is None else parameters)
        if self._cursor.description:
            self._rows = collections.deque(self._cursor.fetchall())
        _awaited()
        return result

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        result = self._cursor.executemany(operation, seq_of_parameters)
        _awaited()
        return result


def _awaited() -> None:
    """SQLAlchemy's AsyncConnection.execute checks that the driver awaited something (to catch
    a sync driver used by mistake): one await that completes at once, without yielding."""
    await_(_nothing())


class InlineSQLiteConnection(AsyncAdapt_dbapi_connection):
    """A sqlite3 connection as SQLAlchemy's asyncio engine expects a driver's connection to be,
    with every call made directly (see InlineSQLiteCursor)."""

    __slots__ = ()
    _cursor_cls = InlineSQLiteCursor
    _ss_cursor_cls = InlineSQLiteCursor  # nothing streams; a stream gets its rows at once

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level  # type: ignore[no-any-return]

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection.isolation_level = value

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._connection.create_function(*args, **kwargs)

    def commit(self) -> None:
        self._connection.commit()

    def rollback(self) -> None:
        self._connection.rollback()

    def close(self) -> None:
        self._connection.close()


class InlineSQLiteDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module SQLAlchemy's aiosqlite dialect gets (`module=`): its names and errors
    are aiosqlite's, which are sqlite3's; its connections are InlineSQLiteConnection."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.has_stop = False  # no worker thread to stop: closing is enough

    def connect(self, *args: Any, **kwargs: Any) -> InlineSQLiteConnection:
        return InlineSQLiteConnection(self, sqlite3.connect(*args, **kwargs))


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    if is_sqlite(url):
        _prepare_sqlite_file(url)
        engine = create_async_engine(url, echo=echo, module=InlineSQLiteDBAPI())
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


_CORE_CONNECTION = "laporham_core_connection"  # session.info key: (transaction, connection)


async def core_connection(session: AsyncSession) -> AsyncConnection:
    """The session's connection, for Core statements. Looked up once per transaction: each
    AsyncSession.connection() is a trip through a greenlet into the session's transaction
    bookkeeping, and a message runs several Core statements."""
    transaction = session.sync_session.get_transaction()
    cached = session.info.get(_CORE_CONNECTION)
    if transaction is not None and transaction.is_active and cached and cached[0] is transaction:
        return cast(AsyncConnection, cached[1])
    connection = await session.connection()
    _remember_core_connection(session, connection)
    return connection


def _remember_core_connection(session: AsyncSession, connection: AsyncConnection) -> None:
    session.info[_CORE_CONNECTION] = (session.sync_session.get_transaction(), connection)


# SQLite has one writer. Queueing writers on an asyncio lock is fairer and faster than letting
# them spin in SQLite's busy handler (which sleeps and retries, and makes tail latency long).
_sqlite_writers: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def _writer_lock(sessions: async_sessionmaker[AsyncSession]) -> asyncio.Lock | None:
    bind = sessions.kw.get("bind")
    if bind is None or bind.dialect.name != "sqlite":
        return None
    lock = _sqlite_writers.get(bind.sync_engine)
    if lock is None:
        lock = _sqlite_writers[bind.sync_engine] = asyncio.Lock()
    return lock


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends, rolls back on any exception."""
    lock = _writer_lock(sessions)
    if lock is None:
        async with sessions() as session:
            try:
                yield session
            except BaseException:
                await session.rollback()
                raise
            await session.commit()
        return
    async with lock:
        session = await _begin_writing(sessions)
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()
        finally:
            # Not `async with session`: its exit runs close() in a task of its own, so that a
            # cancellation cannot cut it short, at two turns of the event loop per transaction.
            # SQLite's calls run inline (InlineSQLiteConnection), so close() never yields and
            # cannot be cut short anyway.
            await session.close()


async def _begin_writing(sessions: async_sessionmaker[AsyncSession]) -> AsyncSession:
    """A SQLite session holding the write lock. Another process (a CLI import) may hold it:
    wait for it here, asynchronously, so the rest of the bot keeps running."""
    waited = 0.0
    while True:
        session = sessions()
        try:
            connection = await session.connection(execution_options={WRITER: True})
            _remember_core_connection(session, connection)
            return session
        except OperationalError as error:
            await session.close()
            if "locked" not in str(error) or waited >= LOCK_WAIT_SECONDS:
                raise
        await asyncio.sleep(LOCK_RETRY_SECONDS)
        waited += LOCK_RETRY_SECONDS + BUSY_TIMEOUT_MS / 1000


async def empty_all_tables(engine: AsyncEngine) -> None:
    """Delete every row, children first. For tests and `demo --reset`, never for production data."""
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
