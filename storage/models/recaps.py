"""Recap requests: a /rekap (or /rekap bukti) asked in chat, made later by the `recap-requests`
job (scheduler/recaps.py) outside the chat turn.

The row keeps what was asked (who, where to answer, which period and region, in which
language) and how far making it got. The job claims a row with an owner and a lease, like the
outbox: a process that dies mid-render leaves the claim to expire, and the next run makes the
recap again. The files go out through outbox rows keyed `recap:{id}:...`, so a recap made twice
is still sent once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, enum_type, utcnow


class RecapKind(StrEnum):
    recap = "recap"  # the chart (PNG) and the workbook (XLSX) of the asker's scope
    evidence = "evidence"  # the evidence ZIP of one pemda, as `laporham export evidence`


class RecapState(StrEnum):
    pending = "pending"  # waiting for the job
    working = "working"  # claimed by `claimed_by` until `lease_expires_at`
    done = "done"  # the answer's outbox rows are written
    failed = "failed"  # gave up after several tries; the asker was told


class RecapRequest(SQLModel, table=True):
    __tablename__ = "recap_request"
    __table_args__ = (sa.Index("ix_recap_request_due", "state", "lease_expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    # The inbound message that asked ("telegram:123"): one request per message, however often
    # the platform delivers it.
    source_key: str = Field(max_length=200, unique=True)
    kind: RecapKind = Field(default=RecapKind.recap, sa_type=enum_type(RecapKind))
    contact_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    channel: str = Field(sa_type=sa.String(20))  # a bot.engine Channel value
    chat_id: str = Field(max_length=64)
    language: str = Field(default="id", max_length=5)
    period_id: int | None = Field(default=None, foreign_key="period.id", ondelete="SET NULL")
    # The evidence ZIP's pemda; none for a recap (the asker's whole scope, read when made).
    region_id: int | None = Field(default=None, foreign_key="region.id", ondelete="SET NULL")
    state: RecapState = Field(default=RecapState.pending, sa_type=enum_type(RecapState))
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
