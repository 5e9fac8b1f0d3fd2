"""Publishing: the history of publications.

Revision ID: 0003_publishing
Revises: 0002_labeling
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_publishing"
down_revision = "0002_labeling"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "publications",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("label_version", sa.String(32)),
        sa.Column("train_rows", sa.Integer, nullable=False),
        sa.Column("test_rows", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
    )
    op.create_index("ix_publications_destination", "publications", ["destination", "created_at"])


def downgrade() -> None:
    op.drop_table("publications")
