"""Label evaluations: the labeling settings scored on a gold set (``promptmill evaluate-labels``), per label version.

Revision ID: 0013_label_evaluations
Revises: 0012_label_holders_and_attempts
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_label_evaluations"
down_revision = "0012_label_holders_and_attempts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_evaluations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(32), nullable=False, index=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("gold_name", sa.Text, nullable=False),
        sa.Column("gold_sha256", sa.String(64), nullable=False),
        sa.Column("prompts", sa.Integer, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),  # JSON: see labeling/evaluate.py
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("label_evaluations")
