"""Which evidence files an export takes: the counting version of each report of one period, in
scope of one region (a province with its kabupaten/kota) or of all. The rows are small (names,
ids, keys); the bytes are read later, piece by piece, by the archive writer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.evidence.sniff import EvidenceKind
from storage.models import (
    Action,
    Contact,
    EvidenceFile,
    EvidenceRequirement,
    Measure,
    Office,
    Period,
    Programme,
    Region,
    RegionKind,
    Submission,
    SubmissionStatus,
    SubmissionVersion,
)

__all__ = ["ExportError", "ExportFile", "ExportPlan", "evidence_plan"]

# What counts towards the period: the report as submitted (or approved). A draft, or a report
# returned to its office, has nothing handed in.
COUNTING = (SubmissionStatus.submitted, SubmissionStatus.approved)
# Bind parameters per statement stay well under asyncpg's 32,767.
_IDS_PER_QUERY = 5000


class ExportError(ValueError):
    """The operator asked for something that does not exist (a period, a region)."""


@dataclass(frozen=True, slots=True)
class ExportFile:
    file_id: int
    storage_key: str
    sha256: str
    size: int
    kind: str  # storage.evidence.EvidenceKind's value: a photo has a metadata-free display copy
    display_key: str | None
    original_name: str | None
    uploaded_by: str | None
    received_at: datetime  # UTC
    taken_at: datetime | None  # UTC
    gps_lat: float | None
    gps_lon: float | None
    timezone: str  # the pemda's
    province_id: int
    province_name: str
    region_id: int
    region_name: str
    action_id: int
    action_code: str
    action_position: int
    measure_id: int
    measure_code: str
    measure_title: str
    measure_position: int
    requirement_label: str
    requirement_position: int
    requirement_id: int
    office_name: str

    def sort_key(self) -> tuple[Any, ...]:
        return (
            self.province_name,
            self.region_name,
            self.region_id,
            self.action_position,
            self.action_code,
            self.measure_position,
            self.measure_code,
            self.office_name,
            self.requirement_position,
            self.requirement_id,
            self.file_id,
        )


@dataclass(frozen=True, slots=True)
class ExportPlan:
    period_code: str
    programme_title: str
    region_name: str | None  # None: every region
    files: list[ExportFile]

    @property
    def total_bytes(self) -> int:
        return sum(file.size for file in self.files)

    @property
    def document_bytes(self) -> int:
        """The files that are not photos (a chat's archive carries them as received)."""
        return sum(file.size for file in self.files if file.kind != EvidenceKind.PHOTO.value)


async def evidence_plan(
    *,
    session: AsyncSession,
    period_code: str,
    programme_code: str | None = None,
    region_code: str | None = None,
) -> ExportPlan:
    """The files to export, sorted as the archive lays them out; raises :class:`ExportError`."""
    period, programme = await _find_period(session, period_code, programme_code)
    region_name, region_ids = await _scope(session, region_code)
    current = await _file_rows(session, period.id or 0, region_ids, revision_open=False, ids=None)
    frozen_ids = await _counting_snapshot_file_ids(session, period.id or 0, region_ids)
    for start in range(0, len(frozen_ids), _IDS_PER_QUERY):
        batch = frozen_ids[start : start + _IDS_PER_QUERY]
        current += await _file_rows(
            session, period.id or 0, region_ids, revision_open=True, ids=batch
        )
    files = sorted(current, key=ExportFile.sort_key)
    return ExportPlan(period.code, programme.title, region_name, files)


async def _find_period(
    session: AsyncSession, period_code: str, programme_code: str | None
) -> tuple[Period, Programme]:
    """Without a programme: the latest (by year) that has this period, as `period set` does."""
    query = (
        select(Period, Programme)
        .join(Programme, col(Programme.id) == Period.programme_id)
        .where(sa.func.lower(Period.code) == period_code.strip().lower())
        .order_by(col(Programme.year).desc(), col(Programme.id).desc())
    )
    if programme_code is not None:
        query = query.where(Programme.code == programme_code.strip())
    found = (await session.exec(query)).first()
    if found is None:
        where = f' pada program "{programme_code}"' if programme_code else ""
        raise ExportError(f'Periode "{period_code}" tidak ditemukan{where}.')
    return found


async def _scope(
    session: AsyncSession, region_code: str | None
) -> tuple[str | None, list[int] | None]:
    """The region's name and ids (a province brings its kabupaten/kota); None: everything."""
    if region_code is None:
        return None, None
    region = (await session.exec(select(Region).where(Region.code == region_code.strip()))).first()
    if region is None or region.id is None:
        raise ExportError(f'Wilayah dengan kode "{region_code}" tidak ditemukan.')
    ids = [region.id]
    if region.kind is RegionKind.provinsi:
        children = await session.exec(select(Region.id).where(Region.parent_id == region.id))
        ids += [child for child in children.all() if child is not None]
    return region.name, ids


async def _counting_snapshot_file_ids(
    session: AsyncSession, period_id: int, region_ids: list[int] | None
) -> list[int]:
    """Files of reports reopened for revision: the last submitted version counts, and its file
    ids are in that version's snapshot (a file removed in the revision still belongs to it)."""
    query = (
        select(
            SubmissionVersion.submission_id, SubmissionVersion.version, SubmissionVersion.snapshot
        )
        .join(Submission, col(Submission.id) == SubmissionVersion.submission_id)
        .join(Office, col(Office.id) == Submission.office_id)
        .where(
            Submission.period_id == period_id,
            col(Submission.revision_open).is_(True),
            col(Submission.status).in_(COUNTING),
        )
        .order_by(col(SubmissionVersion.submission_id), col(SubmissionVersion.version))
    )
    if region_ids is not None:
        query = query.where(col(Office.region_id).in_(region_ids))
    latest: dict[int, Mapping[str, Any]] = {}
    for submission_id, _, snapshot in (await session.exec(query)).all():
        latest[submission_id] = snapshot  # ordered by version: the last one wins
    return sorted(
        int(entry["id"])
        for snapshot in latest.values()
        for entry in snapshot.get("evidence", [])
        if isinstance(entry, dict) and isinstance(entry.get("id"), int)
    )


_PROVINCE = aliased(Region)
# Plain labelled columns through Core: a dozen columns is past what sqlmodel's select() types.
_FILE_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    col(EvidenceFile.id).label("file_id"),
    col(EvidenceFile.storage_key).label("storage_key"),
    col(EvidenceFile.sha256).label("sha256"),
    col(EvidenceFile.size).label("size"),
    col(EvidenceFile.kind).label("kind"),
    col(EvidenceFile.display_key).label("display_key"),
    col(EvidenceFile.original_name).label("original_name"),
    col(Contact.name).label("uploaded_by"),
    col(EvidenceFile.received_at).label("received_at"),
    col(EvidenceFile.taken_at).label("taken_at"),
    col(EvidenceFile.gps_lat).label("gps_lat"),
    col(EvidenceFile.gps_lon).label("gps_lon"),
    col(Region.timezone).label("timezone"),
    col(Region.kind).label("region_kind"),
    col(_PROVINCE.id).label("province_id"),
    col(_PROVINCE.name).label("province_name"),
    col(Region.id).label("region_id"),
    col(Region.name).label("region_name"),
    col(Action.id).label("action_id"),
    col(Action.code).label("action_code"),
    col(Action.position).label("action_position"),
    col(Measure.id).label("measure_id"),
    col(Measure.code).label("measure_code"),
    col(Measure.title).label("measure_title"),
    col(Measure.position).label("measure_position"),
    col(EvidenceRequirement.label).label("requirement_label"),
    col(EvidenceRequirement.position).label("requirement_position"),
    col(EvidenceRequirement.id).label("requirement_id"),
    col(Office.name).label("office_name"),
)


async def _file_rows(
    session: AsyncSession,
    period_id: int,
    region_ids: list[int] | None,
    *,
    revision_open: bool,
    ids: list[int] | None,
) -> list[ExportFile]:
    """Files of counting reports: live files of reports not under revision, or (``ids``) the
    frozen files of reports under revision."""
    query = (
        sa.select(*_FILE_COLUMNS)
        .select_from(EvidenceFile)
        .join(Submission, col(Submission.id) == EvidenceFile.submission_id)
        .join(Office, col(Office.id) == Submission.office_id)
        .join(Region, col(Region.id) == Office.region_id)
        .outerjoin(_PROVINCE, col(_PROVINCE.id) == Region.parent_id)
        .join(Action, col(Action.id) == Submission.action_id)
        .join(EvidenceRequirement, col(EvidenceRequirement.id) == EvidenceFile.requirement_id)
        .join(Measure, col(Measure.id) == EvidenceRequirement.measure_id)
        .outerjoin(Contact, col(Contact.id) == EvidenceFile.uploaded_by_id)
        .where(
            col(Submission.period_id) == period_id,
            col(Submission.status).in_(COUNTING),
            col(Submission.revision_open).is_(revision_open),
        )
    )
    if ids is None:
        query = query.where(col(EvidenceFile.removed_at).is_(None))
    else:
        query = query.where(col(EvidenceFile.id).in_(ids))
    if region_ids is not None:
        query = query.where(col(Office.region_id).in_(region_ids))
    connection = await session.connection()
    rows = (await connection.execute(query)).mappings().all()
    return [_export_file(dict(row)) for row in rows]


def _export_file(row: dict[str, Any]) -> ExportFile:
    if row.pop("region_kind") == RegionKind.provinsi:
        # A province reports on its own actions: it is its own province.
        row["province_id"], row["province_name"] = row["region_id"], row["region_name"]
    row["province_id"] = row["province_id"] or 0
    row["province_name"] = row["province_name"] or ""
    return ExportFile(**row)
