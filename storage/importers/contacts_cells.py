"""Turning a contacts workbook's cells into a ContactsDoc, with the conversions Excel makes
necessary (numbers for codes and phone numbers, booleans for yes/no). Each problem is named by
sheet, row and column; a row with one is dropped, and all of them are raised together once every
row and the file's duplicates (contacts_checks.py) have been checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from storage.importers.common import Problems
from storage.importers.contacts_checks import check_duplicates
from storage.importers.contacts_format import (
    ASSIGNMENTS,
    CONTACTS,
    KIND_WORDS,
    LANGUAGE_WORDS,
    NO_WORDS,
    OFFICES,
    REGIONS,
    ROLE_WORDS,
    SHEETS,
    TIMEZONE_WORDS,
    YES_WORDS,
    AssignmentRow,
    ContactRow,
    ContactsDoc,
    OfficeRow,
    RawSheet,
    RegionRow,
    SheetSpec,
    Where,
)
from storage.models import RegionKind, Role
from storage.phones import InvalidPhone, normalise_phone


def parse_sheets(sheets: Mapping[str, RawSheet], problems: Problems | None = None) -> ContactsDoc:
    """Every row of the raw sheets (by canonical sheet name) checked and converted. Rows with a
    problem are left out and their problems kept in the document (with `problems`, those found
    before): import_contacts raises them all, with the database's, in one pass."""
    problems = problems if problems is not None else Problems()
    regions = list(_parse_rows(sheets, REGIONS, _parse_region, problems))
    offices = list(_parse_rows(sheets, OFFICES, _parse_office, problems))
    contacts = list(_parse_rows(sheets, CONTACTS, _parse_contact, problems))
    assignments = list(_parse_rows(sheets, ASSIGNMENTS, _parse_assignment, problems))
    doc = ContactsDoc(regions, offices, contacts, assignments)
    check_duplicates(doc, problems)
    return ContactsDoc(regions, offices, contacts, assignments, problems=problems.items)


RowT = TypeVar("RowT")


def _parse_rows(
    sheets: Mapping[str, RawSheet],
    spec: SheetSpec,
    parse: Callable[[_Cells], RowT | None],
    problems: Problems,
) -> Iterator[RowT]:
    sheet = sheets.get(spec.name)
    if sheet is None:
        return
    order = SHEETS.index(spec)
    for number, values in sheet.rows:
        where = Where(sheet.title, number, sheet.headers, order)
        cells = _Cells(where, values, problems)
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
        self.problems.add(self.where.at(column), message, position=self.where.position(column))

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
    """What each role needs (docs/contacts.md, "What each role needs"); the database checks
    come later."""
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
