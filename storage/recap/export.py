"""`laporham export recap`: the /rekap workbook of a period, for the country or one region."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from storage import oversight
from storage.periods import CatalogueError
from storage.recap.workbook import recap_workbook


@dataclass(frozen=True)
class RecapExport:
    workbook: bytes
    pemda: int
    reports: int
    sent: int


async def recap_for_export(
    *,
    session: AsyncSession,
    period_code: str,
    region_code: str | None,
    programme_code: str | None,
    now: datetime,
) -> RecapExport:
    """The workbook of a period for the whole country, or for a region (a province with its
    kabupaten/kota). An unknown period or region is the operator's to fix: CatalogueError."""
    period = await oversight.period_by_code(
        session=session, code=period_code, programme_code=programme_code
    )
    if period is None:
        raise CatalogueError(f'Periode "{period_code}" tidak ditemukan.')
    scope = oversight.Scope(None)
    if region_code is not None:
        region = await oversight.region_by_code(session=session, code=region_code)
        if region is None:
            raise CatalogueError(f'Wilayah "{region_code}" tidak ditemukan.')
        scope = await oversight.region_scope(session=session, region=region)
    found = await oversight.period_reports(
        session=session, period=period, scope=scope, with_focal_points=True
    )
    return RecapExport(
        workbook=recap_workbook(found, now=now),
        pemda=len(oversight.by_region(found.reports)),
        reports=len(found.reports),
        sent=sum(1 for row in found.reports if row.sent),
    )


def write_atomically(target: Path, data: bytes) -> None:
    """A temp file beside the target, renamed over it: never half a workbook under its name."""
    directory = target.resolve().parent
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
