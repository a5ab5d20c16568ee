"""Check an evidence archive against its own manifest: every listed file is there, with the
listed size and SHA-256, and nothing unlisted rides along. Reads each entry in pieces, so an
archive of any size is checked in bounded memory; nothing is ever extracted to disk."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from storage.evidence.store import CHUNK_SIZE
from storage.evidence_export.archive import MANIFEST_COLUMNS, MANIFEST_NAME
from storage.evidence_export.plan import ExportError

__all__ = ["Mismatch", "MismatchKind", "VerifyResult", "verify_archive"]

# What a damaged or hostile archive raises while an entry is read.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
)


class MismatchKind(StrEnum):
    hash = "SHA-256 tidak sama dengan manifest"
    size = "ukuran tidak sama dengan manifest"
    missing = "tercatat di manifest tetapi tidak ada di arsip"
    unlisted = "ada di arsip tetapi tidak tercatat di manifest"
    unreadable = "tidak dapat dibaca (arsip rusak)"
    duplicate = "tercatat lebih dari sekali di manifest"


@dataclass(frozen=True, slots=True)
class Mismatch:
    path: str
    kind: MismatchKind


@dataclass
class VerifyResult:
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def verify_archive(path: Path) -> VerifyResult:
    """Raises :class:`ExportError` when the file is no archive of ours (not a ZIP, no manifest,
    a manifest without our columns)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ExportError(f"{path} bukan arsip ZIP yang dapat dibaca: {error}") from error
    with archive:
        members = {info.filename for info in archive.infolist() if not info.is_dir()}
        if MANIFEST_NAME not in members:
            raise ExportError(f"{path} tidak berisi {MANIFEST_NAME}.")
        result = VerifyResult()
        listed: set[str] = set()
        for row in _manifest_rows(archive):
            member = row["path"]
            if member in listed:
                result.mismatches.append(Mismatch(member, MismatchKind.duplicate))
                continue
            listed.add(member)
            result.checked += 1
            problem = _check_entry(archive, member, row, members)
            if problem is not None:
                result.mismatches.append(Mismatch(member, problem))
        for unlisted in sorted(members - listed - {MANIFEST_NAME}):
            result.mismatches.append(Mismatch(unlisted, MismatchKind.unlisted))
    return result


def _manifest_rows(archive: zipfile.ZipFile) -> Iterator[dict[str, str]]:
    try:
        with archive.open(MANIFEST_NAME) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            reader = csv.DictReader(text)
            if not set(MANIFEST_COLUMNS[:3]) <= set(reader.fieldnames or ()):
                raise ExportError(f"{MANIFEST_NAME} tidak memuat kolom path, sha256, ukuran_byte.")
            for row in reader:
                yield {key: value or "" for key, value in row.items() if key is not None}
    except (*_READ_ERRORS, UnicodeDecodeError, csv.Error) as error:
        raise ExportError(f"{MANIFEST_NAME} tidak dapat dibaca: {error}") from error


def _check_entry(
    archive: zipfile.ZipFile, member: str, row: dict[str, str], members: set[str]
) -> MismatchKind | None:
    if member not in members:
        return MismatchKind.missing
    digest, size = hashlib.sha256(), 0
    try:
        with archive.open(member) as entry:
            while piece := entry.read(CHUNK_SIZE):
                digest.update(piece)
                size += len(piece)
    except _READ_ERRORS:
        return MismatchKind.unreadable  # a CRC that no longer matches lands here too
    if str(size) != row["ukuran_byte"].strip():
        return MismatchKind.size
    if digest.hexdigest() != row["sha256"].strip().lower():
        return MismatchKind.hash
    return None
