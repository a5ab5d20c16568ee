"""Imports report all their problems in one pass, in the file's order, in Indonesian."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from storage.importers import ImportFileError, import_contacts, load_catalogue
from storage.importers.common import MAX_PROBLEMS
from storage.importers.contacts_read import read_contacts_workbook
from tests.storage.test_catalogue import small_catalogue, write_yaml
from tests.storage.test_contacts import base, catalogue, row_counts, workbook

__all__ = ["catalogue"]  # the fixture, imported for this module's tests


async def test_contacts_cell_duplicate_and_database_problems_come_in_one_pass(
    session, catalogue, tmp_path: Path
) -> None:
    sheets = base()
    sheets["Penugasan"][1][0] = "aksi-ham-2030"  # row 2: no such programme (database)
    sheets["Kontak"][2][2] = "bupati"  # row 3: no such role (cell)
    sheets["Kontak"][1][3] = "18.99"  # row 2: no such region (file and database)
    sheets["OPD"].append(["18.71", "hukum", "Bagian Hukum lagi"])  # row 6: duplicate (file)
    before = await row_counts(session)
    with pytest.raises(ImportFileError) as caught:
        await import_contacts(
            read_contacts_workbook(workbook(tmp_path / "rusak.xlsx", sheets)), session=session
        )
    await session.rollback()
    locations = [problem.location for problem in caught.value.problems]
    # Sheet by sheet as the workbook has them, row by row, column by column.
    assert locations == [
        'Sheet "OPD", baris 6, kolom "kode"',
        'Sheet "Kontak", baris 2, kolom "wilayah"',
        'Sheet "Kontak", baris 3, kolom "peran"',
        'Sheet "Penugasan", baris 2, kolom "program"',
    ]
    assert await row_counts(session) == before  # nothing written


async def test_a_missing_sheet_and_a_bad_row_come_together(
    session, catalogue, tmp_path: Path
) -> None:
    sheets = base()
    del sheets["Penugasan"]
    sheets["Kontak"][1][1] = "0812"
    with pytest.raises(ImportFileError) as caught:
        await import_contacts(
            read_contacts_workbook(workbook(tmp_path / "kurang.xlsx", sheets)), session=session
        )
    text = str(caught.value).splitlines()
    assert text[0].startswith('Berkas "kurang.xlsx": sheet "Penugasan" tidak ada')
    assert text[1].startswith('Sheet "Kontak", baris 2, kolom "telepon"')


def test_catalogue_structure_and_reference_problems_in_one_pass(tmp_path: Path) -> None:
    data = small_catalogue()
    data["actions"][1]["code"] = "KK-01"  # duplicate code: a reference problem
    data["actions"][0]["level"] = "kecamatan"  # a structure problem, earlier in the file
    with pytest.raises(ImportFileError) as caught:
        load_catalogue(write_yaml(tmp_path / "rusak.yaml", data))
    assert [problem.location for problem in caught.value.problems] == [
        "actions[0].level",
        "actions[1].code",
    ]


def test_the_periods_of_the_file_are_each_named_once(tmp_path: Path) -> None:
    data = small_catalogue()
    data["periods"][1]["code"] = "B04"
    data["actions"][0]["measures"][0]["period"] = "B05"
    with pytest.raises(ImportFileError) as caught:
        load_catalogue(write_yaml(tmp_path / "rusak.yaml", data))
    text = str(caught.value)
    assert 'kode "B04" sudah dipakai di periods[0]' in text
    assert "(periode di berkas: B04)" in text
    assert "yang ada" not in text


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ("programme:\n  code: x\n  title: Rapat: perencanaan\n", 3, "titik dua"),
        ("programme:\n\tcode: x\n", 2, "karakter tab"),
        ('programme:\n  code: x\n  title: "tidak ditutup\nperiods: []\n', 5, "tanda kutip"),
        ("programme:\n  code: x\n  title: [tidak ditutup\nperiods: []\n", 4, "kurung siku"),
        ("programme:\n  code: x\n   title: y\n", 3, "titik dua"),
    ],
)
def test_yaml_syntax_errors_are_explained_in_indonesian(
    tmp_path: Path, content: str, line: int, words: str
) -> None:
    path = tmp_path / "rusak.yaml"
    path.write_text(content)
    with pytest.raises(ImportFileError) as caught:
        load_catalogue(path)
    text = str(caught.value)
    assert text.startswith(f'Berkas "rusak.yaml", baris {line}')
    assert words in text
    with pytest.raises(yaml.YAMLError) as raw:
        yaml.safe_load(content)
    english = getattr(raw.value, "problem", None) or ""
    assert english and english not in text  # PyYAML's own words are not shown


def test_unclosed_quote_names_where_the_text_began(tmp_path: Path) -> None:
    path = tmp_path / "rusak.yaml"
    path.write_text('programme:\n  code: x\n  title: "tidak ditutup\n  year: 2025\n')
    with pytest.raises(ImportFileError, match="teks bertanda kutip yang dimulai di baris 3"):
        load_catalogue(path)


def test_past_the_shown_problems_it_says_how_many_more(tmp_path: Path) -> None:
    data = small_catalogue()
    action = data["actions"][0]
    data["actions"] = []
    for index in range(MAX_PROBLEMS + 5):
        broken = copy.deepcopy(action)
        broken["code"] = f"A-{index}"
        broken["level"] = "kecamatan"
        data["actions"].append(broken)
    with pytest.raises(ImportFileError) as caught:
        load_catalogue(write_yaml(tmp_path / "rusak.yaml", data))
    assert len(caught.value.problems) == MAX_PROBLEMS
    assert caught.value.problems[0].location == "actions[0].level"
    assert "(dan 5 masalah lain sesudahnya" in str(caught.value)
