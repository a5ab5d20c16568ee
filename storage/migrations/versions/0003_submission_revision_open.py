"""submission: revision_open, so a reopened report stays submitted until the revision is sent

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revision_open", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Reports reopened before this revision were made drafts: their submitted version (the
    # snapshot just before the current one) counts again, with the revision open beside it.
    op.execute(
        "UPDATE submission SET status = 'submitted', revision_open = true "
        "WHERE status = 'draft' AND EXISTS (SELECT 1 FROM submission_version v "
        "WHERE v.submission_id = submission.id AND v.version = submission.version - 1 "
        "AND v.status = 'submitted')"
    )


def downgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_column("revision_open")
