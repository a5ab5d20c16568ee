"""Structural checks of PDF, DOCX and XLSX uploads: a file whose type was sniffed
(:mod:`storage.evidence.sniff`) must also be a document someone can open and read.

A 9-byte ``%PDF-1.4`` stub has the right signature and nothing else. Here:

- PDF: parsed with pypdf; it must have at least one page. An encrypted PDF is accepted only
  when it opens without a password (an owner password that merely restricts printing or
  editing); one that asks for a password to open is refused, since nobody could read it.
- DOCX: the main part must contain the document body (``<w:body>``).
- XLSX: the workbook must list at least one sheet, and a worksheet part must be in the archive.

The ZIP was already bounded by the sniffer (entry count, sizes, ratios); the main part is
streamed through expat with DOCTYPE refused, and reading stops at the first element sought.
"""

from __future__ import annotations

import io
import logging
import zipfile
import zlib
from collections.abc import Iterator
from xml.parsers import expat

from storage.evidence.sniff import (
    DetectedType,
    EvidenceKind,
    EvidenceRejected,
    RejectionCode,
    read_content_types,
)

__all__ = ["check_document"]

# pypdf warns about every repairable flaw (a wrong xref offset, say): an accepted file must not
# leave log lines, and a refused one is reported once by the caller.
logging.getLogger("pypdf").setLevel(logging.ERROR)

_CHUNK = 64 * 1024
# How far into the main part the element sought may lie: both come near the top in practice.
MAX_MAIN_PART_SCAN = 16 * 1024 * 1024
_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"


def check_document(data: bytes, detected: DetectedType) -> None:
    """Raise :class:`EvidenceRejected` unless the document opens and has content."""
    if detected.kind is EvidenceKind.PDF:
        _check_pdf(data)
    elif detected.kind is EvidenceKind.DOCX:
        _check_ooxml(data, main_suffix="document.main+xml", element="body")
    elif detected.kind is EvidenceKind.XLSX:
        _check_ooxml(data, main_suffix="sheet.main+xml", element="sheet")


# --------------------------------------------------------------------------- PDF


def _check_pdf(data: bytes) -> None:
    # Imported on the first PDF: pypdf with cryptography takes seconds to import on a busy
    # machine, and every `laporham` command would pay that at start-up.
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import DependencyError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise EvidenceRejected(RejectionCode.ENCRYPTED, "PDF needs a password to open")
        pages = len(reader.pages)
    except EvidenceRejected:
        raise
    except DependencyError as exc:  # an encryption scheme no installed backend reads
        raise EvidenceRejected(RejectionCode.ENCRYPTED, f"PDF encryption: {exc}") from exc
    except (PyPdfError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        # pypdf reports malformed files through its own errors and, on hostile ones, through
        # whatever the broken structure provokes; all of them mean "cannot be read".
        raise EvidenceRejected(RejectionCode.CORRUPT, f"unreadable PDF: {exc!r}") from exc
    if pages < 1:
        raise EvidenceRejected(RejectionCode.NO_CONTENT, "PDF has no pages")


# --------------------------------------------------------------------------- DOCX / XLSX


def _check_ooxml(data: bytes, *, main_suffix: str, element: str) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            types = _content_types(archive)
            main = _part(types, main_suffix)
            if main is None or not _has_element(archive, main, element):
                raise EvidenceRejected(RejectionCode.NO_CONTENT, f"no <{element}> in {main!r}")
            if element == "sheet" and _part(types, _WORKSHEET) is None:
                raise EvidenceRejected(RejectionCode.NO_CONTENT, "no worksheet part")
    except (zipfile.BadZipFile, EOFError, OSError, RuntimeError, zlib.error) as exc:
        raise EvidenceRejected(RejectionCode.CORRUPT, f"unreadable zip: {exc}") from exc


def _content_types(archive: zipfile.ZipFile) -> dict[str, str]:
    """Part name as in the archive → declared content type (overrides only)."""
    by_folded = {info.filename.casefold(): info.filename for info in archive.infolist()}
    declared = read_content_types(archive)
    return {by_folded[part]: kind for part, kind in declared.items() if part in by_folded}


def _part(types: dict[str, str], suffix: str) -> str | None:
    return next((part for part, kind in types.items() if kind.endswith(suffix)), None)


def _has_element(archive: zipfile.ZipFile, part: str, wanted: str) -> bool:
    found = False

    def start(name: str, _attrs: dict[str, str]) -> None:
        nonlocal found
        found = found or name.rsplit(" ", 1)[-1] == wanted  # "namespace local"

    def refuse_doctype(*_: object) -> None:
        raise EvidenceRejected(RejectionCode.CORRUPT, f"DOCTYPE in {part!r}")

    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = start
    parser.StartDoctypeDeclHandler = refuse_doctype
    try:
        for chunk in _chunks(archive, part):
            parser.Parse(chunk, False)
            if found:
                return True
    except expat.ExpatError as exc:
        raise EvidenceRejected(RejectionCode.CORRUPT, f"bad XML in {part!r}: {exc}") from exc
    return found


def _chunks(archive: zipfile.ZipFile, part: str) -> Iterator[bytes]:
    read = 0
    with archive.open(part) as stream:
        while read < MAX_MAIN_PART_SCAN and (chunk := stream.read(_CHUNK)):
            read += len(chunk)
            yield chunk
