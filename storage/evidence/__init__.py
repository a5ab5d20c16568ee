"""Evidence files: type sniffing, photo processing, content-addressed storage, ingest."""

from storage.evidence.images import (
    DISPLAY_MAX_SIDE,
    MAX_PIXELS,
    THUMBNAIL_SIDE,
    ImageResult,
    process_image,
)
from storage.evidence.pipeline import DEFAULT_MAX_BYTES, StoredEvidence, ingest, inspect_bytes
from storage.evidence.previews import PREVIEW_MAX_SIDE, sendable_key, stripped_preview
from storage.evidence.sniff import (
    DetectedType,
    EvidenceKind,
    EvidenceRejected,
    RejectionCode,
    detect_type,
)
from storage.evidence.store import (
    EvidenceNotFoundError,
    EvidenceStore,
    LocalEvidenceStore,
    key_for,
    validate_key,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DISPLAY_MAX_SIDE",
    "MAX_PIXELS",
    "PREVIEW_MAX_SIDE",
    "THUMBNAIL_SIDE",
    "DetectedType",
    "EvidenceKind",
    "EvidenceNotFoundError",
    "EvidenceRejected",
    "EvidenceStore",
    "ImageResult",
    "LocalEvidenceStore",
    "RejectionCode",
    "StoredEvidence",
    "detect_type",
    "ingest",
    "inspect_bytes",
    "key_for",
    "process_image",
    "sendable_key",
    "stripped_preview",
    "validate_key",
]
