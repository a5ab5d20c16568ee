"""oversight: partial indexes for the region figures (the "nihil" answers, present evidence)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 19:00:00

The figures of the country's /status count each report's required answers, its "nihil"
answers and its evidence files per requirement. The first comes from the unique index on
(submission, question); these two let the others be counted without reading the rows either.
The list of words is storage.scoring.NIL_WORDS as of this revision (tests/storage/
test_oversight_figures.py checks that the model still spells the same condition).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NIHIL_ANSWER = sa.text(
    "lower(trim(value)) IN ('-', 'kosong', 'n/a', 'na', 'nihil', 'nil', 'nol', 'none', 'tidak', 'tidak ada')"
)
PRESENT_EVIDENCE = sa.text("removed_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_answer_nihil",
        "answer",
        ["submission_id", "question_id"],
        unique=False,
        sqlite_where=NIHIL_ANSWER,
        postgresql_where=NIHIL_ANSWER,
    )
    op.create_index(
        "ix_evidence_file_present",
        "evidence_file",
        ["submission_id", "requirement_id"],
        unique=False,
        sqlite_where=PRESENT_EVIDENCE,
        postgresql_where=PRESENT_EVIDENCE,
    )


def downgrade() -> None:
    op.drop_index("ix_evidence_file_present", table_name="evidence_file")
    op.drop_index("ix_answer_nihil", table_name="answer")
