"""Regions, their offices (OPD), contacts with their channel identities, and invite codes."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.models.enums import RegionKind, Role
from storage.types import UTCDateTime, enum_type, utcnow

TIMEZONES = ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura")


class Region(SQLModel, table=True):
    """A pemda: a province, or a kabupaten/kota with its province as parent."""

    __tablename__ = "region"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=20, unique=True, index=True)
    name: str = Field(max_length=120)
    kind: RegionKind = Field(sa_type=enum_type(RegionKind))
    parent_id: int | None = Field(
        default=None, foreign_key="region.id", ondelete="RESTRICT", index=True
    )
    timezone: str = Field(max_length=40, default="Asia/Jakarta")


class Office(SQLModel, table=True):
    """An OPD of one region, e.g. "Dinas Sosial"."""

    __tablename__ = "office"
    __table_args__ = (sa.UniqueConstraint("region_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    region_id: int = Field(foreign_key="region.id", ondelete="CASCADE", index=True)
    code: str = Field(max_length=40)
    name: str = Field(max_length=160)


class Contact(SQLModel, table=True):
    """A person the bot serves. Scope follows the role (docs/contacts.md, "What each role
    needs")."""

    __tablename__ = "contact"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120)
    phone: str | None = Field(default=None, max_length=16, unique=True, index=True)
    role: Role = Field(sa_type=enum_type(Role))
    region_id: int | None = Field(default=None, foreign_key="region.id", ondelete="RESTRICT")
    office_id: int | None = Field(default=None, foreign_key="office.id", ondelete="SET NULL")
    language: str = Field(default="id", max_length=5)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ChannelIdentity(SQLModel, table=True):
    """Who a contact is on one channel: a Telegram user id, a WhatsApp id (their number)."""

    __tablename__ = "channel_identity"
    __table_args__ = (sa.UniqueConstraint("channel", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", ondelete="CASCADE", index=True)
    channel: str = Field(sa_type=sa.String(20))  # a bot.engine Channel value
    external_id: str = Field(max_length=64)
    # WhatsApp's 24-hour window is counted from this.
    last_inbound_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Set when the channel says the user blocked the bot: nothing more is sent there.
    unreachable_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InviteCode(SQLModel, table=True):
    """A single-use, expiring registration code. Only its keyed hash (HMAC-SHA256 with
    LAPORHAM_INVITE_SECRET) is stored; rows from before keying (`keyed` false) hold a bare
    SHA-256 and are honoured until they expire (storage/invites.py)."""

    __tablename__ = "invite_code"

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    keyed: bool = Field(default=True, sa_column_kwargs={"server_default": sa.false()})
    role: Role = Field(sa_type=enum_type(Role))
    region_id: int | None = Field(default=None, foreign_key="region.id", ondelete="CASCADE")
    office_id: int | None = Field(default=None, foreign_key="office.id", ondelete="CASCADE")
    name: str | None = Field(default=None, max_length=120)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    used_by_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InviteAttempt(SQLModel, table=True):
    """A wrong invite code tried: who tried (a keyed hash of channel and user) and which code
    (a keyed hash of it), never the code or the number themselves. Counted per sender and per
    code over the throttle window (storage/invites.py)."""

    __tablename__ = "invite_attempt"
    __table_args__ = (
        sa.Index("ix_invite_attempt_sender", "sender_key", "attempted_at"),
        sa.Index("ix_invite_attempt_code", "code_key", "attempted_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    sender_key: str = Field(max_length=64)
    code_key: str = Field(max_length=64)
    attempted_at: datetime = Field(sa_type=UTCDateTime)
