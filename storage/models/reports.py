"""Submissions (action x office x period), their answers, evidence files, reviews, and the audit
log of who did what."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.models.enums import ReviewDecision, SubmissionStatus
from storage.scoring import NIL_WORDS
from storage.types import UTCDateTime, enum_type, json_type, utcnow

# Conditions of the partial indexes the oversight figures read (storage/oversight.py), as the
# queries must spell them: literals, since a bound parameter would not let SQLite (or a generic
# PostgreSQL plan) see that the index applies.
NIHIL_ANSWER = sa.text(
    "lower(trim(value)) IN (" + ", ".join(f"'{word}'" for word in sorted(NIL_WORDS)) + ")"
)
PRESENT_EVIDENCE = sa.text("removed_at IS NULL")


class Submission(SQLModel, table=True):
    __tablename__ = "submission"
    __table_args__ = (sa.UniqueConstraint("action_id", "office_id", "period_id"),)

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="action.id", ondelete="CASCADE", index=True)
    office_id: int = Field(foreign_key="office.id", ondelete="CASCADE", index=True)
    period_id: int = Field(foreign_key="period.id", ondelete="CASCADE", index=True)
    status: SubmissionStatus = Field(
        default=SubmissionStatus.draft, sa_type=enum_type(SubmissionStatus), index=True
    )
    # Bumped each time a submitted report is reopened; the old content goes to SubmissionVersion.
    version: int = 1
    # A submitted report reopened for revision stays `submitted`: the version in the latest
    # SubmissionVersion counts until the revision (the rows of answers and files) is submitted.
    revision_open: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    submitted_by_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")


class SubmissionVersion(SQLModel, table=True):
    """A frozen copy of a submitted version, kept when the report is reopened for revision."""

    __tablename__ = "submission_version"
    __table_args__ = (sa.UniqueConstraint("submission_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", ondelete="CASCADE", index=True)
    version: int
    status: SubmissionStatus = Field(sa_type=enum_type(SubmissionStatus))
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    snapshot: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Answer(SQLModel, table=True):
    __tablename__ = "answer"
    __table_args__ = (
        # (submission, question) also lets the oversight count a report's answers from the index.
        sa.UniqueConstraint("submission_id", "question_id"),
        # The few "nihil" answers, so counting them does not read every answer's value.
        sa.Index(
            "ix_answer_nihil",
            "submission_id",
            "question_id",
            sqlite_where=NIHIL_ANSWER,
            postgresql_where=NIHIL_ANSWER,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", ondelete="CASCADE", index=True)
    question_id: int = Field(foreign_key="question.id", ondelete="CASCADE", index=True)
    # Normalised text: "ya"/"tidak" -> "yes"/"no", numbers as plain digits, dates ISO 8601.
    value: str = Field(sa_type=sa.Text)
    answered_by_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    answered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EvidenceFile(SQLModel, table=True):
    """One file of data dukung. The bytes live in the evidence store under `storage_key`."""

    __tablename__ = "evidence_file"
    __table_args__ = (
        # The files not removed, by report and requirement: the oversight counts them per
        # requirement from this index alone, without reading the evidence rows.
        sa.Index(
            "ix_evidence_file_present",
            "submission_id",
            "requirement_id",
            sqlite_where=PRESENT_EVIDENCE,
            postgresql_where=PRESENT_EVIDENCE,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", ondelete="CASCADE", index=True)
    requirement_id: int = Field(
        foreign_key="evidence_requirement.id", ondelete="CASCADE", index=True
    )
    sha256: str = Field(max_length=64, index=True)
    # Untrusted, as the client claimed them: shown to people, never used as a path.
    original_name: str | None = Field(default=None, max_length=255)
    claimed_mime: str | None = Field(default=None, max_length=120)
    detected_mime: str = Field(max_length=120)
    kind: str = Field(max_length=10)
    size: int = Field(sa_type=sa.BigInteger)
    storage_key: str = Field(max_length=120)
    display_key: str | None = Field(default=None, max_length=120)
    thumbnail_key: str | None = Field(default=None, max_length=120)
    width: int | None = None
    height: int | None = None
    # EXIF has no zone: taken_at is the EXIF time read in the region's time zone, as UTC.
    taken_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    gps_lat: float | None = None
    gps_lon: float | None = None
    channel: str | None = Field(default=None, sa_type=sa.String(20))
    channel_file_id: str | None = Field(default=None, max_length=255)
    uploaded_by_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ReviewEvent(SQLModel, table=True):
    __tablename__ = "review_event"

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", ondelete="CASCADE", index=True)
    version: int
    decision: ReviewDecision = Field(sa_type=enum_type(ReviewDecision))
    note: str | None = Field(default=None, sa_type=sa.Text)
    reviewer_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    actor_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    action: str = Field(max_length=60, index=True)
    entity: str = Field(max_length=40)
    entity_id: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
