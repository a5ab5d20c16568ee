"""Test databases made quickly: empty tables without TRUNCATE, and per-worker template
databases copied per test instead of migrated (and seeded) per test.

Both are speed only; what a test starts from is the same as before:
- `empty_tables` leaves every table empty and, on PostgreSQL, every sequence at its start, as
  `TRUNCATE ... RESTART IDENTITY CASCADE` of every table did. TRUNCATE cost PostgreSQL 0.3-0.7 s
  per test on a loaded two-core machine (it replaces each table's files); most tests write a
  handful of tables, and a DELETE of a few rows costs about a millisecond.
- `DatabaseTemplates` builds a database once per pytest-xdist worker by the same steps a test's
  setup took (a migration, CLI imports) and copies it for each test that asks: a SQLite file
  copied through SQLite's backup API (the write-ahead log included, so nothing is left behind
  in a -wal file), or on PostgreSQL `CREATE DATABASE ... TEMPLATE`."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy import Table
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# PostgreSQL cuts longer names: two workers' copies would then share one database.
POSTGRES_NAME_LIMIT = 63


def tables_children_first() -> list[Table]:
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401  (registers every table)

    return list(reversed(SQLModel.metadata.sorted_tables))


async def empty_tables(engine: AsyncEngine) -> None:
    """Delete every row, children first, and restart PostgreSQL's sequences: the state
    storage.db.empty_all_tables leaves, reached by deleting only from tables that have rows."""
    tables = tables_children_first()
    async with engine.begin() as conn:
        filled = await tables_with_rows(conn, tables)
        if conn.dialect.name == "sqlite":
            # Regions reference their province: check foreign keys only at the end.
            await conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        for table in tables:
            if table.name in filled:
                await conn.execute(table.delete())
        if conn.dialect.name == "postgresql":
            # What RESTART IDENTITY did: every used sequence starts again (ids from 1; tests
            # read "Siaran #1" and the like). An unused one has no last_value.
            await conn.exec_driver_sql(
                "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass,"
                " start_value, false) FROM pg_sequences"
                " WHERE schemaname = current_schema() AND last_value IS NOT NULL"
            )


async def tables_with_rows(conn: AsyncConnection, tables: list[Table]) -> set[str]:
    """The names of the tables holding at least one row, in one round trip."""
    quote = conn.dialect.identifier_preparer.quote
    probes = " UNION ALL ".join(
        f"SELECT '{table.name}' FROM (SELECT 1 FROM {quote(table.name)} LIMIT 1) AS probe{n}"
        for n, table in enumerate(tables)
    )
    return {str(row[0]) for row in await conn.exec_driver_sql(probes)}


@dataclass(frozen=True)
class Place:
    """Where one database lives: its URL and its data folder (evidence files and the like)."""

    url: str
    data_dir: Path


Builder = Callable[[Place], None]


@dataclass
class DatabaseTemplates:
    """Template databases of one pytest-xdist worker, each built on first use, and on
    PostgreSQL the databases made for single tests (`new_postgres_database`).

    `base_url` is LAPORHAM_TEST_DATABASE_URL (PostgreSQL: the databases are beside it, named
    after it, their use and the worker) or None (SQLite: files in `folder`)."""

    base_url: str | None
    worker_id: str
    folder: Path
    built: dict[str, Place] = field(default_factory=dict)
    made: list[str] = field(default_factory=list)

    def new_postgres_database(self, label: str, *, create: bool = True) -> str:
        """The URL of a database of its own for one test (made empty, or not at all when the
        test copies a template there). None is dropped before the session ends: each DROP
        DATABASE waits for a checkpoint of the whole server (seconds on a busy shared one),
        while `drop_all` drops them together, their checkpoint requests met by the same few."""
        url = self.postgres_url(f"{label}_{self.worker_id}_{len(self.made)}")
        self.made.append(url)
        self.drop(url)  # one a crashed run left behind; nothing to drop otherwise
        if create:
            asyncio.run(postgres_admin(url, f"CREATE DATABASE {quoted(url)}"))
        return url

    def drop_all(self) -> None:
        """Every database made (PostgreSQL), at once; SQLite's files go with their folders."""
        urls = [*self.made, *(place.url for place in self.built.values())]
        statements = [
            postgres_admin(url, f"DROP DATABASE IF EXISTS {quoted(url)} WITH (FORCE)")
            for url in urls
            if is_postgres(url)
        ]

        async def together() -> None:
            await asyncio.gather(*statements)

        asyncio.run(together())

    def template(self, name: str, build: Builder, *, start_from: str | None = None) -> Place:
        """The template `name`: on first use a copy of the template `start_from` (an empty
        database when None) that `build` then brings to its state."""
        if name not in self.built:
            place = self.place_for(name)
            if start_from is None:
                self.drop(place.url)
                if self.base_url:
                    asyncio.run(postgres_admin(place.url, f"CREATE DATABASE {quoted(place.url)}"))
            else:
                self.copy_place(self.built[start_from], place)
            place.data_dir.mkdir(parents=True, exist_ok=True)
            build(place)
            self.built[name] = place
        return self.built[name]

    def copy(self, name: str, target: Place) -> None:
        """Replace the database at `target` (existing or not) by a copy of the built template
        `name`, and its data folder's content too."""
        self.copy_place(self.built[name], target)

    def place_for(self, name: str) -> Place:
        data_dir = self.folder / name / "data"
        if not self.base_url:
            path = self.folder / name / "template.db"
            path.parent.mkdir(parents=True, exist_ok=True)
            return Place(f"sqlite+aiosqlite:///{path}", data_dir)
        return Place(self.postgres_url(f"tpl_{name}_{self.worker_id}"), data_dir)

    def postgres_url(self, suffix: str) -> str:
        """The URL of the database named after LAPORHAM_TEST_DATABASE_URL's and `suffix`
        (.ci/run drops every `<its database>_*` at the end)."""
        base = make_url(self.base_url or "")
        database = f"{base.database}_{suffix}"
        if len(database.encode()) > POSTGRES_NAME_LIMIT:
            raise ValueError(f"database name too long for a test's copy: {database}")
        return base.set(database=database).render_as_string(hide_password=False)

    def copy_place(self, source: Place, target: Place) -> None:
        if is_postgres(target.url):
            # The template must have no connection open: the builders dispose of theirs.
            self.drop(target.url)
            statement = f"CREATE DATABASE {quoted(target.url)} TEMPLATE {quoted(source.url)}"
            asyncio.run(postgres_admin(target.url, statement))
        else:
            copy_sqlite(sqlite_path(source.url), sqlite_path(target.url))
        shutil.copytree(source.data_dir, target.data_dir, dirs_exist_ok=True)

    def drop(self, url: str) -> None:
        if is_postgres(url):
            asyncio.run(postgres_admin(url, f"DROP DATABASE IF EXISTS {quoted(url)} WITH (FORCE)"))
        else:
            remove_sqlite(sqlite_path(url))


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def sqlite_path(url: str) -> Path:
    return Path(make_url(url).database or "")


def quoted(url: str) -> str:
    return '"' + (make_url(url).database or "").replace('"', '""') + '"'


def remove_sqlite(path: Path) -> None:
    """The database file and its companions, if there."""
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        file.unlink(missing_ok=True)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy, whatever sits in the source's write-ahead log; the copy is private
    (0600) as storage.db makes every database file."""
    remove_sqlite(target)
    os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
    with closing(sqlite3.connect(source)) as reader, closing(sqlite3.connect(target)) as writer:
        reader.backup(writer)


async def postgres_admin(url: str, statement: str) -> None:
    """One statement on the server's `postgres` database (CREATE/DROP DATABASE cannot run
    inside the database they name)."""
    admin: URL = make_url(url).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()
