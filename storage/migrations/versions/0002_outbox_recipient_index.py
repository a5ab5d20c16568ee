"""outbox: index for keeping each recipient's messages in order

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 16:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_recipient", "outbox_message", ["channel", "recipient", "status", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_recipient", table_name="outbox_message")
