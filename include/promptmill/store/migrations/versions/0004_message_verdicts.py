"""Move the dedupe inputs and verdicts of messages into the narrow ``message_verdicts`` table.

Dedupe used to rewrite the wide message rows (content, prompts, arguments) to set a verdict, and its indexes
lived on the wide table; on a store of millions of messages that was most of the cost of a load and of an
increment. Existing verdicts are carried over as they are.

Revision ID: 0004_message_verdicts
Revises: 0003_publishing
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_message_verdicts"
down_revision = "0003_publishing"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_VERDICT_COLUMNS = ("raw_rep", "near_dup", "near_dup_of", "prompt_id", "status", "reason")
_MESSAGE_INDEXES = {
    "ix_messages_user_time": ["username", "posted_at"],
    "ix_messages_raw_hash": ["raw_hash"],
    "ix_messages_clean_hash": ["clean_hash"],
}


def upgrade() -> None:
    op.create_table(
        "message_verdicts",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("channel_id", sa.Text, nullable=False),
        sa.Column("username", sa.Text),
        sa.Column("posted_at", TS, nullable=False),
        sa.Column("posted_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("raw_hash", sa.String(64)),
        sa.Column("clean_hash", sa.String(64)),
        sa.Column("pre_reason", sa.Text),
        sa.Column("clean_reason", sa.Text),
        sa.Column("raw_rep", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("near_dup", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("near_dup_of", sa.Text),
        sa.Column("prompt_id", sa.BigInteger),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("reason", sa.Text),
        postgresql_with={"fillfactor": 45},
    )
    op.execute(
        "INSERT INTO message_verdicts (key, channel_id, username, posted_at, posted_seq, raw_hash, clean_hash, "
        "pre_reason, clean_reason, raw_rep, near_dup, near_dup_of, prompt_id, status, reason) "
        "SELECT key, channel_id, username, posted_at, posted_seq, raw_hash, clean_hash, pre_reason, clean_reason, "
        "raw_rep, near_dup, near_dup_of, prompt_id, status, reason FROM messages"
    )
    op.create_index("ix_message_verdicts_user_time", "message_verdicts", ["username", "posted_at"])
    op.create_index("ix_message_verdicts_raw_hash", "message_verdicts", ["raw_hash"])
    op.create_index("ix_message_verdicts_clean_hash", "message_verdicts", ["clean_hash"])
    for name in _MESSAGE_INDEXES:
        op.drop_index(name, table_name="messages")
    with op.batch_alter_table("messages") as batch:
        for column in _VERDICT_COLUMNS:
            batch.drop_column(column)
    if op.get_bind().dialect.name == "postgresql":
        # Message rows are no longer updated by dedupe: new pages can be filled.
        op.execute("ALTER TABLE messages SET (fillfactor = 100)")


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("prompt_id", sa.BigInteger))
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="pending"))
        batch.add_column(sa.Column("reason", sa.Text))
        batch.add_column(sa.Column("raw_rep", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("near_dup", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("near_dup_of", sa.Text))
    sets = ", ".join(
        f"{c} = (SELECT v.{c} FROM message_verdicts v WHERE v.key = messages.key)" for c in _VERDICT_COLUMNS
    )
    op.execute(f"UPDATE messages SET {sets} WHERE key IN (SELECT key FROM message_verdicts)")
    for name, columns in _MESSAGE_INDEXES.items():
        op.create_index(name, "messages", columns)
    op.drop_table("message_verdicts")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE messages SET (fillfactor = 70)")
