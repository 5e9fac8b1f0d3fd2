"""Labeling after a crash and against a broken server.

- ``label_claims.holder``: which process holds a claim (its PostgreSQL session, or its host, process id and start
  time on SQLite), so that a run started right after a crash takes the dead run's prompts at once instead of
  waiting out their lease.
- ``label_attempts``: how many answers were well-formed but unusable for a prompt (an invalid description, no
  answer for it alone), across runs and modes, so that such a prompt is marked ``failed`` after a bounded number
  of tries instead of being paid for again forever.

Revision ID: 0012_label_holders_and_attempts
Revises: 0011_published_splits
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_label_holders_and_attempts"
down_revision = "0011_published_splits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("label_claims") as batch:
        batch.add_column(sa.Column("holder", sa.String(128), nullable=True))
    op.create_table(
        "label_attempts",
        sa.Column("prompt_id", sa.BigInteger, primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("label_attempts")
    with op.batch_alter_table("label_claims") as batch:
        batch.drop_column("holder")
