"""Write an evidence archive for SAPA-HAM: a ZIP laid out as
``{period}/{province}/{pemda}/{action code}/{measure}/{file}`` plus ``manifest.csv``.

Memory stays bounded whatever the size: each blob is copied from the evidence store in pieces
(``EvidenceStore.chunks``) straight into its ZIP entry, the manifest is written row by row to a
temporary file and copied in at the end, and ZIP64 takes over past 4 GiB or 65,535 entries. The
archive is built under a temporary name beside the target and renamed over it only when
complete and flushed to disk, so the final name never shows half an archive.

The manifest states each file's SHA-256 and size *as uploaded* (from the database), not as
read now: a blob damaged in the store since then is written as it is, reported, and caught by
``laporham export verify``.

An archive made to be sent into a chat (``for_chat``, `/rekap bukti`) carries no photo's
original: each photo is its display copy (upright, re-encoded without EXIF, so without GPS,
capture time or camera; storage/evidence/previews.py), documents are as received, and the
manifest has no capture-time or GPS columns. Its hashes and sizes are those of the bytes
written, so ``laporham export verify`` checks it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol
from zoneinfo import ZoneInfo

from storage.evidence import EvidenceNotFoundError, EvidenceStore
from storage.evidence.previews import sendable_key
from storage.evidence_export.names import ArchiveNames, path_component
from storage.evidence_export.plan import ExportFile, ExportPlan

__all__ = [
    "CHAT_MANIFEST_COLUMNS",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "ExportResult",
    "write_evidence_archive",
]

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = (
    "path",
    "sha256",
    "ukuran_byte",
    "nama_asli",
    "opd",
    "data_dukung",
    "diunggah_oleh",
    "diunggah_pada",
    "diambil_pada_exif",
    "gps_lat",
    "gps_lon",
)
# What a chat may carry: the originals' metadata (capture time, position) stays out.
CHAT_MANIFEST_COLUMNS = MANIFEST_COLUMNS[:-3]
# Lengths of each path part: a typical member path stays far under Windows' 260 characters
# once extracted into a folder.
PROVINCE_LENGTH, REGION_LENGTH, ACTION_LENGTH, MEASURE_LENGTH = 40, 40, 30, 50
OFFICE_LENGTH, LABEL_LENGTH, ORIGINAL_LENGTH = 30, 30, 24
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Progress = Callable[[int, int | None, str], None]
# Writes go to one thread of their own: spread over the default executor's threads, every
# thread's malloc arena kept pieces it had freed, and the peak grew with the thread count.
_WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence-export")


class Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass
class ExportResult:
    path: Path
    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)  # store keys with no blob: left out
    # for_chat: photos with no display copy, left out rather than send an original
    withheld: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)  # member paths whose bytes differ


async def write_evidence_archive(
    plan: ExportPlan,
    *,
    store: EvidenceStore,
    target: Path,
    progress: Progress | None = None,
    for_chat: bool = False,
) -> ExportResult:
    """Write ``plan`` to ``target`` (replaced atomically); the temporary file is removed on any
    error, so a failed export leaves the target as it was. ``for_chat``: no original photo and
    no capture time or position in it (the module's docstring)."""
    target = Path(target)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w+b") as raw:
            result = await _write(plan, store, raw, target, progress, for_chat=for_chat)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(target.parent)
    return result


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (not every filesystem lets a directory be synced)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


async def _write(
    plan: ExportPlan,
    store: EvidenceStore,
    raw: IO[bytes],
    target: Path,
    progress: Progress | None,
    *,
    for_chat: bool,
) -> ExportResult:
    result = ExportResult(path=target)
    names = ArchiveNames()
    numbers: Counter[tuple[str, str]] = Counter()
    label = f"Ekspor {plan.period_code}"
    total = len(plan.files)
    if progress:
        progress(0, total, label)
    with (
        zipfile.ZipFile(raw, "w", allowZip64=True) as archive,
        tempfile.TemporaryFile(dir=target.parent) as manifest_bytes,
    ):
        manifest_text = io.TextIOWrapper(manifest_bytes, encoding="utf-8-sig", newline="")
        manifest = csv.writer(manifest_text)
        manifest.writerow(CHAT_MANIFEST_COLUMNS if for_chat else MANIFEST_COLUMNS)
        for item in plan.files:
            key = _blob_key(item, for_chat=for_chat)
            if key is None:
                result.withheld.append(item.storage_key)
                if progress:
                    progress(1, total, label)
                continue
            folder = _folder(names, plan.period_code, item)
            stem = _file_stem(item, numbers, folder)
            path = names.file(folder, stem, _extension(key))
            copied = await _copy_blob(store, item, key, archive, path)
            if copied.outcome == "missing":
                result.missing.append(key)
            else:
                if copied.outcome == "damaged":
                    result.damaged.append(path)
                if for_chat:
                    manifest.writerow(_chat_manifest_row(path, item, copied))
                else:
                    manifest.writerow(_manifest_row(path, item))
                result.files += 1
                result.bytes += copied.size if for_chat else item.size
            if progress:
                progress(1, total, label)
        manifest_text.flush()
        manifest_text.detach()  # keeps manifest_bytes open for the copy below
        manifest_bytes.seek(0)
        info = zipfile.ZipInfo(MANIFEST_NAME, date_time=_zip_time(datetime.now().astimezone()))
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as entry:
            await asyncio.to_thread(shutil.copyfileobj, manifest_bytes, entry)
    return result


def _folder(names: ArchiveNames, period_code: str, item: ExportFile) -> str:
    period = names.folder(
        "", "period", path_component(period_code, max_length=20, fallback="periode")
    )
    province = names.folder(
        period,
        item.province_id,
        path_component(item.province_name, max_length=PROVINCE_LENGTH, fallback="provinsi"),
    )
    region = names.folder(
        province,
        item.region_id,
        path_component(item.region_name, max_length=REGION_LENGTH, fallback="pemda"),
    )
    action = names.folder(
        region,
        item.action_id,
        path_component(item.action_code, max_length=ACTION_LENGTH, fallback="aksi"),
    )
    measure_label = f"{item.measure_code} {item.measure_title}"
    return names.folder(
        action,
        item.measure_id,
        path_component(measure_label, max_length=MEASURE_LENGTH, fallback="ukuran"),
    )


def _file_stem(item: ExportFile, numbers: Counter[tuple[str, str]], folder: str) -> str:
    """``{office} - {evidence label} {NN}[ - {original name}]``: who sent which data dukung."""
    office = path_component(item.office_name, max_length=OFFICE_LENGTH, fallback="OPD")
    label = path_component(item.requirement_label, max_length=LABEL_LENGTH, fallback="bukti")
    numbers[(folder, f"{office}/{label}")] += 1
    stem = f"{office} - {label} {numbers[(folder, f'{office}/{label}')]:02d}"
    original = (item.original_name or "").rsplit(".", 1)[0]
    original_part = path_component(original, max_length=ORIGINAL_LENGTH, fallback="")
    return f"{stem} - {original_part}" if original_part else stem


def _extension(storage_key: str) -> str:
    # The store's key ends in the extension of the type sniffed at upload (validated there).
    return storage_key.rsplit(".", 1)[-1]


def _blob_key(item: ExportFile, *, for_chat: bool) -> str | None:
    """The blob to put in the archive: the original, or for a chat what may go into one
    (None: a photo without a display copy, which is left out)."""
    if not for_chat:
        return item.storage_key
    try:
        return sendable_key(
            kind=item.kind, storage_key=item.storage_key, display_key=item.display_key
        )
    except ValueError:
        return None


@dataclass
class Copied:
    outcome: str  # "ok", "damaged" (bytes differ from the upload's hash) or "missing"
    sha256: str = ""  # of the bytes written
    size: int = 0


async def _copy_blob(
    store: EvidenceStore, item: ExportFile, key: str, archive: zipfile.ZipFile, path: str
) -> Copied:
    """Copy the blob ``key`` of ``item`` into the entry ``path`` (none written if missing).
    Only the original's bytes can be checked against the upload's hash."""
    pieces = store.chunks(key)
    try:
        first = await anext(pieces, b"")
    except EvidenceNotFoundError:
        return Copied("missing")
    info = zipfile.ZipInfo(path, date_time=_zip_time(_local(item.received_at, item.timezone)))
    info.compress_type = zipfile.ZIP_STORED  # photos, PDF, DOCX, XLSX: compressed already
    if key == item.storage_key:  # (a display copy is a phone photo's size: far under ZIP64's)
        info.file_size = item.size  # lets zipfile choose ZIP64 for the entry up front if needed
    digest: Digest = hashlib.sha256()
    loop = asyncio.get_running_loop()
    size = 0
    with archive.open(info, "w") as entry:
        piece = first
        while piece:
            await loop.run_in_executor(_WRITER, _write_piece, entry, digest, piece)
            size += len(piece)
            piece = await anext(pieces, b"")
    written = digest.hexdigest()
    damaged = key == item.storage_key and written != item.sha256
    return Copied("damaged" if damaged else "ok", written, size)


def _write_piece(entry: IO[bytes], digest: Digest, piece: bytes) -> None:
    digest.update(piece)
    entry.write(piece)


def _manifest_row(path: str, item: ExportFile) -> list[str]:
    return [
        path,
        item.sha256,
        str(item.size),
        _cell(item.original_name),
        _cell(item.office_name),
        _cell(item.requirement_label),
        _cell(item.uploaded_by),
        _local(item.received_at, item.timezone).isoformat(timespec="seconds"),
        _local(item.taken_at, item.timezone).isoformat(timespec="seconds") if item.taken_at else "",
        f"{item.gps_lat:.6f}" if item.gps_lat is not None else "",
        f"{item.gps_lon:.6f}" if item.gps_lon is not None else "",
    ]


def _chat_manifest_row(path: str, item: ExportFile, copied: Copied) -> list[str]:
    """The manifest's row without capture time and position, stating the bytes written."""
    row = _manifest_row(path, item)[: len(CHAT_MANIFEST_COLUMNS)]
    row[1], row[2] = copied.sha256, str(copied.size)
    return row


def _cell(text: str | None) -> str:
    """User text as a spreadsheet shows it, never as a formula it would run."""
    value = text or ""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def _local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    # ZIP stores local wall-clock time from 1980 on, without a zone.
    clamped = max(moment.replace(tzinfo=None), datetime(1980, 1, 1))
    return (clamped.year, clamped.month, clamped.day, clamped.hour, clamped.minute, clamped.second)
