"""Table definitions (SQLAlchemy Core). Migrations in store/migrations create exactly these.

Other feature packages (labeling, publishing) define their tables on the same ``metadata`` in their own
modules; ``load_all_tables()`` imports them so that ``metadata`` is complete.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

TS = sa.DateTime(timezone=True)

source_files = sa.Table(
    "source_files",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("content_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("format", sa.String(8)),
    sa.Column("channel_id", sa.Text),
    sa.Column("partition_date", sa.String(10)),
    sa.Column("size_bytes", sa.BigInteger),
    # stat of the file on disk when ingested: a re-run skips unchanged files without hashing them
    sa.Column("file_mtime_ns", sa.BigInteger),
    sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("outcome", sa.String(16), nullable=False),  # ingested | quarantined
    sa.Column("reason", sa.Text),
    sa.Column("ingested_at", TS, nullable=False),
    sa.Column("elapsed_s", sa.Float),
    # Stored by a bulk load without the verdict rows of its new messages: the next dedupe writes them (whole store)
    sa.Column("verdicts_deferred", sa.Boolean, nullable=False, server_default=sa.false()),
    # what was odd about an ingested file without refusing it, one line each (e.g. a channel id mismatch)
    sa.Column("warnings", sa.Text),
    sa.Index("ix_source_files_path", "path"),
)

channels = sa.Table(
    "channels",
    metadata,
    sa.Column("channel_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text),
    sa.Column("guild_id", sa.Text),
    sa.Column("guild_name", sa.Text),
)

prompts = sa.Table(
    "prompts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("text_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("first_seen", TS),
    # True when one message of this prompt survived every rule: the unit that gets labeled and published.
    sa.Column("kept", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("kept_message_key", sa.Text),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("channel_id", sa.Text, nullable=False),
    sa.Column("author_id", sa.Text),
    sa.Column("author", sa.Text),
    sa.Column("posted_at", TS, nullable=False),
    sa.Column("edited_at", TS),
    # rank among same-timestamp rows of a minute-precision export (file order), see RawMessage.seq
    sa.Column("posted_seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("attachments", sa.Text),  # JSON array of URLs
    sa.Column("source_file_id", sa.BigInteger),
    # what the bot parser and the per-prompt cleaning made of the content (pure functions of it)
    sa.Column("era", sa.String(8)),
    sa.Column("username", sa.Text),
    sa.Column("raw_prompt", sa.Text),
    sa.Column("raw_hash", sa.String(64)),
    sa.Column("args", sa.Text),  # JSON object
    sa.Column("nsfw", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("pre_reason", sa.Text),  # rejection by the bot parser (rules 1-5)
    sa.Column("clean_text", sa.Text),
    sa.Column("clean_hash", sa.String(64)),
    sa.Column("clean_reason", sa.Text),  # rejection by the prompt clean-up (rules 14-33)
    sa.Index("ix_messages_source_file", "source_file_id"),
)

# The dedupe view of every message: the inputs of rules 12, 13 and 34 (copied from the message row when it is
# stored or re-derived) and the verdict. Narrow on purpose: dedupe reads and rewrites only these small rows
# (a verdict update never rewrites the wide message with its content), and its indexes stay small enough to be
# cached on a store of millions of messages. One row per message, written in the same transaction.
message_verdicts = sa.Table(
    "message_verdicts",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("channel_id", sa.Text, nullable=False),
    sa.Column("username", sa.Text),
    sa.Column("posted_at", TS, nullable=False),
    sa.Column("posted_seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("raw_hash", sa.String(64)),
    sa.Column("clean_hash", sa.String(64)),
    sa.Column("pre_reason", sa.Text),
    sa.Column("clean_reason", sa.Text),
    # rule 13 compares the raw prompts of a user's attempts: read with them, without a lookup of the wide message
    sa.Column("raw_prompt", sa.Text),
    # rule 12: this message is the earliest of its raw-prompt group (the one the notebook kept)
    sa.Column("raw_rep", sa.Boolean, nullable=False, server_default=sa.false()),
    # rule 13: dropped as an earlier attempt of the same user (near_dup_of = the attempt kept)
    sa.Column("near_dup", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("near_dup_of", sa.Text),
    sa.Column("prompt_id", sa.BigInteger),
    # final verdict after dedupe: pending (not deduped yet) | kept | rejected (with reason)
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("reason", sa.Text),
    sa.Index("ix_message_verdicts_user_time", "username", "posted_at"),
    # a raw-prompt group's members (rule 12), in time order
    sa.Index("ix_message_verdicts_raw_rank", "raw_hash", "posted_at", "posted_seq", "key"),
    sa.Index("ix_message_verdicts_clean_hash", "clean_hash"),
    # None of the verdict columns is indexed and pages keep more than half their space free, so on PostgreSQL
    # dedupe's updates are HOT (no index writes) even when one transaction updates every row of a page: the old
    # versions stay until commit. At 45 every update of a first load stays HOT; at 60 many did not.
    postgresql_with={"fillfactor": 45},
)

# Keys of messages inserted or changed since the last dedupe. A table of its own rather than a flag on the wide
# message rows: marking and clearing never rewrites a message.
dedupe_dirty = sa.Table(
    "dedupe_dirty",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("marked", sa.Integer, nullable=False, server_default="0"),
)

# Old (username, time, hashes) of messages whose content changed on re-ingest: dedupe must revisit
# the groups and user sessions they left, not only the ones they joined.
dedupe_queue = sa.Table(
    "dedupe_queue",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("username", sa.Text),
    sa.Column("posted_at", TS),
    sa.Column("raw_hash", sa.String(64)),
    sa.Column("clean_hash", sa.String(64)),
)

# The options the store's verdicts were computed with (store/options.py): one row, recorded by the first command
# that stores or dedupes anything and changed only by the commands that recompute the whole store with new ones.
store_options = sa.Table(
    "store_options",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("cleaning_profile", sa.Text, nullable=False),
    sa.Column("near_dup_metric", sa.Text, nullable=False),
    sa.Column("near_dup_threshold", sa.Float, nullable=False),
    sa.Column("near_dup_window_s", sa.Integer, nullable=False),
    sa.Column("recorded_at", TS, nullable=False),
    sa.CheckConstraint("id = 1", name="ck_store_options_one_row"),
)


def load_all_tables() -> sa.MetaData:
    """Import the feature packages' table modules so ``metadata`` knows every table."""
    import importlib

    for module in ("promptmill.labeling.tables", "promptmill.publishing.tables"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return metadata
