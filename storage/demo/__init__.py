"""Demo data for `make demo`: the Aksi HAM 2025 and KKPHAM 2025 catalogues and the regions,
offices, fake contacts and assignments of Lampung and Kepulauan Bangka Belitung.

Everything goes through the real importers, so the demo data is checked like an operator's files.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import yaml
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.importers import (
    ContactsDoc,
    ImportFileError,
    Progress,
    contacts_doc_from_rows,
    import_catalogue,
    import_contacts,
    load_catalogue,
    noop_progress,
)
from storage.models import Programme
from storage.periods import set_period_window

DEMO_DIR = Path(__file__).parent
CATALOGUE_FILES = ("catalogue-aksi-ham-2025.yaml", "catalogue-kkpham-2025.yaml")
CONTACTS_FILE = "contacts.yaml"
DEMO_PROGRAMME = "aksi-ham-2025"
# The month each demo period is named after.
DEMO_PERIOD_MONTHS = {"B04": 4, "B08": 8, "B12": 12}
DEMO_FOCAL_POINT_PHONE = "+6281200000001"
OPENED_DAYS_AGO = 3
DUE_IN_DAYS = 4


async def seed_demo(
    *, session: AsyncSession, today: date, progress: Progress = noop_progress
) -> bool:
    """Seed the demo data into an empty database and open one period around `today`; False (and
    nothing done) when a programme exists already. Never commits: the caller owns the transaction.
    """
    if (await session.exec(select(Programme.id).limit(1))).first() is not None:
        return False
    for name in CATALOGUE_FILES:
        await import_catalogue(load_catalogue(DEMO_DIR / name), session=session, progress=progress)
    await import_contacts(load_demo_contacts(), session=session, progress=progress)
    # The 2025 windows are long past: open the period nearest in the year, so that the demo
    # always has something to report on.
    await set_period_window(
        session=session,
        programme_code=DEMO_PROGRAMME,
        period_code=nearest_period(today),
        opens_on=today - timedelta(days=OPENED_DAYS_AGO),
        due_on=today + timedelta(days=DUE_IN_DAYS),
    )
    return True


def load_demo_contacts() -> ContactsDoc:
    path = DEMO_DIR / CONTACTS_FILE
    sheets = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(sheets, dict):
        raise ImportFileError.single(f'Berkas "{path.name}"', "harus berupa pemetaan sheet → baris")
    return contacts_doc_from_rows(sheets)


def nearest_period(today: date) -> str:
    """The demo period whose month is nearest to today's, counting around the year end (January
    is nearer December than April); on a tie, the coming one."""

    def distance(code: str) -> tuple[int, int]:
        ahead = (DEMO_PERIOD_MONTHS[code] - today.month) % 12
        return (min(ahead, 12 - ahead), ahead)

    return min(DEMO_PERIOD_MONTHS, key=distance)
