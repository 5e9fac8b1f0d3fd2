"""Labeling claims: a prompt about to be sent is claimed by its run, so that two runs never pay for it twice.

Revision ID: 0007_label_claims
Revises: 0006_verdict_raw_prompt
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_label_claims"
down_revision = "0006_verdict_raw_prompt"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_claims",
        sa.Column("prompt_id", sa.BigInteger, primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("run_key", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("label_claims")
