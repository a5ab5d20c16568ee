"""invites: keyed code hashes (HMAC) and wrong tries counted for throttling

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 15:45:00

Codes issued before this revision are stored as a bare SHA-256 and cannot be rehashed (only
the hash is known). They are marked `keyed = false` and still accepted until they expire
(seven days by default): re-issuing every open invite would cost the regions more than a week
of the old hash, and wrong tries are throttled from now on whatever the row's hash.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invite_code", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("keyed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.create_table(
        "invite_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_key", sa.String(length=64), nullable=False),
        sa.Column("code_key", sa.String(length=64), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_invite_attempt_sender", "invite_attempt", ["sender_key", "attempted_at"], unique=False
    )
    op.create_index(
        "ix_invite_attempt_code", "invite_attempt", ["code_key", "attempted_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_invite_attempt_code", table_name="invite_attempt")
    op.drop_index("ix_invite_attempt_sender", table_name="invite_attempt")
    op.drop_table("invite_attempt")
    with op.batch_alter_table("invite_code", schema=None) as batch_op:
        batch_op.drop_column("keyed")
