"""reminders reach imported numbers; quiet hours at send time

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 19:00:00

`outbox_message` gains what the sender needs to hold a reminder, escalation or broadcast in
the recipient's quiet hours (their zone, the quiet hours, when it expires), and
`unreachable_number` remembers the imported numbers WhatsApp said it cannot reach (131026), so
the reminder planner does not try them every day. Existing rows keep NULLs: their zone is
looked up from their contact's region, the quiet hours are the default, they never expire.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("local_zone", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("quiet_hours", sa.String(length=11), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "unreachable_number",
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("channel", "recipient"),
    )


def downgrade() -> None:
    op.drop_table("unreachable_number")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
        batch_op.drop_column("quiet_hours")
        batch_op.drop_column("local_zone")
