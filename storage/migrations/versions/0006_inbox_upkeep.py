"""inbox: partial index on unprocessed rows, for the replay scan

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNPROCESSED = sa.text("status = 'received'")


def upgrade() -> None:
    op.create_index(
        "ix_inbox_unprocessed",
        "inbox_message",
        ["channel", "id"],
        unique=False,
        sqlite_where=UNPROCESSED,
        postgresql_where=UNPROCESSED,
    )


def downgrade() -> None:
    op.drop_index("ix_inbox_unprocessed", table_name="inbox_message")
