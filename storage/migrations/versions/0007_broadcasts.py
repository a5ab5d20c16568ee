"""broadcast table, and outbox_message.broadcast_id for the rows that deliver one

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcast",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("author_channel", sa.String(length=20), nullable=True),
        sa.Column("author_chat_id", sa.String(length=64), nullable=True),
        sa.Column("sender_label", sa.String(length=160), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=True),
        sa.Column(
            "audience",
            sa.Enum(
                "focal_points", "not_submitted", "coordinators", "pemda",
                name="audience", native_enum=False, length=20,
            ),
            nullable=False,
        ),
        sa.Column("period_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("total_recipients", sa.Integer(), nullable=False),
        sa.Column("without_channel", sa.Integer(), nullable=False),
        sa.Column("written_through", sa.Integer(), nullable=False),
        sa.Column("progress_reported", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "writing", "sending", "done", name="broadcaststate", native_enum=False, length=20
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["author_id"], ["contact.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["period_id"], ["period.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["region_id"], ["region.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )  # fmt: skip
    op.create_index("ix_broadcast_state", "broadcast", ["state"], unique=False)
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("broadcast_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_outbox_message_broadcast_id"), ["broadcast_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_outbox_message_broadcast_id_broadcast",
            "broadcast",
            ["broadcast_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_constraint("fk_outbox_message_broadcast_id_broadcast", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_outbox_message_broadcast_id"))
        batch_op.drop_column("broadcast_id")
    op.drop_index("ix_broadcast_state", table_name="broadcast")
    op.drop_table("broadcast")
