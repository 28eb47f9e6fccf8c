"""Server-side sessions and campaign membership.

sessions: sha256 of a browser's session id -> annotator (NULL: the admin), expiry; the cookie no
longer carries the long-lived token. campaign_annotators: which campaigns an annotator may see and
judge; annotators.all_campaigns marks store-wide ones. Annotators of an older store were store-wide,
and stay so.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a constant default: SQLite adds the column in place (see 0004)
    with op.batch_alter_table("annotators") as batch:
        batch.add_column(sa.Column("all_campaigns", sa.Boolean, nullable=False, server_default="0"))
    annotators = sa.table("annotators", sa.column("all_campaigns", sa.Boolean))
    op.get_bind().execute(annotators.update().values(all_campaigns=True))
    op.create_table(
        "campaign_annotators",
        sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("annotator_id", sa.Integer, sa.ForeignKey("annotators.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_campaign_annotators_annotator_id", "campaign_annotators", ["annotator_id"])
    op.create_table(
        "sessions",
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("annotator_id", sa.Integer, sa.ForeignKey("annotators.id", ondelete="CASCADE"), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_sessions_annotator_id", "sessions", ["annotator_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_annotator_id", table_name="sessions")
    op.drop_table("sessions")
    op.drop_index("ix_campaign_annotators_annotator_id", table_name="campaign_annotators")
    op.drop_table("campaign_annotators")
    with op.batch_alter_table("annotators") as batch:
        batch.drop_column("all_campaigns")
