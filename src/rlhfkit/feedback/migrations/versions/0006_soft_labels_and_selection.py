"""Soft labels, principles and query selection.

judgments.probabilities: an annotator's probability for each response id (an AI judge's soft label;
NULL for a person's hard choice). judgments.principle: the written principle an AI judge was asked
to apply ("" for people). tasks.selection: which query-selection strategy chose the task and its
score ({"strategy", "score"}; NULL when every pair was taken).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable or constant-default columns: SQLite adds them in place (see 0004)
    with op.batch_alter_table("judgments") as batch:
        batch.add_column(sa.Column("probabilities", sa.JSON, nullable=True))
        batch.add_column(sa.Column("principle", sa.Text, nullable=False, server_default=""))
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("selection", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("selection")
    with op.batch_alter_table("judgments") as batch:
        batch.drop_column("principle")
        batch.drop_column("probabilities")
