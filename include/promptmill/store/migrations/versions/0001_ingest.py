"""Ingest store: source files, channels, messages, prompts, dedupe queue.

Revision ID: 0001_ingest
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_ingest"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "source_files",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("format", sa.String(8)),
        sa.Column("channel_id", sa.Text),
        sa.Column("partition_date", sa.String(10)),
        sa.Column("size_bytes", sa.BigInteger),
        # stat of the file on disk when ingested: a re-run skips unchanged files without hashing them
        sa.Column("file_mtime_ns", sa.BigInteger),
        sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("ingested_at", TS, nullable=False),
        sa.Column("elapsed_s", sa.Float),
    )
    op.create_index("ix_source_files_path", "source_files", ["path"])
    op.create_table(
        "channels",
        sa.Column("channel_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("guild_id", sa.Text),
        sa.Column("guild_name", sa.Text),
    )
    op.create_table(
        "prompts",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("first_seen", TS),
        sa.Column("kept", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("kept_message_key", sa.Text),
    )
    op.create_table(
        "messages",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("channel_id", sa.Text, nullable=False),
        sa.Column("author_id", sa.Text),
        sa.Column("author", sa.Text),
        sa.Column("posted_at", TS, nullable=False),
        sa.Column("edited_at", TS),
        # rank among same-timestamp rows of a minute-precision export (file order), see RawMessage.seq
        sa.Column("posted_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("attachments", sa.Text),
        sa.Column("source_file_id", sa.BigInteger),
        sa.Column("era", sa.String(8)),
        sa.Column("username", sa.Text),
        sa.Column("raw_prompt", sa.Text),
        sa.Column("raw_hash", sa.String(64)),
        sa.Column("args", sa.Text),
        sa.Column("nsfw", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("pre_reason", sa.Text),
        sa.Column("clean_text", sa.Text),
        sa.Column("clean_hash", sa.String(64)),
        sa.Column("clean_reason", sa.Text),
        sa.Column("prompt_id", sa.BigInteger),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("reason", sa.Text),
        # rule 12: this message is the earliest of its raw-prompt group (the one the notebook kept)
        sa.Column("raw_rep", sa.Boolean, nullable=False, server_default=sa.false()),
        # rule 13: dropped as an earlier attempt of the same user (near_dup_of = the attempt kept)
        sa.Column("near_dup", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("near_dup_of", sa.Text),
        # Dedupe rewrites verdict columns, none of them indexed: with free space in the pages those
        # updates are HOT on PostgreSQL (no index writes).
        postgresql_with={"fillfactor": 70},
    )
    op.create_index("ix_messages_user_time", "messages", ["username", "posted_at"])
    op.create_index("ix_messages_raw_hash", "messages", ["raw_hash"])
    op.create_index("ix_messages_clean_hash", "messages", ["clean_hash"])
    op.create_index("ix_messages_source_file", "messages", ["source_file_id"])
    op.create_table(
        "dedupe_dirty",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("marked", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_table(
        "dedupe_queue",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("username", sa.Text),
        sa.Column("posted_at", TS),
        sa.Column("raw_hash", sa.String(64)),
        sa.Column("clean_hash", sa.String(64)),
    )


def downgrade() -> None:
    for table in ("dedupe_queue", "dedupe_dirty", "messages", "prompts", "channels", "source_files"):
        op.drop_table(table)
