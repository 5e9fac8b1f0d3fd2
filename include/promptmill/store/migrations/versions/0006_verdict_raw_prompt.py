"""Copy each generation's raw prompt into its verdict row: the text rule 13 compares.

The near-duplicate walk reads a user's attempts in time order through ix_message_verdicts_user_time and compares
their raw prompts. With the prompt only in the wide message row, every attempt read cost a second random lookup
into the largest table (most of the walk's reads in an increment of a long history, and a join of the whole
message table in a whole-store dedupe). Only generations carry one (NULL for the others).

Revision ID: 0006_verdict_raw_prompt
Revises: 0005_raw_rank_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_verdict_raw_prompt"
down_revision = "0005_raw_rank_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("message_verdicts", sa.Column("raw_prompt", sa.Text))
    op.execute(
        "UPDATE message_verdicts SET raw_prompt = (SELECT m.raw_prompt FROM messages m WHERE m.key = message_verdicts.key) "
        "WHERE pre_reason IS NULL AND raw_hash IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("message_verdicts") as batch:
        batch.drop_column("raw_prompt")
