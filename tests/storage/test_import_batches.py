"""A large import writes in short transactions (storage.db.batched_writes): between its batches
another writer gets the database's write lock, and an import interrupted between batches and
run again ends where one clean run would."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import func, select

from storage import inbox
from storage.db import batched_writes, create_engine, session_factory, transaction
from storage.importers import contacts_doc_from_rows, import_contacts
from storage.importers.contacts_format import ContactsDoc
from storage.models import Contact, InboxMessage, Office, Region

KABKOTA, OFFICES_EACH, CONTACTS_EACH = 12, 5, 3  # 1 + 12 regions, 60 offices, 180 contacts
ROWS = 1 + KABKOTA + KABKOTA * OFFICES_EACH + KABKOTA * OFFICES_EACH * CONTACTS_EACH
BATCH = 25


def national_like() -> ContactsDoc:
    regions: list[dict[str, Any]] = [{"kode": "18", "nama": "Lampung", "jenis": "provinsi"}]
    offices: list[dict[str, Any]] = []
    contacts: list[dict[str, Any]] = []
    for k in range(KABKOTA):
        region = f"18.{k + 1:02d}"
        regions.append({"kode": region, "nama": f"Kab {k}", "jenis": "kabkota", "induk": "18"})
        for o in range(OFFICES_EACH):
            office = f"OPD{o}"
            offices.append({"wilayah": region, "kode": office, "nama": f"OPD {o}"})
            for c in range(CONTACTS_EACH):
                number = (k * OFFICES_EACH + o) * CONTACTS_EACH + c
                contacts.append(
                    {
                        "nama": f"Operator {number}",
                        "telepon": f"0812{number:08d}",
                        "peran": "focal point",
                        "wilayah": region,
                        "opd": office,
                    }
                )
    doc = contacts_doc_from_rows({"Wilayah": regions, "OPD": offices, "Kontak": contacts})
    assert doc.problems == [] and doc.row_count == ROWS
    return doc


class OtherWriter:
    """The bot, as far as the lock is concerned: a writer on its own connection that does not
    wait for the lock at all (SQLite: busy timeout 0), so it fails at once if the lock is held."""

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_engine(url, lock_timeout=0)
        self.sessions = session_factory(self.engine)
        self.written = 0

    async def write(self) -> None:
        async with transaction(self.sessions) as session:
            await inbox.claim_inbound(
                session=session, channel="telegram", message_id=f"bot-{self.written}"
            )
        self.written += 1


async def _count(sessions, model: Any) -> int:
    async with sessions() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def test_another_writer_gets_the_lock_between_batches(sessions, database_url) -> None:
    other = OtherWriter(database_url)
    pauses = 0

    async def pause_then_bot_writes(seconds: float) -> None:
        nonlocal pauses
        pauses += 1
        await other.write()  # raises "database is locked" if the import still held the lock

    try:
        async with batched_writes(sessions, sleep=pause_then_bot_writes) as (session, checkpoint):
            report = await import_contacts(
                national_like(), session=session, checkpoint=checkpoint, batch_rows=BATCH
            )
    finally:
        await other.engine.dispose()
    assert report.created == ROWS
    # One pause after the checks, then one per full batch: the bot wrote in every one of them.
    assert pauses == 1 + ROWS // BATCH
    assert other.written == pauses
    assert await _count(sessions, InboxMessage) == pauses
    assert await _count(sessions, Contact) == KABKOTA * OFFICES_EACH * CONTACTS_EACH


async def test_in_one_transaction_the_import_would_hold_the_lock(sessions, database_url) -> None:
    """What batching fixes: the same import in one transaction keeps every other writer out
    (SQLite's lock is the whole database's) until it ends."""
    async with sessions() as probe:
        if (await probe.connection()).dialect.name != "sqlite":
            pytest.skip("PostgreSQL locks rows, not the database")
    other = OtherWriter(database_url)
    refused: list[bool] = []

    def progress(advance: int, total: int | None, label: str) -> None:
        pass

    async def try_to_write() -> None:
        try:
            await other.write()
            refused.append(False)
        except OperationalError:
            refused.append(True)

    async def checkpoint_without_commit() -> None:
        await try_to_write()  # mid-import, the transaction still open

    try:
        async with transaction(sessions) as session:
            await import_contacts(
                national_like(),
                session=session,
                checkpoint=checkpoint_without_commit,
                batch_rows=BATCH,
                progress=progress,
            )
    finally:
        await other.engine.dispose()
    assert refused and all(refused)


class ProcessDied(BaseException):
    """The process killed mid-import: not an Exception, so nothing catches it."""


async def test_an_import_interrupted_between_batches_completes_when_run_again(sessions) -> None:
    batches = 0

    async def dies_after_three(seconds: float) -> None:
        nonlocal batches
        batches += 1
        if batches == 4:  # the checks' checkpoint, then three batches committed
            raise ProcessDied

    with pytest.raises(ProcessDied):
        async with batched_writes(sessions, sleep=dies_after_three) as (session, checkpoint):
            await import_contacts(
                national_like(), session=session, checkpoint=checkpoint, batch_rows=BATCH
            )
    written = await _count(sessions, Region) + await _count(sessions, Office)
    written += await _count(sessions, Contact)
    assert written == 3 * BATCH  # three batches kept, nothing of the fourth

    async def no_pause(seconds: float) -> None:
        pass

    async with batched_writes(sessions, sleep=no_pause) as (session, checkpoint):
        report = await import_contacts(
            national_like(), session=session, checkpoint=checkpoint, batch_rows=BATCH
        )
    assert (report.created, report.unchanged) == (ROWS - 3 * BATCH, 3 * BATCH)
    assert await _count(sessions, Contact) == KABKOTA * OFFICES_EACH * CONTACTS_EACH
    async with batched_writes(sessions, sleep=no_pause) as (session, checkpoint):
        again = await import_contacts(
            national_like(), session=session, checkpoint=checkpoint, batch_rows=BATCH
        )
    assert (again.created, again.updated, again.unchanged) == (0, 0, ROWS)
