"""Broadcasts: one message from the Kanwil, a coordinator or an admin to many contacts.

Each recipient becomes one outbox row (`OutboxMessage.broadcast_id`); the broadcast row keeps
what was asked (who, to whom, what) and how far writing those rows and reporting back got.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime, enum_type, utcnow


class Audience(StrEnum):
    focal_points = "focal_points"  # every focal point in the scope
    not_submitted = "not_submitted"  # focal points whose office still owes a report
    coordinators = "coordinators"  # the pemda coordinators in the scope
    pemda = "pemda"  # everyone of one pemda (its focal points and coordinators)


class BroadcastState(StrEnum):
    writing = "writing"  # outbox rows are being written, in batches (resumed after a crash)
    sending = "sending"  # every row is written; the sender delivers them
    done = "done"  # every row sent or failed; the delivery report went to the author


class Broadcast(SQLModel, table=True):
    __tablename__ = "broadcast"
    __table_args__ = (sa.Index("ix_broadcast_state", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    # The author, and where progress goes back to; none for a broadcast from the CLI.
    author_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    author_channel: str | None = Field(default=None, sa_type=sa.String(20))
    author_chat_id: str | None = Field(default=None, max_length=64)
    # What recipients read as the sender, e.g. "Kanwil Lampung".
    sender_label: str = Field(max_length=160)
    # The region the audience is drawn from (with its kabupaten/kota for a province, except
    # for the `pemda` audience); none: the whole country.
    region_id: int | None = Field(default=None, foreign_key="region.id", ondelete="RESTRICT")
    audience: Audience = Field(sa_type=enum_type(Audience))
    # `not_submitted`: the open period whose missing reports choose the recipients.
    period_id: int | None = Field(default=None, foreign_key="period.id", ondelete="SET NULL")
    text: str = Field(sa_type=sa.Text)
    total_recipients: int = 0  # contacts given an outbox row (final once writing is done)
    without_channel: int = 0  # contacts of the audience the bot cannot reach (no chat yet)
    # Rows are written in contact id order: every contact up to this id has its row.
    written_through: int = 0
    # How many deliveries (sent or failed) the last progress message to the author counted.
    progress_reported: int = 0
    state: BroadcastState = Field(default=BroadcastState.writing, sa_type=enum_type(BroadcastState))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
