"""The contacts workbook's format (docs/contacts.md): its sheets, the columns each accepts (in
Indonesian or English), the words accepted in its cells, and the document it is read into.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.importers.common import Problem
from storage.models import TIMEZONES, RegionKind, Role

# --- the workbook's shape ---------------------------------------------------------------------


@dataclass(frozen=True)
class SheetSpec:
    name: str
    aliases: tuple[str, ...]
    # canonical (Indonesian) column -> accepted aliases
    columns: Mapping[str, tuple[str, ...]]
    required: tuple[str, ...]

    def column_for(self, header: str) -> str | None:
        key = _key(header)
        for column, aliases in self.columns.items():
            if key == column or key in aliases:
                return column
        return None


REGIONS = SheetSpec(
    "Wilayah",
    ("regions", "region"),
    {
        "kode": ("code",),
        "nama": ("name",),
        "jenis": ("kind",),
        "induk": ("parent",),
        "zona_waktu": ("timezone", "zona"),
    },
    required=("kode", "nama", "jenis"),
)
OFFICES = SheetSpec(
    "OPD",
    ("offices", "office"),
    {"wilayah": ("region",), "kode": ("code",), "nama": ("name",)},
    required=("wilayah", "kode", "nama"),
)
CONTACTS = SheetSpec(
    "Kontak",
    ("contacts", "contact"),
    {
        "nama": ("name",),
        "telepon": ("phone", "hp", "no_hp", "whatsapp"),
        "peran": ("role",),
        "wilayah": ("region",),
        "opd": ("office",),
        "bahasa": ("language",),
        "aktif": ("active",),
    },
    required=("nama", "telepon", "peran"),
)
ASSIGNMENTS = SheetSpec(
    "Penugasan",
    ("assignments", "assignment"),
    {"program": ("programme",), "aksi": ("action",), "wilayah": ("region",), "opd": ("office",)},
    required=("program", "aksi", "wilayah", "opd"),
)
SHEETS = (REGIONS, OFFICES, CONTACTS, ASSIGNMENTS)

KIND_WORDS = {
    "provinsi": RegionKind.provinsi,
    "province": RegionKind.provinsi,
    "prov": RegionKind.provinsi,
    "kabkota": RegionKind.kabkota,
    "kab/kota": RegionKind.kabkota,
    "kabupaten/kota": RegionKind.kabkota,
    "kabupaten": RegionKind.kabkota,
    "kota": RegionKind.kabkota,
    "regency": RegionKind.kabkota,
    "city": RegionKind.kabkota,
}
ROLE_WORDS = {
    "focal_point": Role.focal_point,
    "focal point": Role.focal_point,
    "focal-point": Role.focal_point,
    "operator": Role.focal_point,
    "coordinator": Role.coordinator,
    "koordinator": Role.coordinator,
    "kanwil": Role.kanwil,
    "admin": Role.admin,
    "administrator": Role.admin,
}
TIMEZONE_WORDS = {
    **{zone.lower(): zone for zone in TIMEZONES},
    "wib": "Asia/Jakarta",
    "wita": "Asia/Makassar",
    "wit": "Asia/Jayapura",
}
LANGUAGE_WORDS = {
    "id": "id",
    "indonesia": "id",
    "bahasa indonesia": "id",
    "en": "en",
    "english": "en",
    "inggris": "en",
}
YES_WORDS = {"ya", "y", "yes", "true", "1", "aktif", "benar"}
NO_WORDS = {"tidak", "t", "no", "n", "false", "0", "nonaktif", "salah"}


def _key(header: Any) -> str:
    """'Zona Waktu ' -> 'zona_waktu': headers are matched case- and spacing-insensitively."""
    return "_".join(str(header).strip().lower().split())


# --- the parsed document ----------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    """A row of a sheet, to name in messages as the operator sees it."""

    sheet: str
    row: int
    headers: Mapping[str, str] = field(default_factory=dict)
    sheet_order: int = 0  # the sheet's place in SHEETS: problems are listed sheet by sheet

    def at(self, column: str | None = None) -> str:
        text = f'Sheet "{self.sheet}", baris {self.row}'
        if column is None:
            return text
        return f'{text}, kolom "{self.headers.get(column, column)}"'

    def position(self, column: str | None = None) -> tuple[int, ...]:
        """Sorts problems by sheet, row, then column as the sheet has them."""
        columns = list(self.headers)
        index = (
            -1 if column is None else (columns.index(column) if column in columns else len(columns))
        )
        return (1 + self.sheet_order, self.row, index)


@dataclass(frozen=True)
class RegionRow:
    where: Where
    code: str
    name: str
    kind: RegionKind
    parent_code: str | None
    timezone: str | None  # None: keep the database's, else the parent's


@dataclass(frozen=True)
class OfficeRow:
    where: Where
    region_code: str
    code: str
    name: str


@dataclass(frozen=True)
class ContactRow:
    where: Where
    name: str
    phone: str
    role: Role
    region_code: str | None
    office_code: str | None
    language: str | None  # None: keep the contact's own choice (made with /bahasa)
    active: bool


@dataclass(frozen=True)
class AssignmentRow:
    where: Where
    programme_code: str
    action_code: str
    region_code: str
    office_code: str


@dataclass(frozen=True)
class ContactsDoc:
    regions: list[RegionRow] = field(default_factory=list)
    offices: list[OfficeRow] = field(default_factory=list)
    contacts: list[ContactRow] = field(default_factory=list)
    assignments: list[AssignmentRow] = field(default_factory=list)
    # Problems found while reading (their rows are left out above). They are raised together
    # with those found against the database, by import_contacts, so that one pass shows all.
    problems: list[Problem] = field(default_factory=list)

    @property
    def row_count(self) -> int:
        return len(self.regions) + len(self.offices) + len(self.contacts) + len(self.assignments)


@dataclass
class RawSheet:
    """A sheet as read: canonical column names, values as the cells held them."""

    title: str
    headers: dict[str, str]  # canonical column -> header as written
    rows: list[tuple[int, dict[str, Any]]]  # (row number, canonical column -> value)
