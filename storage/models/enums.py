"""Enumerations stored in the database (as their string values)."""

from enum import StrEnum


class RegionKind(StrEnum):
    provinsi = "provinsi"
    kabkota = "kabkota"


class Role(StrEnum):
    focal_point = "focal_point"
    coordinator = "coordinator"
    kanwil = "kanwil"
    admin = "admin"


class ProgrammeKind(StrEnum):
    aksi_ham = "aksi_ham"
    kkpham = "kkpham"


class ActionLevel(StrEnum):
    provinsi = "provinsi"
    kabkota = "kabkota"


class QuestionKind(StrEnum):
    yes_no = "yes_no"
    integer = "integer"
    decimal = "decimal"
    text = "text"
    date = "date"
    choice = "choice"


class SubmissionStatus(StrEnum):
    draft = "draft"
    submitted = "submitted"
    returned = "returned"
    approved = "approved"


class ReviewDecision(StrEnum):
    approved = "approved"
    returned = "returned"
    reopened = "reopened"


class OutboxStatus(StrEnum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"


class InboxStatus(StrEnum):
    received = "received"
    processed = "processed"
