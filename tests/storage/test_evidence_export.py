"""Evidence exports for SAPA-HAM (issue #15, "Exports"): the archive's layout and manifest, names
from hostile uploads, what counts, scope by region, `verify`, the atomic write, and memory that
does not grow with the archive."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pathvalidate import validate_filename
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.evidence import EvidenceNotFoundError, LocalEvidenceStore
from storage.evidence_export import (
    CHAT_MANIFEST_COLUMNS,
    MANIFEST_NAME,
    ExportError,
    MismatchKind,
    evidence_plan,
    verify_archive,
    write_evidence_archive,
)
from storage.models import (
    EvidenceFile,
    EvidenceRequirement,
    Measure,
    Office,
    Region,
    RegionKind,
    Submission,
    SubmissionStatus,
    SubmissionVersion,
)
from tests.support.factories import World, make_world

RECEIVED = datetime(2025, 8, 20, 7, 30, tzinfo=UTC)  # 14.30 WIB


@dataclass
class Place:
    """Where files go: the world of the factories plus a second province with a kabupaten."""

    world: World
    store: LocalEvidenceStore
    photo_requirement: EvidenceRequirement  # "Foto kegiatan" of KK-01's first measure
    other_region: Region  # Kabupaten Bangka, in another province
    other_office: Office
    province_office: Office  # an OPD of the province of Lampung itself


async def make_place(session: AsyncSession, data_dir: Path) -> Place:
    world = await make_world(session)
    measure = (
        await session.exec(select(Measure).where(Measure.action_id == world.action.id))
    ).first()
    assert measure is not None
    requirement = (
        await session.exec(
            select(EvidenceRequirement).where(EvidenceRequirement.measure_id == measure.id)
        )
    ).one()
    other_province = Region(code="19", name="Kepulauan Bangka Belitung", kind=RegionKind.provinsi)
    session.add(other_province)
    await session.flush()
    other = Region(
        code="19.01", name="Kabupaten Bangka", kind=RegionKind.kabkota, parent_id=other_province.id
    )
    session.add(other)
    await session.flush()
    other_office = Office(region_id=other.id or 0, code="dinsos", name="Dinas Sosial")
    province_office = Office(region_id=world.province.id or 0, code="biro", name="Biro Hukum")
    session.add_all([other_office, province_office])
    await session.flush()
    store = LocalEvidenceStore(data_dir / "evidence")
    return Place(world, store, requirement, other, other_office, province_office)


async def report(
    session: AsyncSession,
    place: Place,
    office: Office,
    *,
    status: SubmissionStatus = SubmissionStatus.submitted,
    action_id: int | None = None,
) -> Submission:
    submission = Submission(
        action_id=action_id or place.world.action.id or 0,
        office_id=office.id or 0,
        period_id=place.world.period.id or 0,
        status=status,
    )
    session.add(submission)
    await session.flush()
    return submission


async def attach(
    session: AsyncSession,
    place: Place,
    submission: Submission,
    data: bytes,
    original_name: str | None,
    *,
    extension: str = "jpg",
    removed: bool = False,
    gps: tuple[float, float] | None = None,
) -> EvidenceFile:
    key = await place.store.put(data, extension=extension)
    file = EvidenceFile(
        submission_id=submission.id or 0,
        requirement_id=place.photo_requirement.id or 0,
        sha256=hashlib.sha256(data).hexdigest(),
        original_name=original_name,
        detected_mime="image/jpeg",
        kind="photo",
        size=len(data),
        storage_key=key,
        taken_at=datetime(2025, 8, 19, 2, 0, tzinfo=UTC) if gps else None,
        gps_lat=gps[0] if gps else None,
        gps_lon=gps[1] if gps else None,
        uploaded_by_id=place.world.focal_point.id,
        received_at=RECEIVED,
        removed_at=RECEIVED if removed else None,
    )
    session.add(file)
    await session.flush()
    return file


async def export(session: AsyncSession, place: Place, target: Path, **scope: str) -> Path:
    plan = await evidence_plan(session=session, period_code="B08", **scope)
    result = await write_evidence_archive(plan, store=place.store, target=target)
    assert result.missing == [] and result.damaged == []
    return target


def manifest_of(archive_path: Path) -> list[dict[str, str]]:
    with zipfile.ZipFile(archive_path) as archive, archive.open(MANIFEST_NAME) as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")))


def members(archive_path: Path) -> list[str]:
    with zipfile.ZipFile(archive_path) as archive:
        return sorted(name for name in archive.namelist() if name != MANIFEST_NAME)


# --------------------------------------------------------------------------- layout, manifest


async def test_layout_is_period_province_pemda_action_measure_and_the_manifest_hashes_match(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    place = await make_place(session, data_dir)
    submission = await report(session, place, place.world.office)
    first = await attach(
        session, place, submission, b"foto-1" * 1000, "rapat.jpg", gps=(-5.4291, 105.2619)
    )
    await attach(session, place, submission, b"foto-2" * 1000, None)
    await session.commit()

    archive_path = await export(session, place, tmp_path / "b08.zip")

    folder = "B08/Lampung/Kota Bandar Lampung/KK-01/1 Bantuan atau pelatihan telah disalurkan"
    assert members(archive_path) == [
        f"{folder}/Dinas Koperasi dan UMKM - Foto kegiatan 01 - rapat.jpg",
        f"{folder}/Dinas Koperasi dan UMKM - Foto kegiatan 02.jpg",
    ]
    rows = manifest_of(archive_path)
    with zipfile.ZipFile(archive_path) as archive:
        for row in rows:
            content = archive.read(row["path"])
            assert row["sha256"] == hashlib.sha256(content).hexdigest()
            assert row["ukuran_byte"] == str(len(content))
    described = rows[0]
    assert described["sha256"] == first.sha256
    assert described["nama_asli"] == "rapat.jpg"
    assert described["opd"] == "Dinas Koperasi dan UMKM"
    assert described["data_dukung"] == "Foto kegiatan"
    assert described["diunggah_oleh"] == "Siti Rahma"
    assert described["diunggah_pada"] == "2025-08-20T14:30:00+07:00"  # the pemda's own time
    assert described["diambil_pada_exif"] == "2025-08-19T09:00:00+07:00"
    assert (described["gps_lat"], described["gps_lon"]) == ("-5.429100", "105.261900")
    assert rows[1]["gps_lat"] == "" and rows[1]["diambil_pada_exif"] == ""
    assert verify_archive(archive_path).ok


async def test_an_archive_for_a_chat_carries_display_copies_and_no_position(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    """#13 item 16: originals' metadata never goes back into a chat, the `/rekap bukti` ZIP
    included. Photos go as their display copies, a photo without one is left out, documents
    go as received, and the manifest has no capture time or GPS yet still verifies."""
    place = await make_place(session, data_dir)
    submission = await report(session, place, place.world.office)
    with_copy = await attach(
        session, place, submission, b"original-exif" * 500, "rapat.jpg", gps=(-5.4291, 105.2619)
    )
    with_copy.display_key = await place.store.put(b"display-no-exif" * 100, extension="jpg")
    session.add(with_copy)
    await attach(session, place, submission, b"no-display-copy" * 500, "lama.jpg")
    document = await attach(session, place, submission, b"%PDF-1.4 notulen", "notulen.pdf")
    document.kind, document.detected_mime = "pdf", "application/pdf"
    session.add(document)
    await session.commit()

    plan = await evidence_plan(session=session, period_code="B08")
    target = tmp_path / "chat.zip"
    result = await write_evidence_archive(plan, store=place.store, target=target, for_chat=True)

    assert result.withheld == [plan.files[1].storage_key] and result.files == 2
    rows = manifest_of(target)
    assert list(rows[0]) == list(CHAT_MANIFEST_COLUMNS)
    assert not {"diambil_pada_exif", "gps_lat", "gps_lon"} & set(rows[0])
    with zipfile.ZipFile(target) as archive:
        contents = [archive.read(row["path"]) for row in rows]
    assert contents == [b"display-no-exif" * 100, b"%PDF-1.4 notulen"]
    assert all(b"original-exif" not in content for content in contents)
    assert rows[0]["sha256"] == hashlib.sha256(contents[0]).hexdigest()
    assert rows[1]["sha256"] == document.sha256  # a document is the upload itself
    assert verify_archive(target).ok


async def test_the_archive_is_private_and_leaves_no_temporary_file(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    place = await make_place(session, data_dir)
    submission = await report(session, place, place.world.office)
    await attach(session, place, submission, b"foto", "a.jpg")
    await session.commit()
    out = tmp_path / "out"
    out.mkdir()
    archive_path = await export(session, place, out / "b08.zip")
    assert os.listdir(out) == ["b08.zip"]
    assert archive_path.stat().st_mode & 0o077 == 0  # names, phone users, GPS: owner only


# --------------------------------------------------------------------------- hostile names

HOSTILE_NAMES = [
    "../../../etc/passwd",
    "/etc/shadow.jpg",
    "..\\..\\Windows\\system.ini",
    "C:\\boot.jpg",
    "CON.jpg",
    "..",
    ".bashrc",
    "-rf.jpg",
    "\x01nul\x1f.jpg",  # (a NUL cannot even be stored on PostgreSQL)
    "\u202egpj.exe",
    '=HYPERLINK("http://x").jpg',
    "a" * 250 + ".jpg",  # stored cut at 255, as the report flow does
    "rapat.jpg",
    "RAPAT.jpg",  # same name in another case: Windows would merge them
]


async def test_hostile_original_names_stay_inside_the_archive_root(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    place = await make_place(session, data_dir)
    submission = await report(session, place, place.world.office)
    for index, name in enumerate(HOSTILE_NAMES):
        await attach(session, place, submission, f"bukti {index}".encode(), name)
    await session.commit()

    archive_path = await export(session, place, tmp_path / "b08.zip")

    paths = members(archive_path)
    assert len(set(map(str.casefold, paths))) == len(HOSTILE_NAMES)
    for path in paths:
        assert path.startswith("B08/") and "\\" not in path and len(path) < 260
        for part in path.split("/"):
            validate_filename(part, platform="universal")  # raises on a bad or reserved name
            assert not part.startswith((".", "-"))
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(archive_path) as archive:
        archive.extractall(extracted)
    root = extracted.resolve()
    written = [p for p in extracted.rglob("*") if p.is_file()]
    assert len(written) == len(HOSTILE_NAMES) + 1
    assert all(p.resolve().is_relative_to(root) for p in written)
    formula = next(r for r in manifest_of(archive_path) if "HYPERLINK" in r["nama_asli"])
    assert formula["nama_asli"].startswith("'=")  # shown as text by a spreadsheet, never run


# --------------------------------------------------------------------------- what counts


async def test_only_the_counting_version_of_submitted_reports_is_exported(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    place = await make_place(session, data_dir)
    world = place.world
    submitted = await report(session, place, world.office)
    await attach(session, place, submitted, b"live", "dikirim.jpg")
    await attach(session, place, submitted, b"taken back", "dihapus.jpg", removed=True)
    draft = await report(
        session,
        place,
        world.office,
        action_id=world.second_action.id,
        status=SubmissionStatus.draft,
    )
    await attach(session, place, draft, b"draft", "draf.jpg")
    returned = await report(session, place, place.province_office, status=SubmissionStatus.returned)
    await attach(session, place, returned, b"returned", "dikembalikan.jpg")
    approved = await report(session, place, place.other_office, status=SubmissionStatus.approved)
    await attach(session, place, approved, b"approved", "disetujui.jpg")
    # Reopened for revision: version 1 counts, with the file later removed in the revision;
    # the file added to the open revision does not count yet.
    revised = await report(session, place, place.province_office, action_id=world.second_action.id)
    kept = await attach(session, place, revised, b"version one", "versi1.jpg", removed=True)
    await attach(session, place, revised, b"revision", "revisi.jpg")
    revised.revision_open = True
    revised.version = 2
    session.add(
        SubmissionVersion(
            submission_id=revised.id or 0,
            version=1,
            status=SubmissionStatus.submitted,
            snapshot={"answers": {}, "evidence": [{"id": kept.id, "sha256": kept.sha256}]},
        )
    )
    await session.commit()

    archive_path = await export(session, place, tmp_path / "b08.zip")

    names = {row["nama_asli"] for row in manifest_of(archive_path)}
    assert names == {"dikirim.jpg", "disetujui.jpg", "versi1.jpg"}


async def test_a_draft_never_reaches_the_archive(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    place = await make_place(session, data_dir)
    draft = await report(session, place, place.world.office, status=SubmissionStatus.draft)
    await attach(session, place, draft, b"draft", "draf.jpg")
    await session.commit()
    archive_path = await export(session, place, tmp_path / "b08.zip")
    assert members(archive_path) == [] and manifest_of(archive_path) == []


# --------------------------------------------------------------------------- scope by region


@pytest.mark.parametrize(
    ("region_code", "expected"),
    [
        ("18", {"kota.jpg", "provinsi.jpg"}),  # the province brings its kabupaten/kota
        ("18.71", {"kota.jpg"}),
        ("19.01", {"bangka.jpg"}),
        (None, {"kota.jpg", "provinsi.jpg", "bangka.jpg"}),
    ],
)
async def test_scope_by_region(
    session: AsyncSession,
    data_dir: Path,
    tmp_path: Path,
    region_code: str | None,
    expected: set[str],
) -> None:
    place = await make_place(session, data_dir)
    for office, name in [
        (place.world.office, "kota.jpg"),
        (place.province_office, "provinsi.jpg"),
        (place.other_office, "bangka.jpg"),
    ]:
        await attach(session, place, await report(session, place, office), name.encode(), name)
    await session.commit()
    scope = {"region_code": region_code} if region_code else {}

    archive_path = await export(session, place, tmp_path / "b08.zip", **scope)

    rows = manifest_of(archive_path)
    assert {row["nama_asli"] for row in rows} == expected
    paths = {row["nama_asli"]: row["path"] for row in rows}
    if "provinsi.jpg" in paths:  # a province's own actions sit under its own name twice
        assert paths["provinsi.jpg"].startswith("B08/Lampung/Lampung/KK-01/")
    if "bangka.jpg" in paths:
        assert paths["bangka.jpg"].startswith("B08/Kepulauan Bangka Belitung/Kabupaten Bangka/")


async def test_an_unknown_period_or_region_is_a_clear_error(
    session: AsyncSession, data_dir: Path
) -> None:
    await make_place(session, data_dir)
    await session.commit()
    with pytest.raises(ExportError, match='Periode "B13" tidak ditemukan'):
        await evidence_plan(session=session, period_code="B13")
    with pytest.raises(ExportError, match='Wilayah dengan kode "99" tidak ditemukan'):
        await evidence_plan(session=session, period_code="b08", region_code="99")


# --------------------------------------------------------------------------- store problems


async def test_a_missing_blob_is_reported_and_left_out(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    place = await make_place(session, data_dir)
    submission = await report(session, place, place.world.office)
    lost = await attach(session, place, submission, b"lost", "hilang.jpg")
    await attach(session, place, submission, b"here", "ada.jpg")
    await session.commit()
    (place.store.root / lost.storage_key).unlink()

    plan = await evidence_plan(session=session, period_code="B08")
    result = await write_evidence_archive(plan, store=place.store, target=tmp_path / "b08.zip")

    assert result.missing == [lost.storage_key] and result.files == 1
    assert [row["nama_asli"] for row in manifest_of(result.path)] == ["ada.jpg"]
    assert verify_archive(result.path).ok


class FailingStore(LocalEvidenceStore):
    """Gives the first piece of each blob, then the disk fails."""

    async def chunks(self, key: str, *, chunk_size: int = 4) -> AsyncIterator[bytes]:
        async for piece in super().chunks(key, chunk_size=chunk_size):
            yield piece
            raise OSError("disk read error")


async def test_a_failed_export_leaves_the_previous_archive_and_no_half_file(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    place = await make_place(session, data_dir)
    submission = await report(session, place, place.world.office)
    await attach(session, place, submission, b"a longer photo", "a.jpg")
    await session.commit()
    out = tmp_path / "out"
    out.mkdir()
    target = out / "b08.zip"
    target.write_bytes(b"yesterday's archive")
    plan = await evidence_plan(session=session, period_code="B08")

    with pytest.raises(OSError, match="disk read error"):
        await write_evidence_archive(plan, store=FailingStore(place.store.root), target=target)

    assert os.listdir(out) == ["b08.zip"]
    assert target.read_bytes() == b"yesterday's archive"


async def test_store_chunks_reads_a_blob_in_pieces(data_dir: Path) -> None:
    store = LocalEvidenceStore(data_dir / "evidence")
    key = await store.put(b"0123456789", extension="pdf")
    assert [piece async for piece in store.chunks(key, chunk_size=4)] == [b"0123", b"4567", b"89"]
    with pytest.raises(EvidenceNotFoundError):
        [piece async for piece in store.chunks("ab/" + "ab" + "0" * 62 + ".pdf")]
    with pytest.raises(ValueError, match="invalid evidence key"):
        [piece async for piece in store.chunks("../../etc/passwd")]


# --------------------------------------------------------------------------- verify


async def two_file_archive(session: AsyncSession, data_dir: Path, target: Path) -> Path:
    place = await make_place(session, data_dir)
    submission = await report(session, place, place.world.office)
    await attach(session, place, submission, b"first photo" * 100, "satu.jpg")
    await attach(session, place, submission, b"second photo" * 100, "dua.jpg")
    await session.commit()
    return await export(session, place, target)


def rewrite(source: Path, target: Path, change: dict[str, bytes | None]) -> None:
    """A copy of the archive with entries replaced (bytes), dropped (None) or added."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            if info.filename in change:
                replacement = change[info.filename]
                if replacement is not None:
                    new.writestr(info, replacement)
            else:
                new.writestr(info, old.read(info))
        for name, data in change.items():
            if name not in old.namelist() and data is not None:
                new.writestr(name, data)


async def test_verify_names_each_tampered_missing_or_unlisted_file(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    original = await two_file_archive(session, data_dir, tmp_path / "b08.zip")
    first, second = members(original)
    tampered = tmp_path / "tampered.zip"
    rewrite(
        original,
        tampered,
        {first: b"first photo" * 99 + b"FIRST PHOTO", second: None, "B08/extra.jpg": b"x"},
    )

    result = verify_archive(tampered)

    assert result.checked == 2
    assert {(m.path, m.kind) for m in result.mismatches} == {
        (first, MismatchKind.hash),
        (second, MismatchKind.missing),
        ("B08/extra.jpg", MismatchKind.unlisted),
    }


async def test_verify_catches_bytes_changed_in_place(
    session: AsyncSession, data_dir: Path, tmp_path: Path
) -> None:
    archive_path = await two_file_archive(session, data_dir, tmp_path / "b08.zip")
    raw = bytearray(archive_path.read_bytes())
    at = raw.index(b"second photo")
    raw[at : at + 6] = b"SECOND"  # the entry's CRC no longer matches: zipfile refuses it
    archive_path.write_bytes(bytes(raw))
    kinds = [m.kind for m in verify_archive(archive_path).mismatches]
    assert kinds == [MismatchKind.unreadable]


def test_verify_refuses_what_is_not_an_export(tmp_path: Path) -> None:
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"PK but not really")
    with pytest.raises(ExportError, match="bukan arsip ZIP"):
        verify_archive(not_zip)
    no_manifest = tmp_path / "y.zip"
    with zipfile.ZipFile(no_manifest, "w") as archive:
        archive.writestr("a.txt", "a")
    with pytest.raises(ExportError, match=r"tidak berisi manifest\.csv"):
        verify_archive(no_manifest)


# --------------------------------------------------------------------------- memory

CHILD = """
import asyncio, sys
from pathlib import Path
from storage.db import create_engine, session_factory
from storage.evidence import LocalEvidenceStore
from storage.evidence_export import evidence_plan, write_evidence_archive

def peak_mb():
    # VmHWM, not ru_maxrss: Linux carries the parent's (pytest's) high-water mark into
    # ru_maxrss across exec; VmHWM belongs to this process's own memory map.
    status = Path("/proc/self/status").read_text()
    return next(int(l.split()[1]) for l in status.splitlines() if l.startswith("VmHWM")) // 1024

async def main(url, root, target):
    engine = create_engine(url)
    async with session_factory(engine)() as session:
        plan = await evidence_plan(session=session, period_code="B08")
    await engine.dispose()
    before = peak_mb()
    store = LocalEvidenceStore(Path(root))
    result = await write_evidence_archive(plan, store=store, target=Path(target))
    print(before, peak_mb(), result.bytes >> 20)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_exporting_many_large_files_does_not_hold_them_in_memory(
    session: AsyncSession, data_dir: Path, tmp_path: Path, database_url: str
) -> None:
    """12 files of 16 MiB (192 MiB) through a fresh process: its peak grows by a few pieces
    of a file at most, never by a file, let alone the archive."""
    place = await make_place(session, data_dir)
    submission = await report(session, place, place.world.office)
    block = os.urandom(16 << 20)
    for index in range(12):
        await attach(session, place, submission, index.to_bytes(4, "big") + block, f"{index}.jpg")
    del block
    await session.commit()
    target = tmp_path / "big.zip"

    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD, database_url, str(place.store.root), str(target)],
        capture_output=True,
        text=True,
        check=True,
    )

    before, after, exported_mb = map(int, result.stdout.split())
    assert exported_mb == 192
    assert after - before < 16, (before, after)  # less than one of the files
    assert verify_archive(target).ok
