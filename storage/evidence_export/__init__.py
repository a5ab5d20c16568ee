"""Evidence exports for SAPA-HAM: which files (`plan`), their names in the archive (`names`),
the streamed ZIP with its manifest (`archive`), and the check of an archive (`verify`).
The flow is drawn in docs/exports.md."""

from storage.evidence_export.archive import (
    CHAT_MANIFEST_COLUMNS,
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    ExportResult,
    write_evidence_archive,
)
from storage.evidence_export.names import ArchiveNames, path_component
from storage.evidence_export.plan import ExportError, ExportFile, ExportPlan, evidence_plan
from storage.evidence_export.verify import Mismatch, MismatchKind, VerifyResult, verify_archive

__all__ = [
    "CHAT_MANIFEST_COLUMNS",
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "ArchiveNames",
    "ExportError",
    "ExportFile",
    "ExportPlan",
    "ExportResult",
    "Mismatch",
    "MismatchKind",
    "VerifyResult",
    "evidence_plan",
    "path_component",
    "verify_archive",
    "write_evidence_archive",
]
