"""What the conversation engine keeps: state per (channel, user), the inbox of inbound message
ids (each processed once), and the outbox every outgoing message goes through."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from storage.models.enums import InboxStatus, OutboxStatus
from storage.types import UTCDateTime, enum_type, json_type, utcnow

# The partial index's condition, as the replay query must spell it: a bound parameter would not
# let SQLite (or a generic PostgreSQL plan) see that the index applies.
UNPROCESSED_INBOX = sa.text(f"status = '{InboxStatus.received.value}'")


class ConversationState(SQLModel, table=True):
    __tablename__ = "conversation_state"
    __table_args__ = (sa.UniqueConstraint("channel", "user_key"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(sa_type=sa.String(20))  # a bot.engine Channel value
    user_key: str = Field(max_length=64)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    flow: str | None = Field(default=None, max_length=30)
    step: str | None = Field(default=None, max_length=40)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InboxMessage(SQLModel, table=True):
    """An inbound message id seen on a channel. The unique key makes redelivery harmless."""

    __tablename__ = "inbox_message"
    __table_args__ = (
        sa.UniqueConstraint("channel", "message_id"),
        # The replay (every minute and at start) reads the few unprocessed rows of a channel:
        # a partial index holds only those, so it stays tiny however large the inbox grows.
        # Queries must name the status as a literal (UNPROCESSED_INBOX) to use it.
        sa.Index(
            "ix_inbox_unprocessed",
            "channel",
            "id",
            sqlite_where=UNPROCESSED_INBOX,
            postgresql_where=UNPROCESSED_INBOX,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(sa_type=sa.String(20))  # a bot.engine Channel value
    message_id: str = Field(max_length=160)
    status: InboxStatus = Field(default=InboxStatus.processed, sa_type=enum_type(InboxStatus))
    # Kept for webhooks: the raw update is stored before answering 200, processed after.
    payload: dict[str, Any] | None = Field(default=None, sa_type=json_type())
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    processed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    __table_args__ = (
        sa.Index("ix_outbox_due", "status", "next_attempt_at"),
        # A recipient's messages go out in id order: the claim and the engine's hand-off look
        # for the recipient's waiting rows.
        sa.Index("ix_outbox_recipient", "channel", "recipient", "status", "id"),
        # Recovery looks for claims whose lease ran out (their process died).
        sa.Index("ix_outbox_lease", "status", "lease_expires_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=200, unique=True)
    channel: str = Field(sa_type=sa.String(20))  # a bot.engine Channel value
    recipient: str = Field(max_length=64)
    contact_id: int | None = Field(default=None, foreign_key="contact.id", ondelete="SET NULL")
    # reply, reminder, broadcast, ...: reminders and broadcasts become WhatsApp templates.
    purpose: str = Field(default="reply", max_length=20)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=json_type())
    status: OutboxStatus = Field(default=OutboxStatus.pending, sa_type=enum_type(OutboxStatus))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    provider_message_id: str | None = Field(default=None, max_length=160, index=True)
    delivery_status: str | None = Field(default=None, max_length=20)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # While `sending`: which sender process holds the row, and until when (it renews the lease
    # while the send is in hand). Only an expired lease is taken back by another process.
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The broadcast this row delivers to one of its recipients (its delivery report counts it).
    broadcast_id: int | None = Field(
        default=None, foreign_key="broadcast.id", ondelete="SET NULL", index=True
    )
    # Quiet hours at send time (reminders, escalations, broadcasts; never replies): the
    # recipient's zone when the writer knows it (else their region's, looked up at claim), the
    # quiet hours as "HH:MM-HH:MM" when a policy sets them (else 21:00-07:00), and when the
    # message is no longer worth sending (a reminder's slot ends: dropped, with the reason).
    local_zone: str | None = Field(default=None, max_length=40)
    quiet_hours: str | None = Field(default=None, max_length=11)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
