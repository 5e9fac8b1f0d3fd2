"""The side of every row published at a destination (publishing/split.py: sticky, near-identical rows together).

A destination published before this revision has no rows here: its next publication places every row by the
cluster rules, from then on each published row keeps its side.

Revision ID: 0011_published_splits
Revises: 0010_store_options
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_published_splits"
down_revision = "0010_store_options"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_splits",
        sa.Column("destination", sa.Text, primary_key=True),
        sa.Column("row_id", sa.String(16), primary_key=True),
        sa.Column("split", sa.String(8), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("published_splits")
