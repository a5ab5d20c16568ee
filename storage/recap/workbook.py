"""The recap workbook: a summary sheet (one row per pemda), one sheet per pemda (one row per
action x office) and a sheet explaining the estimate. Indonesian headers, frozen header row,
filters and column widths set. Written in openpyxl's write-only mode: rows stream out, so the
national workbook (552 sheets) stays fast and small in memory."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from storage import scoring
from storage.oversight import PeriodReports, ReportRow, by_region, figures
from storage.scoring import TARGET, Shortfall

# A write-only sheet: its class lives in a private openpyxl module, so it is not named here.
Sheet = Any

STATE_LABELS = {
    None: "belum diisi",
    "draft": "draf",
    "submitted": "terkirim",
    "returned": "dikembalikan",
    "approved": "disetujui",
}
SHORTFALL_LABELS = {
    Shortfall.not_sent: "belum dikirim",
    Shortfall.late: "terlambat",
    Shortfall.answers_missing: "jawaban wajib kurang",
    Shortfall.evidence_missing: "data dukung kurang",
    Shortfall.nihil: '"nihil" di tempat angka',
}
SUMMARY_COLUMNS = [
    ("Provinsi", 22),
    ("Kode", 9),
    ("Pemda", 30),
    ("Laporan", 9),
    ("Terkirim", 9),
    ("Belum terkirim", 9),
    ("Kelengkapan (%)", 12),
    ("Perkiraan nilai administrasi", 14),
    ("Target", 8),
    ("Penurun nilai", 50),
]
REPORT_COLUMNS = [
    ("Kode aksi", 10),
    ("Aksi", 45),
    ("OPD", 30),
    ("Focal point", 26),
    ("Status", 14),
    ("Dikirim pada", 17),
    ("Aktivitas terakhir", 17),
    ("Jawaban wajib", 9),
    ("Jawaban terisi", 9),
    ("Data dukung wajib", 9),
    ("Data dukung kurang", 40),
    ('Jawaban "nihil"', 9),
    ("Kelengkapan (%)", 12),
    ("Perkiraan nilai administrasi", 14),
    ("Penurun nilai", 45),
]
EXPLANATION = [
    "Perkiraan nilai administrasi adalah PERKIRAAN bot, bukan nilai resmi.",
    "Nilai resmi tiap periode 0-100: administrasi 30%, substansi 70%. Target akhir tahun: 80.",
    "Perkiraan ini hanya menilai bagian administrasi (skala 0-100) dari yang diketahui bot:",
    "  tepat waktu (25), semua jawaban wajib terisi (25), semua jenis data dukung wajib ada (35),",
    '  angka, bukan "nihil" (15).',
    "Laporan yang belum dikirim sebelum batas waktu tidak dinilai (0).",
    "Substansi (kesesuaian data dukung dengan ukuran keberhasilan) dinilai verifikator.",
]
SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def recap_workbook(reports: PeriodReports, *, now: datetime) -> bytes:
    workbook = Workbook(write_only=True)
    title = reports.period.title
    summary = _sheet(workbook, "Ringkasan", SUMMARY_COLUMNS)
    grouped = by_region(reports.reports)
    used = {"Ringkasan", "Keterangan"}
    pemda_sheets: list[tuple[str, list[ReportRow]]] = []
    for region_id, region in reports.regions.items():
        rows = grouped.get(region_id)
        if not rows:
            continue
        province = reports.regions.get(region.province_id)
        numbers = figures(reports, rows, now)
        summary.append(
            _cells(
                summary,
                [
                    province.name if province else "",
                    region.code,
                    region.name,
                    numbers.total,
                    numbers.sent,
                    numbers.missing,
                    numbers.completeness,
                    numbers.score.points,
                    TARGET,
                    _reasons(numbers.score),
                ],
            )
        )
        pemda_sheets.append((_sheet_name(f"{region.code} {region.name}", used), rows))
    for name, rows in pemda_sheets:
        sheet = _sheet(workbook, name, REPORT_COLUMNS)
        for row in rows:
            sheet.append(_cells(sheet, _report_cells(reports, row, now)))
    notes = workbook.create_sheet("Keterangan")
    notes.column_dimensions["A"].width = 100
    notes.append(
        [f"Rekap {title}, dibuat {now.astimezone(ZoneInfo('Asia/Jakarta')):%d-%m-%Y %H.%M} WIB"]
    )
    for line in EXPLANATION:
        notes.append([line])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _report_cells(reports: PeriodReports, row: ReportRow, now: datetime) -> list[Any]:
    region = reports.regions[row.region_id]
    estimate = reports.estimate(row, now)
    state = STATE_LABELS.get(row.status.value if row.status else None, "")
    if row.revision_open:
        state += " (revisi dibuka)"
    return [
        row.action_code,
        row.action_title,
        row.office_name,
        ", ".join(reports.focal_points.get(row.office_id, [])),
        state,
        _local(row.submitted_at, region.timezone),
        _local(row.last_activity, region.timezone),
        row.required_answers,
        min(row.given_answers, row.required_answers),
        row.required_evidence,
        ", ".join(row.missing_evidence),
        row.nihil_answers,
        row.completeness,
        estimate.points,
        _reasons(estimate),
    ]


def _reasons(estimate: scoring.ScoreEstimate) -> str:
    return ", ".join(
        f"{SHORTFALL_LABELS[cause]} (-{estimate.lost[cause]:.0f})"
        for cause in estimate.main_shortfalls()
    )


def _local(moment: datetime | None, timezone: str) -> datetime | None:
    """Excel has no time zones: the region's own wall-clock time."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(timezone)).replace(tzinfo=None, microsecond=0)


def _sheet(workbook: Workbook, name: str, columns: Sequence[tuple[str, int]]) -> Sheet:
    sheet: Sheet = workbook.create_sheet(name)
    # Write-only sheets take their layout before the first row.
    for index, (_, width) in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}1"
    bold = Font(bold=True)
    header = []
    for title, _ in columns:
        cell = WriteOnlyCell(sheet, value=title)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    return sheet


def _cells(sheet: Sheet, values: Iterable[Any]) -> list[Any]:
    """Text that starts like a formula stays text: names and titles come from imports and
    people, and a cell must never compute what someone typed."""
    cells: list[Any] = []
    for value in values:
        if isinstance(value, str) and value.startswith(("=", "+", "-", "@")):
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            cells.append(cell)
        else:
            cells.append(value)
    return cells


def _sheet_name(wanted: str, used: set[str]) -> str:
    """Excel's rules: at most 31 characters, none of []:*?/\\, unique ignoring case."""
    base = SHEET_NAME_FORBIDDEN.sub(" ", wanted).strip("' ")[:31] or "Pemda"
    name, counter = base, 1
    while name.casefold() in {u.casefold() for u in used}:
        counter += 1
        suffix = f" ({counter})"
        name = base[: 31 - len(suffix)] + suffix
    used.add(name)
    return name
