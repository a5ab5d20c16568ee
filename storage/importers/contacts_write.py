"""Writing a checked contacts document: regions, offices, contacts and assignments, upserted by
their natural keys, so the same workbook imported twice changes nothing.

Every row is checked, against the file and the database, before anything is written, so a
workbook with one bad row leaves the database exactly as it was. The writing then goes in
batches with a checkpoint between them (see common.py): a crash between two batches leaves the
rows of the batches before, and the same import run again completes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from storage.importers.common import (
    BATCH_ROWS,
    Batches,
    Checkpoint,
    Counts,
    ImportReport,
    Progress,
    no_checkpoint,
    noop_progress,
    row_id,
    upsert_row,
)
from storage.importers.contacts_checks import Known, check_references, load_known
from storage.importers.contacts_format import ContactsDoc, RegionRow
from storage.models import Assignment, Contact, Office, Region, RegionKind
from storage.types import utcnow

DEFAULT_TIMEZONE = "Asia/Jakarta"


async def import_contacts(
    doc: ContactsDoc,
    *,
    session: AsyncSession,
    progress: Progress = noop_progress,
    checkpoint: Checkpoint = no_checkpoint,
    batch_rows: int = BATCH_ROWS,
) -> ImportReport:
    """Check every row against the file and the database, then upsert. Nothing is written when
    any row is wrong (all problems are raised at once). Flushes, never commits: the caller owns
    the transaction, and `checkpoint` is called once the reading is done and after every
    `batch_rows` rows written."""
    known = await load_known(session)
    check_references(doc, known)
    await checkpoint()  # reading done: what follows writes
    batches = Batches(session, checkpoint, batch_rows)
    report = ImportReport()
    total = doc.row_count
    regions = await _write_regions(doc, known, session, report["region"], batches)
    progress(len(doc.regions), total, "Wilayah")
    offices = await _write_offices(doc, known, regions, session, report["office"], batches)
    progress(len(doc.offices), total, "OPD")
    await _write_contacts(doc, known, regions, offices, session, report["contact"], batches)
    progress(len(doc.contacts), total, "Kontak")
    await _write_assignments(doc, known, offices, session, report["assignment"], batches)
    progress(len(doc.assignments), total, "Penugasan")
    return report


def _timezone(code: str, rows: Mapping[str, RegionRow], known: Known) -> str:
    """The file's zone, else the database's, else the parent's, else WIB."""
    row, current = rows.get(code), known.regions.get(code)
    if row is not None and row.timezone is not None:
        return row.timezone
    if current is not None:
        return current.timezone
    if row is not None and row.parent_code is not None:
        return _timezone(row.parent_code, rows, known)
    return DEFAULT_TIMEZONE


async def _write_regions(
    doc: ContactsDoc, known: Known, session: AsyncSession, counts: Counts, batches: Batches
) -> dict[str, Region]:
    existing = dict(known.regions)
    regions = dict(known.regions)
    by_code = {row.code: row for row in doc.regions}
    # Provinces first: a kabupaten/kota needs its province's id.
    for kind in (RegionKind.provinsi, RegionKind.kabkota):
        for row in (r for r in doc.regions if r.kind is kind):
            parent = regions[row.parent_code].id if row.parent_code else None
            values = {
                "code": row.code,
                "name": row.name,
                "kind": row.kind,
                "parent_id": parent,
                "timezone": _timezone(row.code, by_code, known),
            }
            regions[row.code] = upsert_row(session, existing, row.code, Region, values, counts)
            await batches.written()
        await session.flush()
    counts.not_in_file = len(existing)
    return regions


async def _write_offices(
    doc: ContactsDoc,
    known: Known,
    regions: dict[str, Region],
    session: AsyncSession,
    counts: Counts,
    batches: Batches,
) -> dict[tuple[str, str], Office]:
    existing = dict(known.offices)
    offices = dict(known.offices)
    for row in doc.offices:
        key = (row.region_code, row.code)
        values = {"region_id": regions[row.region_code].id, "code": row.code, "name": row.name}
        offices[key] = upsert_row(session, existing, key, Office, values, counts)
        await batches.written()
    counts.not_in_file = len(existing)
    await session.flush()
    return offices


async def _write_contacts(
    doc: ContactsDoc,
    known: Known,
    regions: dict[str, Region],
    offices: dict[tuple[str, str], Office],
    session: AsyncSession,
    counts: Counts,
    batches: Batches,
) -> None:
    existing = dict(known.contacts)
    for row in doc.contacts:
        region = regions[row.region_code] if row.region_code else None
        office: Office | None = None
        if row.region_code and row.office_code:
            office = offices[(row.region_code, row.office_code)]
        values: dict[str, Any] = {
            "name": row.name,
            "phone": row.phone,
            "role": row.role,
            "region_id": region.id if region else None,
            "office_id": office.id if office else None,
            "active": row.active,
        }
        if row.language is not None:
            values["language"] = row.language
        updated_before = counts.updated
        contact = upsert_row(session, existing, row.phone, Contact, values, counts)
        if counts.updated > updated_before:
            contact.updated_at = utcnow()
        await batches.written()
    counts.not_in_file = len(existing)
    await session.flush()


async def _write_assignments(
    doc: ContactsDoc,
    known: Known,
    offices: dict[tuple[str, str], Office],
    session: AsyncSession,
    counts: Counts,
    batches: Batches,
) -> None:
    existing = dict(known.assignments)
    seen: set[tuple[int, int]] = set()
    for row in doc.assignments:
        programme = known.programmes[row.programme_code.lower()]
        action = known.actions[(row_id(programme), row.action_code.lower())]
        office = offices[(row.region_code, row.office_code)]
        action_id, office_id = row_id(action), row_id(office)
        key = (action_id, office_id)
        if key in seen:  # the same assignment twice in the file: harmless, counted once
            continue
        seen.add(key)
        values = {"action_id": action_id, "office_id": office_id}
        upsert_row(session, existing, key, Assignment, values, counts)
        await batches.written()
    counts.not_in_file = len(existing)
    await session.flush()
