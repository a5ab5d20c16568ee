"""What several processes on one database agree through: named leases (who does a job that
only one may do, such as polling one bot token), and what a channel learnt about a recipient
that a restart must not forget (WhatsApp windows Meta said are closed)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


class Lease(SQLModel, table=True):
    """A job only one process may do at a time: held by `owner` until `expires_at`, renewed
    by the holder; anyone may take it once it has expired."""

    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=100)
    owner: str = Field(max_length=64)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class ClosedWindow(SQLModel, table=True):
    """A recipient the platform said is outside its free-form window (WhatsApp's 24 hours),
    since when: messages go as templates until the recipient writes again after that."""

    __tablename__ = "closed_window"

    channel: str = Field(primary_key=True, sa_type=sa.String(20))  # a bot.engine Channel value
    recipient: str = Field(primary_key=True, max_length=64)
    closed_at: datetime = Field(sa_type=UTCDateTime)


class UnreachableNumber(SQLModel, table=True):
    """A number we wrote to first (an imported contact's, never written from) that the channel
    said cannot receive messages (WhatsApp 131026: not on WhatsApp): reminders stop trying it
    every day. It names no person and grants nothing; a contact whose number changes is tried
    again at the new one."""

    __tablename__ = "unreachable_number"

    channel: str = Field(primary_key=True, sa_type=sa.String(20))  # a bot.engine Channel value
    recipient: str = Field(primary_key=True, max_length=64)  # as the outbox names it (wa_id)
    since: datetime = Field(sa_type=UTCDateTime)
    reason: str | None = Field(default=None, max_length=200)
