"""`laporham export recap`: the /rekap workbook written to a file, run as a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.test_cli import (  # noqa: F401  (fixtures)
    assert_clean_failure,
    cli_database,
    cli_env,
    imported,
    laporham,
)


@pytest.mark.usefixtures("imported")
def test_export_recap_writes_the_workbook_for_a_region(
    laporham,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    target = tmp_path / "rekap.xlsx"
    result = laporham("export", "recap", "--period", "B08", "--region", "18", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert "1 pemda, 1 laporan, 0 terkirim" in result.stdout
    book = load_workbook(target)
    assert book.sheetnames == ["Ringkasan", "18.71 Kota Bandar Lampung", "Keterangan"]
    row = next(book["18.71 Kota Bandar Lampung"].iter_rows(min_row=2, values_only=True))
    assert row[0] == "KK-01" and row[2] == "Dinas Koperasi dan UMKM" and row[3] == "Siti Aminah"
    assert not list(tmp_path.glob(".tmp-*"))  # written beside, then renamed


@pytest.mark.usefixtures("imported")
def test_export_recap_for_an_unknown_period_or_region_fails_cleanly(
    laporham,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
) -> None:
    target = tmp_path / "rekap.xlsx"
    result = laporham("export", "recap", "--period", "B99", "-o", str(target))
    assert_clean_failure(result)
    assert "B99" in result.stderr
    result = laporham("export", "recap", "--period", "B08", "--region", "77", "-o", str(target))
    assert_clean_failure(result)
    assert '"77"' in result.stderr
    result = laporham("export", "recap", "--period", "B08", "-o", str(tmp_path / "rekap.csv"))
    assert_clean_failure(result)
    assert ".xlsx" in result.stderr
    assert not target.exists()
