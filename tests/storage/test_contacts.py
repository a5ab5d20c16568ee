from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func
from sqlmodel import select

from storage.demo import DEMO_DIR
from storage.importers import (
    ImportFileError,
    contacts_doc_from_rows,
    import_catalogue,
    import_contacts,
    load_catalogue,
    read_contacts_workbook,
)
from storage.models import Assignment, Contact, Office, Region, RegionKind, Role

TABLES = (Region, Office, Contact, Assignment)

BASE: dict[str, list[list[Any]]] = {
    "Wilayah": [
        ["kode", "nama", "jenis", "induk", "zona_waktu"],
        ["18", "Lampung", "provinsi", None, "WIB"],
        ["18.71", "Kota Bandar Lampung", "kabkota", "18", None],
        ["18.72", "Kota Metro", "kabkota", "18", None],
    ],
    "OPD": [
        ["wilayah", "kode", "nama"],
        ["18", "HUKUM", "Biro Hukum Setda"],
        ["18.71", "DISKOPUKM", "Dinas Koperasi dan UMKM"],
        ["18.71", "HUKUM", "Bagian Hukum Setda"],
        ["18.72", "DISKOPUKM", "Dinas Koperasi dan UMKM"],
    ],
    "Kontak": [
        ["nama", "telepon", "peran", "wilayah", "opd", "bahasa", "aktif"],
        ["Uji Operator", "0812-0000-0101", "focal point", "18.71", "diskopukm", None, None],
        ["Uji Koordinator", "+62 812 0000 0102", "koordinator", "18.71", "HUKUM", "en", "ya"],
        ["Uji Kanwil", "6281200000103", "kanwil", "18", None, None, "tidak"],
        ["Uji Admin", "081200000104", "admin", None, None, None, None],
    ],
    "Penugasan": [
        ["program", "aksi", "wilayah", "opd"],
        ["aksi-ham-2025", "KK-01", "18.71", "DISKOPUKM"],
        ["aksi-ham-2025", "KK-01", "18.72", "DISKOPUKM"],
        ["aksi-ham-2025", "PR-04", "18", "HUKUM"],
    ],
}


def base() -> dict[str, list[list[Any]]]:
    return copy.deepcopy(BASE)


def workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


@pytest.fixture
async def catalogue(session) -> None:
    await import_catalogue(
        load_catalogue(DEMO_DIR / "catalogue-aksi-ham-2025.yaml"), session=session
    )
    await session.commit()


async def row_counts(session) -> dict[str, int]:
    return {
        model.__name__: (await session.exec(select(func.count()).select_from(model))).one()
        for model in TABLES
    }


async def import_file(session, path: Path):
    try:
        report = await import_contacts(read_contacts_workbook(path), session=session)
    except BaseException:
        await session.rollback()
        raise
    await session.commit()
    session.expunge_all()
    return report


async def test_workbook_imports_and_reimport_changes_nothing(
    session, catalogue, tmp_path: Path
) -> None:
    path = workbook(tmp_path / "kontak.xlsx", base())
    first = await import_file(session, path)
    assert [first[e].created for e in ("region", "office", "contact", "assignment")] == [3, 4, 4, 3]
    counts = await row_counts(session)

    second = await import_file(session, path)
    assert (second.created, second.updated, second.not_in_file) == (0, 0, 0)
    assert second.unchanged == first.created
    assert await row_counts(session) == counts


async def test_imported_rows_are_normalised(session, catalogue, tmp_path: Path) -> None:
    await import_file(session, workbook(tmp_path / "kontak.xlsx", base()))
    regions = {r.code: r for r in (await session.exec(select(Region))).all()}
    assert regions["18.71"].parent_id == regions["18"].id
    assert regions["18.71"].kind is RegionKind.kabkota
    assert regions["18.72"].timezone == "Asia/Jakarta"
    contacts = {c.name: c for c in (await session.exec(select(Contact))).all()}
    operator = contacts["Uji Operator"]
    assert operator.phone == "+6281200000101"
    assert operator.role is Role.focal_point
    assert (operator.language, operator.active) == ("id", True)
    office = await session.get(Office, operator.office_id)
    assert (office.code, office.region_id) == ("DISKOPUKM", regions["18.71"].id)
    assert contacts["Uji Koordinator"].language == "en"
    assert contacts["Uji Kanwil"].active is False
    assert contacts["Uji Admin"].region_id is None


async def test_changed_contact_is_updated_and_language_choice_kept(
    session, catalogue, tmp_path: Path
) -> None:
    await import_file(session, workbook(tmp_path / "a.xlsx", base()))
    # The operator switched to English in the chat; the workbook leaves `bahasa` empty.
    operator = (await session.exec(select(Contact).where(Contact.name == "Uji Operator"))).one()
    operator.language = "en"
    await session.commit()
    stamp = operator.updated_at

    sheets = base()
    sheets["Kontak"][1][0] = "Uji Operator Baru"
    report = await import_file(session, workbook(tmp_path / "b.xlsx", sheets))
    assert report["contact"].updated == 1
    assert (report.created, report.updated) == (0, 1)
    contact = (await session.exec(select(Contact).where(Contact.phone == "+6281200000101"))).one()
    assert (contact.name, contact.language) == ("Uji Operator Baru", "en")
    assert contact.updated_at > stamp


def _set(sheet: str, row: int, column: str, value: Any):
    def change(sheets: dict[str, list[list[Any]]]) -> None:
        sheets[sheet][row - 1][sheets[sheet][0].index(column)] = value

    return change


def _add(sheet: str, row: list[Any]):
    def change(sheets: dict[str, list[list[Any]]]) -> None:
        sheets[sheet].append(row)

    return change


@pytest.mark.parametrize(
    ("breaks", "expected"),
    [
        (
            _set("Kontak", 2, "telepon", "0812"),
            'Sheet "Kontak", baris 2, kolom "telepon": "0812" bukan nomor telepon yang valid',
        ),
        (
            _set("Kontak", 3, "peran", "bupati"),
            'Sheet "Kontak", baris 3, kolom "peran": "bupati" bukan peran yang dikenal',
        ),
        (
            _set("Kontak", 2, "opd", None),
            'Sheet "Kontak", baris 2, kolom "opd": focal point wajib punya OPD',
        ),
        (
            _set("Kontak", 3, "wilayah", "18.72"),
            'Sheet "Kontak", baris 3, kolom "opd": OPD "HUKUM" tidak ada di wilayah 18.72 '
            "(ada di wilayah 18, 18.71)",
        ),
        (
            _add("Kontak", ["Uji Ganda", "+6281200000101", "admin", None, None, None, None]),
            'Sheet "Kontak", baris 6, kolom "telepon": nomor "+6281200000101" sudah dipakai '
            "di baris 2",
        ),
        (
            _set("Kontak", 4, "wilayah", "18.99"),
            'Sheet "Kontak", baris 4, kolom "wilayah": wilayah "18.99" tidak ada di sheet '
            "Wilayah maupun di basis data",
        ),
        (
            _set("Kontak", 4, "wilayah", "18.71"),
            'Sheet "Kontak", baris 4, kolom "wilayah": kanwil mencakup satu provinsi',
        ),
        (
            _add("Penugasan", ["aksi-ham-2025", "KK-01", "18", "HUKUM"]),
            'Sheet "Penugasan", baris 5, kolom "aksi": aksi KK-01 untuk tingkat kabkota, '
            "sedangkan wilayah 18 adalah provinsi",
        ),
        (
            _set("Penugasan", 2, "program", "aksi-ham-2030"),
            'Sheet "Penugasan", baris 2, kolom "program": program "aksi-ham-2030" tidak ada',
        ),
        (
            _set("Penugasan", 2, "aksi", "KK-99"),
            'Sheet "Penugasan", baris 2, kolom "aksi": aksi "KK-99" tidak ada',
        ),
        (
            _set("Wilayah", 3, "induk", None),
            'Sheet "Wilayah", baris 3, kolom "induk": kabupaten/kota wajib punya induk',
        ),
        (
            _set("Wilayah", 4, "induk", "18.71"),
            'Sheet "Wilayah", baris 4, kolom "induk": induk "18.71" bukan provinsi',
        ),
        (
            _set("Wilayah", 2, "zona_waktu", "GMT+7"),
            'Sheet "Wilayah", baris 2, kolom "zona_waktu": "GMT+7" bukan zona waktu',
        ),
        (
            _add("OPD", ["18.71", "hukum", "Bagian Hukum lagi"]),
            'Sheet "OPD", baris 6, kolom "kode": kode OPD "HUKUM" sudah dipakai di baris 4',
        ),
        (
            _set("Kontak", 3, "aktif", "mungkin"),
            'Sheet "Kontak", baris 3, kolom "aktif": "mungkin" harus ya atau tidak',
        ),
    ],
)
async def test_bad_cells_are_named_and_nothing_is_written(
    session, catalogue, tmp_path: Path, breaks, expected: str
) -> None:
    sheets = base()
    breaks(sheets)
    # A valid new row besides the bad one: it must not be written either.
    sheets["Wilayah"].append(["18.01", "Kabupaten Lampung Selatan", "kabkota", "18", None])
    before = await row_counts(session)
    with pytest.raises(ImportFileError) as caught:
        await import_file(session, workbook(tmp_path / "rusak.xlsx", sheets))
    assert expected in str(caught.value)
    assert await row_counts(session) == before == dict.fromkeys(before, 0)


async def test_bad_rows_do_not_touch_earlier_imports(session, catalogue, tmp_path: Path) -> None:
    await import_file(session, workbook(tmp_path / "a.xlsx", base()))
    before = await row_counts(session)
    sheets = base()
    sheets["Kontak"][1][0] = "Nama Baru"
    sheets["Kontak"].append(["Baru", "+6281200000199", "admin", None, None, None, None])
    sheets["Penugasan"].append(["aksi-ham-2025", "KK-01", "18", "HUKUM"])
    with pytest.raises(ImportFileError):
        await import_file(session, workbook(tmp_path / "b.xlsx", sheets))
    assert await row_counts(session) == before
    names = set((await session.exec(select(Contact.name))).all())
    assert "Nama Baru" not in names


async def test_many_problems_are_reported_together(session, catalogue, tmp_path: Path) -> None:
    sheets = base()
    for row in sheets["Kontak"][1:]:
        row[1] = "123"
    with pytest.raises(ImportFileError) as caught:
        await import_file(session, workbook(tmp_path / "rusak.xlsx", sheets))
    assert len(caught.value.problems) == 4
    assert len(str(caught.value).splitlines()) == 4


async def test_numbers_typed_into_number_cells(session, catalogue, tmp_path: Path) -> None:
    sheets = base()
    sheets["Kontak"][1][1] = 81200000101  # the leading 0 is lost in a number cell
    sheets["Kontak"][2][1] = 6281200000102.0
    sheets["Wilayah"].append([18.1, "Kabupaten Pringsewu", "kabkota", 18, None])  # "18.10"
    sheets["OPD"].append([18.1, "DINSOS", "Dinas Sosial"])
    sheets["Kontak"].append(["Uji Aktif", "081200000105", "admin", None, None, None, 1])
    await import_file(session, workbook(tmp_path / "angka.xlsx", sheets))
    phones = set((await session.exec(select(Contact.phone))).all())
    assert {"+6281200000101", "+6281200000102", "+6281200000105"} <= phones
    codes = set((await session.exec(select(Region.code))).all())
    assert "18.10" in codes


async def test_aliases_extra_columns_and_empty_rows(session, catalogue, tmp_path: Path) -> None:
    sheets = base()
    sheets["Kontak"][0] = ["Name", "Phone", "Role", "Region", "Office", "Language", "Active"]
    for row in sheets["Kontak"]:
        row.append("catatan")
    sheets["Kontak"].insert(3, [None, None, None, None, None, None, None, None])
    sheets["Kontak"].append(["", "  ", None, None, None, None, None, None])
    sheets["Contacts"] = sheets.pop("Kontak")
    sheets["Wilayah"][0] = ["Kode", "Nama", "Jenis", "Induk", "Zona Waktu"]
    await import_file(session, workbook(tmp_path / "alias.xlsx", sheets))
    assert (await row_counts(session))["Contact"] == 4


async def test_problem_names_the_header_as_written(session, catalogue, tmp_path: Path) -> None:
    sheets = base()
    sheets["Kontak"][0][1] = "Phone"
    sheets["Kontak"][1][1] = "nihil"
    with pytest.raises(ImportFileError, match='baris 2, kolom "Phone": "nihil"'):
        await import_file(session, workbook(tmp_path / "rusak.xlsx", sheets))


async def test_regions_and_offices_may_come_from_the_database(
    session, catalogue, tmp_path: Path
) -> None:
    await import_file(session, workbook(tmp_path / "a.xlsx", base()))
    sheets = {name: rows[:1] for name, rows in base().items()}
    sheets["Kontak"].append(["Uji Baru", "081200000110", "focal_point", "18.72", "DISKOPUKM"])
    sheets["Penugasan"].append(["aksi-ham-2025", "KK-02", "18.71", "DISKOPUKM"])
    report = await import_file(session, workbook(tmp_path / "b.xlsx", sheets))
    assert (report["contact"].created, report["assignment"].created) == (1, 1)
    assert (report["region"].not_in_file, report["contact"].not_in_file) == (3, 4)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("teks.xlsx", b"nama,telepon\nBudi,0812\n", "bukan berkas Excel .xlsx yang utuh"),
        ("lama.xls", b"\xd0\xcf\x11\xe0", "format .xls lama tidak didukung"),
    ],
)
def test_files_that_are_not_workbooks(tmp_path: Path, name: str, content: bytes, message) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=re.escape(message)) as caught:
        read_contacts_workbook(path)
    assert f'Berkas "{name}"' in str(caught.value)


def test_truncated_workbook(tmp_path: Path) -> None:
    path = workbook(tmp_path / "utuh.xlsx", base())
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30):
        broken = tmp_path / f"potong-{cut}.xlsx"
        broken.write_bytes(data[:cut])
        with pytest.raises(ImportFileError, match=r"bukan berkas Excel \.xlsx yang utuh"):
            read_contacts_workbook(broken)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="tidak dapat dibaca"):
        read_contacts_workbook(tmp_path / "tidak-ada.xlsx")


def test_missing_sheet_and_missing_column_are_named(tmp_path: Path) -> None:
    sheets = base()
    del sheets["Penugasan"]
    sheets["Kontak"] = [[row[0], *row[2:]] for row in sheets["Kontak"]]  # no `telepon`
    # Kept with the document, for import_contacts to raise with the database's problems.
    doc = read_contacts_workbook(workbook(tmp_path / "kurang.xlsx", sheets))
    text = "\n".join(str(problem) for problem in doc.problems)
    assert 'Berkas "kurang.xlsx": sheet "Penugasan" tidak ada' in text
    assert 'Sheet "Kontak", baris 1: kolom "telepon" tidak ada di baris judul' in text


async def test_rows_from_yaml_go_through_the_same_checks(session) -> None:
    doc = contacts_doc_from_rows({"Kontak": [{"nama": "A", "telepon": "0812000001", "peran": "x"}]})
    assert doc.contacts == []  # the bad row is left out, its problem kept
    with pytest.raises(ImportFileError, match=r'Sheet "Kontak", baris 2, kolom "peran"'):
        await import_contacts(doc, session=session)
