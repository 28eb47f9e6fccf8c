"""Index tasks by (campaign, n_assigned, id): `service.claim_task` reads a campaign's least-covered
tasks first, and without the index every request scanned and sorted all of them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_tasks_least_covered", "tasks", ["campaign_id", "n_assigned", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_least_covered", table_name="tasks")
