"""Names inside an evidence archive: whatever text comes in, what comes out is one safe,
readable path component, and no two things share a name in one folder."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pathvalidate import validate_filename

from storage.evidence_export import ArchiveNames, path_component

SAFE = re.compile(r"[A-Za-z0-9()_,][A-Za-z0-9()_, -]*")


@given(st.text(max_size=400))
def test_any_text_becomes_one_safe_component(text: str) -> None:
    name = path_component(text, max_length=40, fallback="berkas")
    assert SAFE.fullmatch(name), name
    assert len(name) <= 41 and not name.endswith(" ")  # 41: a reserved name gets a "_"
    validate_filename(name, platform="universal")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dinas Koperasi dan UMKM", "Dinas Koperasi dan UMKM"),
        ("KK-01", "KK-01"),
        ("../../etc/passwd", "etc passwd"),
        ("..", "berkas"),
        ("CON", "CON_"),
        ("-rf", "rf"),
        ("Rapat: 1/2 *final*?", "Rapat 1 2 final"),
        ("Kecamatan Bukit Kemuning dan sekitarnya sekali lagi", "Kecamatan Bukit Kemuning dan"),
        ("Sékolah Inklusi", "Sekolah Inklusi"),
    ],
)
def test_readable_names_stay_readable(text: str, expected: str) -> None:
    assert path_component(text, max_length=30, fallback="berkas") == expected


def test_folders_are_stable_per_key_and_names_unique_per_parent() -> None:
    names = ArchiveNames()
    first = names.folder("B08", 1, "Kota Metro")
    assert names.folder("B08", 1, "Kota Metro") == first == "B08/Kota Metro"
    assert names.folder("B08", 2, "KOTA METRO") == "B08/KOTA METRO (2)"  # Windows: same folder
    assert names.folder("B09", 2, "Kota Metro") == "B09/Kota Metro"
    assert names.file(first, "Foto", "jpg") == "B08/Kota Metro/Foto.jpg"
    assert names.file(first, "Foto", "jpg") == "B08/Kota Metro/Foto (2).jpg"
    assert names.file(first, "Foto", "pdf") == "B08/Kota Metro/Foto.pdf"
