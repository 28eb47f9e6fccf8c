"""Assignment leases: a task held without an answer goes back to the queue when its lease expires.

campaigns.lease_seconds (default 30 minutes); assignments.lease_expires_at (indexed; NULL once judged
or released), released_at (when the slot was given back) and lapses (how many leases expired).
Assignments open at upgrade time get a lease from their creation time, so they expire too.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LEASE_SECONDS = 30 * 60


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.add_column(sa.Column("lease_seconds", sa.Integer, nullable=False, server_default=str(LEASE_SECONDS)))
    with op.batch_alter_table("assignments") as batch:
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime, nullable=True))
        batch.add_column(sa.Column("released_at", sa.DateTime, nullable=True))
        batch.add_column(sa.Column("lapses", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_assignments_lease_expires_at", "assignments", ["lease_expires_at"])
    # open assignments (shown, not judged) get the default lease, counted from when they were shown;
    # typed columns, so SQLite's DateTime text is read and written in SQLAlchemy's format
    assignments = sa.table("assignments", sa.column("id", sa.Integer), sa.column("created_at", sa.DateTime),
                           sa.column("lease_expires_at", sa.DateTime))
    judgments = sa.table("judgments", sa.column("assignment_id", sa.Integer))
    judged = sa.select(judgments.c.assignment_id).where(judgments.c.assignment_id == assignments.c.id).exists()
    connection = op.get_bind()
    for assignment_id, created_at in connection.execute(
            sa.select(assignments.c.id, assignments.c.created_at).where(~judged)).all():
        connection.execute(assignments.update().where(assignments.c.id == assignment_id)
                           .values(lease_expires_at=created_at + timedelta(seconds=LEASE_SECONDS)))


def downgrade() -> None:
    op.drop_index("ix_assignments_lease_expires_at", table_name="assignments")
    with op.batch_alter_table("assignments") as batch:
        batch.drop_column("lapses")
        batch.drop_column("released_at")
        batch.drop_column("lease_expires_at")
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("lease_seconds")
