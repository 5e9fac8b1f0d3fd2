"""Deferred verdict rows: a bulk load stores its messages without verdict rows; dedupe writes them, already final.

Revision ID: 0008_deferred_verdicts
Revises: 0007_label_claims
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_deferred_verdicts"
down_revision = "0007_label_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "source_files",
        sa.Column("verdicts_deferred", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("source_files", "verdicts_deferred")
