"""Database fixtures. The suite runs on SQLite by default and on PostgreSQL when
LAPORHAM_TEST_DATABASE_URL is set (.ci/run does both). The schema is built once per run by the
real Alembic migrations; each test then starts from empty tables (tests/support/databases.py
empties only the tables a test wrote, and restarts PostgreSQL's sequences).

Under pytest-xdist (`make test` runs `-n $PYTEST_WORKERS`, 4) every worker has a database of its
own, since each test empties the tables: on SQLite a file in the worker's own temporary
directory; on PostgreSQL `<database>_<worker id>` (<database>_gw0, <database>_gw1...) on the
same server, dropped and created afresh at the start of the session, so rows a crashed earlier
run left behind are gone.
.ci/run drops these databases at the end.

`database_templates` holds a worker's template databases (SQLite files in the worker's temporary
directory, or `<database>_tpl_<name>_<worker id>`): a state several tests start from, built once
by the steps those tests took in their setup, then copied per test (tests/test_cli.py). On
PostgreSQL it also makes the databases single tests get (`<database>_cli_<worker id>_<n>`) and
drops them all together at the end of the session."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.db import create_engine, session_factory
from storage.migrate import upgrade
from tests.support.databases import DatabaseTemplates, empty_tables


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> str:
    """`worker_id` is pytest-xdist's: "gw0", "gw1"... in a worker, "master" without -n."""
    url = os.environ.get("LAPORHAM_TEST_DATABASE_URL")
    if not url:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    elif worker_id != "master":
        url = asyncio.run(fresh_worker_database(make_url(url), worker_id))
    upgrade(url)
    return url


async def fresh_worker_database(base: URL, worker_id: str) -> str:
    """An empty database for this worker beside the base one; the URL to reach it."""
    if base.get_backend_name() != "postgresql" or not base.database:
        raise pytest.UsageError(
            "LAPORHAM_TEST_DATABASE_URL with pytest -n: only a PostgreSQL database can be split "
            "per worker; run without -n"
        )
    worker = base.set(database=f"{base.database}_{worker_id}")
    if len((worker.database or "").encode()) > 63:  # PostgreSQL would cut it: workers would share
        raise pytest.UsageError(f"database name too long for a per-worker copy: {base.database}")
    name = '"' + (worker.database or "").replace('"', '""') + '"'
    # The admin connection goes to the base database: the one the caller is sure exists.
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(admin)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return worker.render_as_string(hide_password=False)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await empty_tables(engine)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def database_templates(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> Iterator[DatabaseTemplates]:
    """This worker's template databases and (PostgreSQL) single tests' databases, dropped
    together at the end."""
    templates = DatabaseTemplates(
        base_url=os.environ.get("LAPORHAM_TEST_DATABASE_URL") or None,
        worker_id=worker_id,
        folder=tmp_path_factory.mktemp("templates"),
    )
    try:
        yield templates
    finally:
        templates.drop_all()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for one test; the test commits (or not) itself."""
    async with sessions() as session:
        yield session


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path
