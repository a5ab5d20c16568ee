"""The contacts import: regions, offices (OPD), contacts with their roles, and assignments of
actions to offices, from an Excel workbook (format: docs/contacts.md).

All or nothing: every row is checked, against the file and the database, before anything is
written, so a workbook with one bad row leaves the database exactly as it was. Rows are upserted
by their natural keys, so the same workbook imported twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import openpyxl
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.importing import (
    Counts,
    ImportFileError,
    ImportReport,
    Problems,
    Progress,
    noop_progress,
    upsert_row,
)
from storage.models import (
    TIMEZONES,
    Action,
    Assignment,
    Contact,
    Office,
    Programme,
    Region,
    RegionKind,
    Role,
)
from storage.phones import InvalidPhone, normalise_phone
from storage.types import utcnow

DEFAULT_TIMEZONE = "Asia/Jakarta"

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

    def at(self, column: str | None = None) -> str:
        text = f'Sheet "{self.sheet}", baris {self.row}'
        if column is None:
            return text
        return f'{text}, kolom "{self.headers.get(column, column)}"'


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

    @property
    def row_count(self) -> int:
        return len(self.regions) + len(self.offices) + len(self.contacts) + len(self.assignments)


@dataclass
class RawSheet:
    """A sheet as read: canonical column names, values as the cells held them."""

    title: str
    headers: dict[str, str]  # canonical column -> header as written
    rows: list[tuple[int, dict[str, Any]]]  # (row number, canonical column -> value)


# --- reading the workbook ---------------------------------------------------------------------


def read_contacts_workbook(path: Path) -> ContactsDoc:
    """Read and check a contacts workbook; ImportFileError lists everything wrong with it."""
    where = f'Berkas "{path.name}"'
    if path.suffix.lower() == ".xls":
        raise ImportFileError.single(
            where, "format .xls lama tidak didukung; simpan ulang sebagai .xlsx"
        )
    problems = Problems()
    try:
        sheets = _read_sheets(path, problems)
    except ImportFileError:
        raise
    except OSError as exc:
        raise ImportFileError.single(where, f"tidak dapat dibaca ({exc.strerror})") from exc
    except Exception as exc:
        # openpyxl reports a broken file with whatever its layers raise (BadZipFile, KeyError,
        # XML parse errors, zlib errors, ...), also lazily while rows are read.
        raise ImportFileError.single(
            where,
            f"bukan berkas Excel .xlsx yang utuh ({type(exc).__name__}); "
            "simpan ulang dari Excel sebagai .xlsx tanpa kata sandi",
        ) from exc
    if len(problems):
        raise ImportFileError(problems.items)
    return _parse(sheets)


def _read_sheets(path: Path, problems: Problems) -> dict[str, RawSheet]:
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheets: dict[str, RawSheet] = {}
        for spec in SHEETS:
            title = _find_sheet(spec, workbook.sheetnames)
            if title is None:
                problems.add(
                    f'Berkas "{path.name}"',
                    f'sheet "{spec.name}" tidak ada (sheet yang ada: '
                    f"{', '.join(workbook.sheetnames)})",
                )
                continue
            sheet = _read_sheet(spec, title, workbook[title], problems)
            if sheet is not None:
                sheets[spec.name] = sheet
        return sheets
    finally:
        workbook.close()


def _find_sheet(spec: SheetSpec, titles: Iterable[str]) -> str | None:
    wanted = {spec.name.lower(), *spec.aliases}
    return next((title for title in titles if title.strip().lower() in wanted), None)


def _read_sheet(spec: SheetSpec, title: str, worksheet: Any, problems: Problems) -> RawSheet | None:
    # Some programs write a wrong used range (e.g. A1:A1) and read-only mode trusts it.
    worksheet.reset_dimensions()
    rows = (
        (number, cells)
        for number, cells in enumerate(worksheet.iter_rows(values_only=True), start=1)
        if not _blank_row(cells)
    )
    header = next(rows, None)
    if header is None:  # an entirely empty sheet: nothing to import from it
        return RawSheet(title, {}, [])
    header_row, header_cells = header
    positions = _header_positions(spec, title, header_row, header_cells, problems)
    if positions is None:
        return None
    headers = {column: str(header_cells[index]).strip() for column, index in positions.items()}
    data = [
        (number, {column: _at(cells, index) for column, index in positions.items()})
        for number, cells in rows
    ]
    return RawSheet(title, headers, data)


def _header_positions(
    spec: SheetSpec, title: str, row: int, cells: tuple[Any, ...], problems: Problems
) -> dict[str, int] | None:
    positions: dict[str, int] = {}
    for index, cell in enumerate(cells):
        column = spec.column_for(cell) if cell is not None else None
        if column is None:
            continue  # extra columns (notes, numbering) are the operator's business
        if column in positions:
            problems.add(f'Sheet "{title}", baris {row}', f'kolom "{column}" ada dua kali')
        positions[column] = index
    missing = [column for column in spec.required if column not in positions]
    for column in missing:
        problems.add(
            f'Sheet "{title}", baris {row}',
            f'kolom "{column}" tidak ada di baris judul (kolom wajib: {", ".join(spec.required)})',
        )
    return None if missing else positions


def _at(cells: tuple[Any, ...], index: int) -> Any:
    return cells[index] if index < len(cells) else None


def _blank_row(cells: Iterable[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in cells)


def contacts_doc_from_rows(sheets: Mapping[str, list[dict[str, Any]]]) -> ContactsDoc:
    """The same document from plain rows (sheet name -> rows of column -> value), e.g. demo YAML.
    Rows are numbered as in a workbook whose row 1 holds the headers."""
    raw: dict[str, RawSheet] = {}
    for spec in SHEETS:
        title = _find_sheet(spec, sheets)
        if title is None:
            continue
        rows: list[tuple[int, dict[str, Any]]] = []
        headers: dict[str, str] = {}
        for number, row in enumerate(sheets[title], start=2):
            values: dict[str, Any] = {}
            for header, value in row.items():
                column = spec.column_for(header)
                if column is not None:
                    values[column] = value
                    headers.setdefault(column, str(header))
            if not _blank_row(values.values()):
                rows.append((number, values))
        raw[spec.name] = RawSheet(title, headers, rows)
    return _parse(raw)


# --- checking the cells -----------------------------------------------------------------------


def _parse(sheets: Mapping[str, RawSheet]) -> ContactsDoc:
    problems = Problems()
    doc = ContactsDoc(
        regions=list(_parse_rows(sheets.get(REGIONS.name), _parse_region, problems)),
        offices=list(_parse_rows(sheets.get(OFFICES.name), _parse_office, problems)),
        contacts=list(_parse_rows(sheets.get(CONTACTS.name), _parse_contact, problems)),
        assignments=list(_parse_rows(sheets.get(ASSIGNMENTS.name), _parse_assignment, problems)),
    )
    _check_duplicates(doc, problems)
    problems.raise_if_any()
    return doc


RowT = TypeVar("RowT")


def _parse_rows(
    sheet: RawSheet | None, parse: Callable[[_Cells], RowT | None], problems: Problems
) -> Iterator[RowT]:
    if sheet is None:
        return
    for number, values in sheet.rows:
        cells = _Cells(Where(sheet.title, number, sheet.headers), values, problems)
        row = parse(cells)
        if row is not None and cells.ok:
            yield row


class _Cells:
    """One row's cells, read with the conversions Excel makes necessary; each problem is
    recorded with its sheet, row and column, and the row is then dropped."""

    def __init__(self, where: Where, values: Mapping[str, Any], problems: Problems) -> None:
        self.where = where
        self.values = values
        self.problems = problems
        self.ok = True

    def fail(self, column: str, message: str) -> None:
        self.ok = False
        self.problems.add(self.where.at(column), message)

    def text(self, column: str, *, required: bool = False, max_length: int = 200) -> str | None:
        value = _as_text(self.values.get(column))
        if value is None:
            if required:
                self.fail(column, "wajib diisi")
            return None
        if len(value) > max_length:
            self.fail(column, f'"{value[:40]}…" terlalu panjang (maksimal {max_length} karakter)')
            return None
        return value

    def region_code(self, column: str, *, required: bool = False) -> str | None:
        value = self.values.get(column)
        # Kemendagri codes typed into a number cell arrive as floats: 18.10 becomes 18.1.
        if isinstance(value, float) and not value.is_integer():
            return f"{value:.2f}"
        return self.text(column, required=required, max_length=20)

    def office_code(self, column: str, *, required: bool = False) -> str | None:
        # Office codes are matched without regard to case, so they are kept in capitals.
        value = self.text(column, required=required, max_length=40)
        return value.upper() if value else None

    def choice(self, column: str, words: Mapping[str, Any], label: str, *, required: bool) -> Any:
        value = self.text(column, required=required)
        if value is None:
            return None
        found = words.get(" ".join(value.lower().replace("_", " ").split()))
        found = found if found is not None else words.get(value.strip().lower())
        if found is None:
            allowed = ", ".join(dict.fromkeys(str(v) for v in words.values()))
            self.fail(column, f'"{value}" bukan {label} yang dikenal (pilih: {allowed})')
        return found

    def phone(self, column: str) -> str | None:
        value = self.values.get(column)
        text = _phone_text(value)
        if text is None:
            self.fail(column, "wajib diisi")
            return None
        try:
            return normalise_phone(text)
        except InvalidPhone:
            self.fail(column, f'"{text}" bukan nomor telepon yang valid')
            return None

    def flag(self, column: str, *, default: bool) -> bool:
        value = self.values.get(column)
        if isinstance(value, bool):
            return value
        text = _as_text(value)
        if text is None:
            return default
        if text.lower() in YES_WORDS:
            return True
        if text.lower() in NO_WORDS:
            return False
        self.fail(column, f'"{text}" harus ya atau tidak')
        return default


def _as_text(value: Any) -> str | None:
    """A cell as text. Excel gives numbers for digit-only cells: 1801.0 means "1801"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "ya" if value else "tidak"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, datetime | date):
        value = value.isoformat()
    text = str(value).strip()
    return text or None


def _phone_text(value: Any) -> str | None:
    text = _as_text(value)
    # A number cell drops the leading 0: 81234567890 was typed as 081234567890.
    if text is not None and text.isdigit() and text.startswith("8"):
        text = "0" + text
    return text


def _parse_region(cells: _Cells) -> RegionRow | None:
    code = cells.region_code("kode", required=True)
    name = cells.text("nama", required=True, max_length=120)
    kind = cells.choice("jenis", KIND_WORDS, "jenis wilayah", required=True)
    parent = cells.region_code("induk")
    timezone = cells.choice("zona_waktu", TIMEZONE_WORDS, "zona waktu", required=False)
    if kind is RegionKind.kabkota and parent is None:
        cells.fail("induk", "kabupaten/kota wajib punya induk (kode provinsinya)")
    if kind is RegionKind.provinsi and parent is not None:
        cells.fail("induk", "provinsi tidak punya induk; kosongkan kolom ini")
    if code is None or name is None or kind is None:
        return None
    return RegionRow(cells.where, code, name, kind, parent, timezone)


def _parse_office(cells: _Cells) -> OfficeRow | None:
    region = cells.region_code("wilayah", required=True)
    code = cells.office_code("kode", required=True)
    name = cells.text("nama", required=True, max_length=160)
    if region is None or code is None or name is None:
        return None
    return OfficeRow(cells.where, region, code, name)


def _parse_contact(cells: _Cells) -> ContactRow | None:
    name = cells.text("nama", required=True, max_length=120)
    phone = cells.phone("telepon")
    role = cells.choice("peran", ROLE_WORDS, "peran", required=True)
    region = cells.region_code("wilayah")
    office = cells.office_code("opd")
    language = cells.choice("bahasa", LANGUAGE_WORDS, "bahasa", required=False)
    active = cells.flag("aktif", default=True)
    if role is not None:
        _check_scope_cells(cells, role, region, office)
    if name is None or phone is None or role is None:
        return None
    return ContactRow(cells.where, name, phone, role, region, office, language, active)


def _check_scope_cells(cells: _Cells, role: Role, region: str | None, office: str | None) -> None:
    """What each role needs (INTERFACES.md, "Roles and scope"); the database checks come later."""
    if role is not Role.admin and region is None:
        cells.fail("wilayah", f"peran {role} wajib punya wilayah")
    if role is Role.focal_point and office is None:
        cells.fail("opd", "focal point wajib punya OPD")
    if office is not None and region is None and role is Role.admin:
        cells.fail("wilayah", "OPD diisi tanpa wilayah")


def _parse_assignment(cells: _Cells) -> AssignmentRow | None:
    programme = cells.text("program", required=True, max_length=40)
    action = cells.text("aksi", required=True, max_length=40)
    region = cells.region_code("wilayah", required=True)
    office = cells.office_code("opd", required=True)
    if programme is None or action is None or region is None or office is None:
        return None
    return AssignmentRow(cells.where, programme, action, region, office)


def _check_duplicates(doc: ContactsDoc, problems: Problems) -> None:
    """Two rows for one key would make the result depend on row order: name both rows."""
    checks: list[tuple[list[tuple[tuple[str, ...], Where]], str, str]] = [
        ([((r.code,), r.where) for r in doc.regions], "kode", "kode wilayah"),
        ([((o.region_code, o.code), o.where) for o in doc.offices], "kode", "kode OPD"),
        ([((c.phone,), c.where) for c in doc.contacts], "telepon", "nomor"),
    ]
    for rows, column, label in checks:
        seen: dict[tuple[str, ...], Where] = {}
        for key, where in rows:
            if key in seen:
                problems.add(
                    where.at(column),
                    f'{label} "{key[-1]}" sudah dipakai di baris {seen[key].row}',
                )
            else:
                seen[key] = where


# --- checking against the database ------------------------------------------------------------


@dataclass
class _Known:
    """The rows an import refers to, loaded up front: a few thousand even nationally."""

    regions: dict[str, Region]  # code
    offices: dict[tuple[str, str], Office]  # (region code, office code)
    contacts: dict[str, Contact]  # phone
    programmes: dict[str, Programme]  # code, lower case
    actions: dict[tuple[int, str], Action]  # (programme id, code in lower case)
    assignments: dict[tuple[int, int], Assignment]  # (action id, office id)


async def _load_known(session: AsyncSession) -> _Known:
    regions = {region.code: region for region in (await session.exec(select(Region))).all()}
    codes = {region.id: region.code for region in regions.values()}
    offices = {
        (codes[office.region_id], office.code.upper()): office
        for office in (await session.exec(select(Office))).all()
    }
    contacts = {c.phone: c for c in (await session.exec(select(Contact))).all() if c.phone}
    programmes = {p.code.lower(): p for p in (await session.exec(select(Programme))).all()}
    actions = {
        (action.programme_id, action.code.lower()): action
        for action in (await session.exec(select(Action))).all()
    }
    assignments = {
        (a.action_id, a.office_id): a for a in (await session.exec(select(Assignment))).all()
    }
    return _Known(regions, offices, contacts, programmes, actions, assignments)


@dataclass
class _Scope:
    """Regions and offices as they will be after the import: the file's over the database's."""

    kinds: dict[str, RegionKind]
    offices: set[tuple[str, str]]

    @classmethod
    def of(cls, doc: ContactsDoc, known: _Known) -> _Scope:
        kinds = {code: region.kind for code, region in known.regions.items()}
        kinds.update({row.code: row.kind for row in doc.regions})
        offices = set(known.offices) | {(row.region_code, row.code) for row in doc.offices}
        return cls(kinds, offices)

    def check_region(self, where: Where, column: str, code: str, problems: Problems) -> bool:
        if code in self.kinds:
            return True
        problems.add(
            where.at(column), f'wilayah "{code}" tidak ada di sheet Wilayah maupun di basis data'
        )
        return False

    def check_office(self, where: Where, region: str, office: str, problems: Problems) -> bool:
        if (region, office) in self.offices:
            return True
        elsewhere = sorted(r for r, o in self.offices if o == office)
        hint = f" (ada di wilayah {', '.join(elsewhere[:3])})" if elsewhere else ""
        problems.add(where.at("opd"), f'OPD "{office}" tidak ada di wilayah {region}{hint}')
        return False


def _check_references(doc: ContactsDoc, known: _Known) -> None:
    problems = Problems()
    scope = _Scope.of(doc, known)
    for region in doc.regions:
        _check_parent(region, scope, problems)
    for office in doc.offices:
        scope.check_region(office.where, "wilayah", office.region_code, problems)
    for contact in doc.contacts:
        _check_contact(contact, scope, problems)
    for assignment in doc.assignments:
        _check_assignment(assignment, scope, known, problems)
    problems.raise_if_any()


def _check_parent(row: RegionRow, scope: _Scope, problems: Problems) -> None:
    parent = row.parent_code
    if parent is None or not scope.check_region(row.where, "induk", parent, problems):
        return
    if scope.kinds[parent] is not RegionKind.provinsi:
        problems.add(row.where.at("induk"), f'induk "{parent}" bukan provinsi')


def _check_contact(row: ContactRow, scope: _Scope, problems: Problems) -> None:
    region = row.region_code
    if region is None or not scope.check_region(row.where, "wilayah", region, problems):
        return
    if row.office_code is not None:
        scope.check_office(row.where, region, row.office_code, problems)
    if row.role is Role.kanwil and scope.kinds[region] is not RegionKind.provinsi:
        problems.add(
            row.where.at("wilayah"),
            f'kanwil mencakup satu provinsi, sedangkan "{region}" bukan provinsi',
        )


def _check_assignment(row: AssignmentRow, scope: _Scope, known: _Known, problems: Problems) -> None:
    action = _find_action(row, known, problems)
    if not scope.check_region(row.where, "wilayah", row.region_code, problems):
        return
    if not scope.check_office(row.where, row.region_code, row.office_code, problems):
        return
    kind = scope.kinds[row.region_code]
    if action is not None and action.level.value != kind.value:
        problems.add(
            row.where.at("aksi"),
            f"aksi {action.code} untuk tingkat {action.level}, sedangkan wilayah "
            f"{row.region_code} adalah {kind}",
        )


def _find_action(row: AssignmentRow, known: _Known, problems: Problems) -> Action | None:
    programme = known.programmes.get(row.programme_code.lower())
    if programme is None:
        problems.add(
            row.where.at("program"),
            f'program "{row.programme_code}" tidak ada di basis data; impor katalognya dulu',
        )
        return None
    action = known.actions.get((programme.id, row.action_code.lower()))
    if action is None:
        problems.add(
            row.where.at("aksi"),
            f'aksi "{row.action_code}" tidak ada di program {programme.code}',
        )
    return action


# --- writing ----------------------------------------------------------------------------------


async def import_contacts(
    doc: ContactsDoc, *, session: AsyncSession, progress: Progress = noop_progress
) -> ImportReport:
    """Check every row against the file and the database, then upsert. Nothing is written when
    any row is wrong. Flushes, never commits: the caller owns the transaction."""
    known = await _load_known(session)
    _check_references(doc, known)
    report = ImportReport()
    total = doc.row_count
    regions = await _write_regions(doc, known, session, report["region"])
    progress(len(doc.regions), total, "Wilayah")
    offices = await _write_offices(doc, known, regions, session, report["office"])
    progress(len(doc.offices), total, "OPD")
    await _write_contacts(doc, known, regions, offices, session, report["contact"])
    progress(len(doc.contacts), total, "Kontak")
    await _write_assignments(doc, known, offices, session, report["assignment"])
    progress(len(doc.assignments), total, "Penugasan")
    return report


def _timezone(code: str, rows: Mapping[str, RegionRow], known: _Known) -> str:
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
    doc: ContactsDoc, known: _Known, session: AsyncSession, counts: Counts
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
        await session.flush()
    counts.not_in_file = len(existing)
    return regions


async def _write_offices(
    doc: ContactsDoc,
    known: _Known,
    regions: dict[str, Region],
    session: AsyncSession,
    counts: Counts,
) -> dict[tuple[str, str], Office]:
    existing = dict(known.offices)
    offices = dict(known.offices)
    for row in doc.offices:
        key = (row.region_code, row.code)
        values = {"region_id": regions[row.region_code].id, "code": row.code, "name": row.name}
        offices[key] = upsert_row(session, existing, key, Office, values, counts)
    counts.not_in_file = len(existing)
    await session.flush()
    return offices


async def _write_contacts(
    doc: ContactsDoc,
    known: _Known,
    regions: dict[str, Region],
    offices: dict[tuple[str, str], Office],
    session: AsyncSession,
    counts: Counts,
) -> None:
    existing = dict(known.contacts)
    for row in doc.contacts:
        region = regions[row.region_code] if row.region_code else None
        office = offices[(row.region_code, row.office_code)] if region and row.office_code else None
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
    counts.not_in_file = len(existing)
    await session.flush()


async def _write_assignments(
    doc: ContactsDoc,
    known: _Known,
    offices: dict[tuple[str, str], Office],
    session: AsyncSession,
    counts: Counts,
) -> None:
    existing = dict(known.assignments)
    seen: set[tuple[int, int]] = set()
    for row in doc.assignments:
        programme = known.programmes[row.programme_code.lower()]
        action = known.actions[(programme.id, row.action_code.lower())]
        office = offices[(row.region_code, row.office_code)]
        key = (action.id, office.id)
        if key in seen:  # the same assignment twice in the file: harmless, counted once
            continue
        seen.add(key)
        values = {"action_id": action.id, "office_id": office.id}
        upsert_row(session, existing, key, Assignment, values, counts)
    counts.not_in_file = len(existing)
    await session.flush()
