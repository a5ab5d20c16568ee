"""Reading a contacts workbook (openpyxl), or the same sheets as plain rows (the demo's YAML),
into raw sheets: canonical column names, cells as they were. contacts_cells.py then turns the
cells into a ContactsDoc, or into every problem at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from storage.importers.common import ImportFileError, Problems
from storage.importers.contacts_cells import parse_sheets
from storage.importers.contacts_format import SHEETS, ContactsDoc, RawSheet, SheetSpec


def read_contacts_workbook(path: Path) -> ContactsDoc:
    """Read and check a contacts workbook. A file that is no workbook raises ImportFileError
    at once; missing sheets or columns and bad rows are kept in the document's `problems`, which
    import_contacts raises together with what the database shows (one pass lists all)."""
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
    # Missing sheets and columns are kept with the rows' problems: one pass shows them all.
    return parse_sheets(sheets, problems)


def _read_sheets(path: Path, problems: Problems) -> dict[str, RawSheet]:
    # Imported here: openpyxl takes ~0.3 s to import, and every CLI command (`run` too) imports
    # this package for ImportFileError; only a workbook import needs it.
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheets: dict[str, RawSheet] = {}
        for spec in SHEETS:
            title = _find_sheet(spec, workbook.sheetnames)
            if title is None:
                problems.add(
                    f'Berkas "{path.name}"',
                    f'sheet "{spec.name}" tidak ada (sheet yang ada: '
                    f"{', '.join(dict.fromkeys(workbook.sheetnames))})",
                    position=(0,),
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


# Any: a read-only workbook's sheet class lives in a private openpyxl module, not to be imported.
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
    order = SHEETS.index(spec)
    positions = _header_positions(spec, title, header_row, header_cells, problems, order)
    if positions is None:
        return None
    headers = {column: str(header_cells[index]).strip() for column, index in positions.items()}
    data = [
        (number, {column: _at(cells, index) for column, index in positions.items()})
        for number, cells in rows
    ]
    return RawSheet(title, headers, data)


def _header_positions(
    spec: SheetSpec,
    title: str,
    row: int,
    cells: tuple[Any, ...],
    problems: Problems,
    order: int,
) -> dict[str, int] | None:
    at = (1 + order, row, -1)  # a header problem comes before the sheet's rows' problems
    positions: dict[str, int] = {}
    for index, cell in enumerate(cells):
        column = spec.column_for(cell) if cell is not None else None
        if column is None:
            continue  # extra columns (notes, numbering) are the operator's business
        if column in positions:
            problems.add(
                f'Sheet "{title}", baris {row}', f'kolom "{column}" ada dua kali', position=at
            )
        positions[column] = index
    missing = [column for column in spec.required if column not in positions]
    for column in missing:
        problems.add(
            f'Sheet "{title}", baris {row}',
            f'kolom "{column}" tidak ada di baris judul (kolom wajib: {", ".join(spec.required)})',
            position=at,
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
    return parse_sheets(raw)
