"""Alembic, configured in code so `laporham db upgrade` works from any directory, and able to say
what an upgrade did: a schema created on a fresh database, the revisions applied, or nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from storage.db import create_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would eat a literal % in a password.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    # env.py runs its own event loop, so Alembic must run in a thread when called from async code.
    await asyncio.to_thread(upgrade, database_url, revision)


@dataclass(frozen=True)
class Upgrade:
    """What an upgrade did. `before` None: the database had no schema at all."""

    before: str | None
    applied: tuple[tuple[str, str], ...]  # (revision, its one-line description), oldest first

    @property
    def created(self) -> bool:
        return self.before is None and bool(self.applied)


async def upgrade_and_report(database_url: str) -> Upgrade:
    """Apply pending migrations and say which: each command that needs the schema calls this
    first, as `run` does, so a fresh database never meets a command with no tables."""
    before = await current_revision(database_url)
    await upgrade_async(database_url)
    after = await current_revision(database_url)
    return Upgrade(before, _between(alembic_config(database_url), before, after))


async def current_revision(database_url: str) -> str | None:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


def _between(config: Config, before: str | None, after: str | None) -> tuple[tuple[str, str], ...]:
    """The revisions from `before` (exclusive) up to `after`, oldest first. The history is linear:
    each migration has one parent."""
    script = ScriptDirectory.from_config(config)
    applied: list[tuple[str, str]] = []
    revision = script.get_revision(after) if after else None
    while revision is not None and revision.revision != before:
        applied.append((revision.revision, (revision.doc or "").strip()))
        down = revision.down_revision
        revision = script.get_revision(down) if isinstance(down, str) else None
    return tuple(reversed(applied))
