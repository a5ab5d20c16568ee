"""The single entry point for evidence uploads: check, process, store.

There is intentionally no file-name or MIME parameter anywhere: everything about a stored blob
(type, extension, key) is derived from its bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from storage.evidence.documents import check_document
from storage.evidence.images import ImageResult, process_image
from storage.evidence.sniff import (
    DetectedType,
    EvidenceKind,
    EvidenceRejected,
    RejectionCode,
    detect_type,
)
from storage.evidence.store import EvidenceStore

# All file checks run on one worker thread. Decodes take turns anyway (images.DECODE_SLOTS),
# and on one thread the allocator reuses the memory a decode freed: spread over the default
# executor's threads, each thread's malloc arena kept its own freed ~100 MB (8 near-limit
# uploads at once peaked at 1.4 GB instead of ~300 MB).
_CHECKS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence-check")

__all__ = ["DEFAULT_MAX_BYTES", "StoredEvidence", "ingest", "inspect_bytes"]

# Telegram bots cannot download files above 20 MB; callers pass their channel's limit.
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredEvidence:
    sha256: str  # hex digest of the original bytes
    detected: DetectedType
    size: int  # bytes of the original
    storage_key: str  # the original, byte for byte
    display_key: str | None = None  # images only: JPEG, longest side <= 2048, no metadata
    thumbnail_key: str | None = None  # images only: JPEG, longest side <= 320
    width: int | None = None  # images only, upright
    height: int | None = None
    # EXIF has no time zone: camera wall-clock time, naive on purpose (see ImageResult).
    taken_at_local: datetime | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None


def inspect_bytes(data: bytes, *, max_bytes: int) -> tuple[DetectedType, ImageResult | None]:
    """Validate without storing (CPU-bound: call from a worker thread in async code).

    Raises :class:`EvidenceRejected`. The image result is ``None`` for PDF/DOCX/XLSX, whose
    content we check only structurally (they open and have a page, a body or a sheet); they are
    stored as received and never rendered.
    """
    _check_size(data, max_bytes)
    detected = detect_type(data)
    if detected.kind is not EvidenceKind.PHOTO:
        check_document(data, detected)
        return detected, None
    return detected, process_image(data, detected)


async def ingest(data: bytes, *, store: EvidenceStore, max_bytes: int) -> StoredEvidence:
    """Validate, process and store one upload; raises :class:`EvidenceRejected`."""
    # Cheap checks first, on the loop, so oversized uploads cost no thread hop.
    _check_size(data, max_bytes)
    loop = asyncio.get_running_loop()
    detected, image, sha256 = await loop.run_in_executor(_CHECKS, _analyse, data, max_bytes)
    if image is None:
        key = await store.put(data, extension=detected.extension)
        return StoredEvidence(sha256=sha256, detected=detected, size=len(data), storage_key=key)
    # Independent blobs: write them concurrently so their fsyncs overlap.
    key, display_key, thumbnail_key = await asyncio.gather(
        store.put(data, extension=detected.extension),
        store.put(image.display, extension="jpg"),
        store.put(image.thumbnail, extension="jpg"),
    )
    return StoredEvidence(
        sha256=sha256,
        detected=detected,
        size=len(data),
        storage_key=key,
        display_key=display_key,
        thumbnail_key=thumbnail_key,
        width=image.width,
        height=image.height,
        taken_at_local=image.taken_at_local,
        gps_lat=image.gps_lat,
        gps_lon=image.gps_lon,
    )


def _check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise EvidenceRejected(RejectionCode.EMPTY, "no bytes")
    if len(data) > max_bytes:
        raise EvidenceRejected(RejectionCode.TOO_LARGE, f"{len(data)} > {max_bytes} bytes")


def _analyse(data: bytes, max_bytes: int) -> tuple[DetectedType, ImageResult | None, str]:
    # One thread hop for all CPU work: decoding, resizing and hashing.
    detected, image = inspect_bytes(data, max_bytes=max_bytes)
    return detected, image, hashlib.sha256(data).hexdigest()
