"""What the database and the evidence store promise an operator: commits that survive a power
cut (SQLite fsyncs each one), files nobody else on the server can read, and error messages
that carry no personal data."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from storage.db import create_engine, session_factory, transaction
from storage.evidence import LocalEvidenceStore
from storage.migrate import upgrade_async
from storage.models import Contact, Role

PHONE = "+6281299887766"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual server umask (022), under which files default to world-readable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_sqlite_commits_are_fsynced(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'laporham.db'}")
    try:
        async with engine.connect() as connection:
            level = (await connection.exec_driver_sql("PRAGMA synchronous")).scalar_one()
        assert level == 2  # FULL (NORMAL, 1, may lose the last commits to a power cut)
    finally:
        await engine.dispose()


async def test_database_and_its_folder_are_private_whatever_the_umask(
    tmp_path: Path, loose_umask: None
) -> None:
    existing = tmp_path / "srv"  # the operator's folder, e.g. /srv
    existing.mkdir()
    os.chmod(existing, 0o755)
    database = existing / "new" / "data" / "laporham.db"
    url = f"sqlite+aiosqlite:///{database}"
    await upgrade_async(url)
    engine = create_engine(url)
    try:
        async with transaction(session_factory(engine)) as session:
            session.add(Contact(name="Siti", phone=PHONE, role=Role.admin))
        for created in (existing / "new", database.parent):
            assert mode(created) == 0o700, created
        files = [database, *database.parent.glob("laporham.db-*")]
        assert any(f.name.endswith("-wal") for f in files)
        for file in files:
            assert mode(file) == 0o600, file
    finally:
        await engine.dispose()
    assert mode(existing) == 0o755  # a folder that was there already is left as it was


async def test_a_world_readable_database_of_an_older_version_is_made_private(
    tmp_path: Path, loose_umask: None
) -> None:
    database = tmp_path / "laporham.db"
    database.touch(mode=0o644)
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await engine.dispose()
    assert mode(database) == 0o600


async def test_evidence_folders_and_files_are_private(tmp_path: Path, loose_umask: None) -> None:
    store = LocalEvidenceStore(tmp_path / "evidence")
    key = await store.put(b"%PDF-1.4 notulen", extension="pdf")
    blob = store.root / key
    assert mode(store.root) == 0o700
    assert mode(blob.parent) == 0o700
    assert mode(blob) == 0o600


async def test_database_errors_do_not_carry_query_parameters(sessions) -> None:
    """SQLAlchemy puts a failed statement's parameters in the error (and so in logs):
    phone numbers, names, message texts."""
    async with sessions() as session:
        session.add(Contact(name="Siti Rahma", phone=PHONE, role=Role.admin))
        await session.commit()
    with pytest.raises(IntegrityError) as raised:
        async with transaction(sessions) as session:
            session.add(Contact(name="Siti Rahma", phone=PHONE, role=Role.admin))  # a duplicate
    assert PHONE not in str(raised.value)
    assert "Siti Rahma" not in str(raised.value)
