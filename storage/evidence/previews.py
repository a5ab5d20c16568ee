"""What of an evidence photo may go back into a chat (a reviewer's thumbnail, a file sent for
checking): never the original. The original keeps its EXIF on purpose, since the capture time
and GPS position show where and when the activity happened and are stored with the file and
written to the export's manifest; but sent into a chat they would tell anyone the message is
forwarded to where the reporter stood, and with what phone. Only copies re-encoded without
any metadata leave: the display copy made at upload, or :func:`stripped_preview`.
"""

from __future__ import annotations

import io

from PIL import Image

from storage.evidence.images import process_image
from storage.evidence.sniff import EvidenceKind, EvidenceRejected, RejectionCode, detect_type

__all__ = ["PREVIEW_MAX_SIDE", "PREVIEW_QUALITY", "sendable_key", "stripped_preview"]

# A phone screen's width is enough to judge a photo of an activity, and small on slow data.
PREVIEW_MAX_SIDE = 1280
PREVIEW_QUALITY = 80


def sendable_key(*, kind: str, storage_key: str, display_key: str | None) -> str:
    """The blob to send into a chat for one evidence file: a photo's display copy (upright, no
    metadata), a document (PDF, DOCX, XLSX) as received. Raises ValueError for a photo without
    a display copy rather than fall back to the original."""
    if kind != EvidenceKind.PHOTO.value:
        return storage_key
    if not display_key:
        raise ValueError("a photo without a display copy: its original must not be sent")
    return display_key


def stripped_preview(data: bytes, *, max_side: int = PREVIEW_MAX_SIDE) -> bytes:
    """A small upright JPEG of a photo (JPEG, PNG, WebP, HEIC) with no metadata at all: no EXIF
    (so no GPS, time or camera), no XMP, no ICC profile, no comment.

    CPU-bound: call it from a worker thread in async code. Raises :class:`EvidenceRejected` for
    anything but a photo, and for the image bombs the upload pipeline refuses."""
    detected = detect_type(data)
    if detected.kind is not EvidenceKind.PHOTO:
        raise EvidenceRejected(RejectionCode.UNSUPPORTED_TYPE, f"{detected.mime} is no photo")
    # The upload pipeline's display copy: same decode limits, upright, already metadata-free.
    display = process_image(data, detected).display
    with Image.open(io.BytesIO(display), formats=["JPEG"]) as image:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        # No exif/icc_profile/xmp arguments: Pillow then writes none; an empty comment, or it
        # would copy the source's.
        image.save(out, format="JPEG", quality=PREVIEW_QUALITY, comment=b"")
    return out.getvalue()
