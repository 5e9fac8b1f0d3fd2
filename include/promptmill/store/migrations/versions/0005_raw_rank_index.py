"""Index the raw-prompt groups in representative order: (raw_hash, posted_at, posted_seq, key).

Incremental dedupe needs the current representative (the earliest member) of each raw-prompt group a new dump
touches. Through an index on raw_hash alone it read every member of the group to find the one flagged (popular
prompts have long histories); in this order the representative is the first entry of its group.

Revision ID: 0005_raw_rank_index
Revises: 0004_message_verdicts
"""

from alembic import op

revision = "0005_raw_rank_index"
down_revision = "0004_message_verdicts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # IF EXISTS: a bulk load that was stopped may have left the lookup indexes dropped
    op.execute("DROP INDEX IF EXISTS ix_message_verdicts_raw_hash")
    op.execute(
        "CREATE INDEX IF NOT EXISTS ix_message_verdicts_raw_rank ON message_verdicts (raw_hash, posted_at, posted_seq, key)"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_message_verdicts_raw_rank")
    op.execute("CREATE INDEX IF NOT EXISTS ix_message_verdicts_raw_hash ON message_verdicts (raw_hash)")
