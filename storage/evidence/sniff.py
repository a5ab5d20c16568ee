"""Detect an evidence file's type from its bytes, and the result/error types shared by the package.

The type is decided by magic numbers only: a client's file name or claimed MIME type is never
consulted, because both are attacker-controlled and a wrong extension is also the most common
honest mistake.

Why a hand-written sniffer instead of libmagic / python-magic / filetype: the allow-list is only
seven types, each with a fixed signature, and telling DOCX/XLSX apart from any other ZIP (and
from their macro-enabled twins) requires opening the ZIP and reading ``[Content_Types].xml``
anyway, which no generic sniffer does. A native dependency would buy nothing here.

ZIP inspection is defensive: the end-of-central-directory record is checked before
:mod:`zipfile` builds its entry list, declared sizes and per-entry compression ratios are
bounded before anything is decompressed, and the only entry ever decompressed is
``[Content_Types].xml`` (itself size-capped). The XML is parsed with expat with DOCTYPE
declarations refused, so entity-expansion tricks cannot run. Whether a file of the detected type
also has content (pages, a body, a sheet) is :mod:`storage.evidence.documents`' question.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from xml.parsers import expat

__all__ = [
    "DOCX_MIME",
    "XLSX_MIME",
    "DetectedType",
    "EvidenceKind",
    "EvidenceRejected",
    "RejectionCode",
    "detect_type",
    "read_content_types",
]


class EvidenceKind(StrEnum):
    """What a reporting requirement accepts; several MIME types can share one kind."""

    PHOTO = "photo"
    PDF = "pdf"
    DOCX = "docx"
    XLSX = "xlsx"


class RejectionCode(StrEnum):
    """Machine-readable reason; the chat layer maps each code to an Indonesian user message."""

    TOO_LARGE = "too_large"
    EMPTY = "empty"
    NO_CONTENT = "no_content"  # a PDF without pages, a DOCX without body, an XLSX without sheet
    ENCRYPTED = "encrypted"  # needs a password to open
    UNSUPPORTED_TYPE = "unsupported_type"
    MACRO_ENABLED = "macro_enabled"
    ZIP_BOMB = "zip_bomb"
    IMAGE_BOMB = "image_bomb"
    CORRUPT = "corrupt"


class EvidenceRejected(Exception):
    """An upload we refuse to store. ``detail`` is English, for logs only, never shown to users."""

    def __init__(self, code: RejectionCode, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    def __reduce__(self) -> tuple[type[EvidenceRejected], tuple[RejectionCode, str]]:
        # Keeps the exception picklable (process pools, task queues) despite the 2-arg init.
        return (type(self), (self.code, self.detail))


@dataclass(frozen=True, slots=True)
class DetectedType:
    kind: EvidenceKind
    mime: str
    extension: str  # canonical, without dot; the only extension that ever reaches a storage key


DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

JPEG = DetectedType(EvidenceKind.PHOTO, "image/jpeg", "jpg")
PNG = DetectedType(EvidenceKind.PHOTO, "image/png", "png")
WEBP = DetectedType(EvidenceKind.PHOTO, "image/webp", "webp")
HEIC = DetectedType(EvidenceKind.PHOTO, "image/heic", "heic")
PDF = DetectedType(EvidenceKind.PDF, "application/pdf", "pdf")
DOCX = DetectedType(EvidenceKind.DOCX, DOCX_MIME, "docx")
XLSX = DetectedType(EvidenceKind.XLSX, XLSX_MIME, "xlsx")

# --- ZIP limits. A real DOCX/XLSX has tens of entries and compresses XML about 5-20:1. ---
MAX_ZIP_ENTRIES = 2_000
MAX_ZIP_TOTAL_UNCOMPRESSED = 200 * 1024 * 1024
MAX_ZIP_RATIO = 100
ZIP_RATIO_MIN_ENTRY = 1024 * 1024  # small entries may compress absurdly well; harmless
MAX_ZIP_CENTRAL_DIRECTORY = 4 * 1024 * 1024  # bounds zipfile's own parsing work and memory
MAX_CONTENT_TYPES_BYTES = 1024 * 1024

# HEIF brands of still images. AVIF shares the ISO-BMFF container (and often the mif1 brand)
# but pillow-heif here ships no AV1 decoder, so AVIF is refused explicitly.
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

_CONTENT_TYPES_PART = "[Content_Types].xml"
_DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_VBA_CONTENT_TYPE = "application/vnd.ms-office.vbaproject"

_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_SIZE = 22
_EOCD_SEARCH = _EOCD_SIZE + 0xFFFF  # the record may be followed by a comment of up to 64 KiB


def detect_type(data: bytes) -> DetectedType:
    """Return the detected type or raise :class:`EvidenceRejected`."""
    if not data:
        raise EvidenceRejected(RejectionCode.EMPTY, "no bytes")
    simple = _sniff_simple(data)
    if simple is not None:
        return simple
    if data.startswith(b"PK\x03\x04"):
        return _sniff_ooxml(data)
    raise EvidenceRejected(RejectionCode.UNSUPPORTED_TYPE, f"unknown signature {data[:8]!r}")


def _sniff_simple(data: bytes) -> DetectedType | None:
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    if data[4:8] == b"ftyp":
        return _sniff_heif(data)
    return None


def _sniff_heif(data: bytes) -> DetectedType:
    brands = _ftyp_brands(data)
    if brands & _AVIF_BRANDS:
        raise EvidenceRejected(RejectionCode.UNSUPPORTED_TYPE, "AVIF is not accepted")
    if brands & _HEIC_BRANDS:
        return HEIC
    # Same container as MP4/MOV/3GP video, which we refuse.
    raise EvidenceRejected(RejectionCode.UNSUPPORTED_TYPE, f"ISO-BMFF brands {sorted(brands)}")


def _ftyp_brands(data: bytes) -> set[bytes]:
    """Major brand plus compatible brands of the leading ``ftyp`` box."""
    (box_size,) = struct.unpack(">I", data[:4])
    # size 0/1 (to-end / 64-bit) is not used for ftyp in practice; clamp to what we hold.
    end = min(box_size if box_size >= 16 else 16, len(data), 4096)
    brands = {data[8:12]}
    # Bytes 12..16 are the minor version, compatible brands follow in 4-byte steps.
    brands.update(data[i : i + 4] for i in range(16, end - 3, 4))
    return brands


# --------------------------------------------------------------------------- OOXML


def _sniff_ooxml(data: bytes) -> DetectedType:
    _check_end_of_central_directory(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            _check_zip_limits(infos, len(data))
            _check_no_vba(infos)
            content_types = read_content_types(archive)
    except zipfile.BadZipFile as exc:
        raise EvidenceRejected(RejectionCode.CORRUPT, f"bad zip: {exc}") from exc
    except (EOFError, OSError, ValueError, RuntimeError, NotImplementedError, zlib.error) as exc:
        # Truncated streams, unknown compression, encrypted entries, bad CRC on the XML part.
        raise EvidenceRejected(RejectionCode.CORRUPT, f"unreadable zip: {exc}") from exc
    return _classify_ooxml(content_types, {info.filename.casefold() for info in infos})


def _check_end_of_central_directory(data: bytes) -> None:
    """Bound entry count and directory size before :mod:`zipfile` materialises every entry."""
    tail_start = max(0, len(data) - _EOCD_SEARCH)
    pos = data.rfind(_EOCD_SIGNATURE, tail_start)
    if pos < 0 or pos + _EOCD_SIZE > len(data):
        raise EvidenceRejected(RejectionCode.CORRUPT, "zip end-of-central-directory missing")
    entries, cd_size = struct.unpack("<xxxxxxxxxxHI", data[pos : pos + 16])
    # 0xFFFF means "see the ZIP64 record": more than we allow in any case.
    if entries > MAX_ZIP_ENTRIES:
        raise EvidenceRejected(RejectionCode.ZIP_BOMB, f"{entries} zip entries")
    if cd_size > MAX_ZIP_CENTRAL_DIRECTORY:
        raise EvidenceRejected(RejectionCode.ZIP_BOMB, f"central directory of {cd_size} bytes")


def _check_zip_limits(infos: list[zipfile.ZipInfo], archive_size: int) -> None:
    # The EOCD count can lie; the parsed directory cannot.
    if len(infos) > MAX_ZIP_ENTRIES:
        raise EvidenceRejected(RejectionCode.ZIP_BOMB, f"{len(infos)} zip entries")
    total = 0
    for info in infos:
        _check_zip_entry(info, archive_size)
        total += info.file_size
        if total > MAX_ZIP_TOTAL_UNCOMPRESSED:
            raise EvidenceRejected(RejectionCode.ZIP_BOMB, f"over {total} bytes uncompressed")


def _check_zip_entry(info: zipfile.ZipInfo, archive_size: int) -> None:
    # zipfile never inflates past the declared file_size, so declared sizes are a safe bound.
    if info.file_size > ZIP_RATIO_MIN_ENTRY and (
        info.compress_size == 0 or info.file_size / info.compress_size > MAX_ZIP_RATIO
    ):
        ratio = info.file_size / max(info.compress_size, 1)
        raise EvidenceRejected(
            RejectionCode.ZIP_BOMB, f"entry {info.filename!r} compresses {ratio:.0f}:1"
        )
    # Cheap truncation check without inflating anything: the data must lie inside the file.
    if info.header_offset + info.compress_size > archive_size:
        raise EvidenceRejected(RejectionCode.CORRUPT, f"entry {info.filename!r} is truncated")


def _check_no_vba(infos: list[zipfile.ZipInfo]) -> None:
    for info in infos:
        if PurePosixPath(info.filename).name.casefold() == "vbaproject.bin":
            raise EvidenceRejected(RejectionCode.MACRO_ENABLED, f"contains {info.filename!r}")


def read_content_types(archive: zipfile.ZipFile) -> dict[str, str]:
    """Map of part name (casefolded, no leading slash) → content type, plus ``*`` defaults."""
    try:
        info = archive.getinfo(_CONTENT_TYPES_PART)
    except KeyError as exc:
        raise EvidenceRejected(RejectionCode.UNSUPPORTED_TYPE, "zip is not OOXML") from exc
    if info.file_size > MAX_CONTENT_TYPES_BYTES:
        raise EvidenceRejected(RejectionCode.CORRUPT, "oversized [Content_Types].xml")
    with archive.open(info) as stream:
        xml = stream.read(MAX_CONTENT_TYPES_BYTES + 1)
    return _parse_content_types(xml)


def _parse_content_types(xml: bytes) -> dict[str, str]:
    found: dict[str, str] = {}

    def start(name: str, attrs: dict[str, str]) -> None:
        local = name.rsplit(" ", 1)[-1]  # namespace-qualified as "uri local"
        content_type = attrs.get("ContentType", "").strip().casefold()
        if local == "Override" and "PartName" in attrs:
            found[attrs["PartName"].lstrip("/").casefold()] = content_type
        elif local == "Default" and "Extension" in attrs:
            found["*." + attrs["Extension"].casefold()] = content_type

    def refuse_doctype(*_: object) -> None:
        raise EvidenceRejected(RejectionCode.CORRUPT, "DOCTYPE in [Content_Types].xml")

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = refuse_doctype
    try:
        parser.Parse(xml, True)
    except expat.ExpatError as exc:
        raise EvidenceRejected(RejectionCode.CORRUPT, f"bad [Content_Types].xml: {exc}") from exc
    return found


def _classify_ooxml(content_types: dict[str, str], entry_names: set[str]) -> DetectedType:
    values = set(content_types.values())
    if _VBA_CONTENT_TYPE in values or any("macroenabled" in value for value in values):
        raise EvidenceRejected(RejectionCode.MACRO_ENABLED, "macro-enabled content type")
    mains = {
        part: value
        for part, value in content_types.items()
        if value in (_DOCX_MAIN.casefold(), _XLSX_MAIN.casefold()) and not part.startswith("*.")
    }
    if len(mains) != 1:
        raise EvidenceRejected(
            RejectionCode.UNSUPPORTED_TYPE, f"{len(mains)} DOCX/XLSX main parts declared"
        )
    ((part, value),) = mains.items()
    if part not in entry_names:
        raise EvidenceRejected(RejectionCode.CORRUPT, f"declared main part {part!r} is missing")
    return DOCX if value == _DOCX_MAIN.casefold() else XLSX
