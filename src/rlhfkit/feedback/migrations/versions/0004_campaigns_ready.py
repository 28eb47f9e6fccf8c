"""campaigns.ready: a campaign is written in batches of tasks, and hidden until its last batch is in.

Existing campaigns are ready. (Downgrading on SQLite copies the table: run it with foreign keys off.)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        # a constant default: SQLite then adds the column in place; an expression would make batch
        # mode copy the table, and dropping the old one would cascade-delete every campaign's tasks
        batch.add_column(sa.Column("ready", sa.Boolean, nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("ready")
