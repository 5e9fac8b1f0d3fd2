"""Re-derive every stored message from its stored content (after a rule change), without re-reading files."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from promptmill.derive import build_row
from promptmill.progress import Progress
from promptmill.records import RawMessage
from promptmill.settings import Settings
from promptmill.store.bulk import MESSAGE_COLUMNS, VERDICT_INPUT_COLUMNS, to_utc

_DERIVED = ("era", "username", "raw_prompt", "raw_hash", "args", "nsfw", "pre_reason", "clean_text", "clean_hash", "clean_reason")


def reprocess(engine: Engine, settings: Settings, progress_emit=None) -> int:
    """Recompute the bot-parser and clean-up columns of every message, then a full dedupe."""
    from promptmill.dedupe import run_dedupe

    derived_idx = [MESSAGE_COLUMNS.index(c) for c in _DERIVED]
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT COUNT(*) FROM messages")).scalar()
    progress = Progress("reprocess", total=total, unit="messages", emit=progress_emit)
    done = 0
    with engine.begin() as conn:
        ddl = ", ".join(f"{c} {'BOOLEAN' if c == 'nsfw' else 'TEXT'}" for c in _DERIVED)
        suffix = " ON COMMIT DROP" if conn.dialect.name == "postgresql" else ""
        if conn.dialect.name == "sqlite":
            conn.execute(sa.text("DROP TABLE IF EXISTS temp.rp_rows"))
        conn.execute(sa.text(f"CREATE TEMP TABLE rp_rows (key TEXT, {ddl}){suffix}"))
        tmp = sa.Table(
            "rp_rows",
            sa.MetaData(),
            sa.Column("key", sa.Text),
            *(sa.Column(c, sa.Boolean if c == "nsfw" else sa.Text) for c in _DERIVED),
        )
        with engine.connect() as reader:
            result = reader.execute(
                sa.text("SELECT key, channel_id, author_id, author, posted_at, content FROM messages"),
                execution_options={"stream_results": True, "yield_per": 20_000},
            )
            batch = []
            for key, channel_id, author_id, author, posted_at, content in result:
                raw = RawMessage(key, channel_id, author_id or "", author or "", to_utc(posted_at), content)
                row = build_row(raw, 0, settings.cleaning_profile)
                batch.append({"key": key, **{c: row[i] for c, i in zip(_DERIVED, derived_idx, strict=True)}})
                if len(batch) >= 20_000:
                    conn.execute(sa.insert(tmp), batch)
                    done += len(batch)
                    batch = []
                    progress.update(done)
            if batch:
                conn.execute(sa.insert(tmp), batch)
                done += len(batch)
        sets = ", ".join(f"{c} = rp_rows.{c}" for c in _DERIVED)
        conn.execute(sa.text(f"UPDATE messages SET {sets} FROM rp_rows WHERE messages.key = rp_rows.key"))
        inputs = ", ".join(f"{c} = rp_rows.{c}" for c in _DERIVED if c in VERDICT_INPUT_COLUMNS)
        conn.execute(
            sa.text(f"UPDATE message_verdicts SET {inputs} FROM rp_rows WHERE message_verdicts.key = rp_rows.key")
        )
        # Every stored verdict now rests on the old inputs: marked, so that if the dedupe below is interrupted the
        # next one recomputes them all (an increment relies on the stored verdicts of unmarked messages).
        conn.execute(
            sa.text(
                "INSERT INTO dedupe_dirty (key, marked) SELECT key, 0 FROM messages WHERE TRUE "
                "ON CONFLICT (key) DO UPDATE SET marked = dedupe_dirty.marked + 1"
            )
        )
    progress.update(done, force=True)
    run_dedupe(engine, settings, full=True, progress_emit=progress_emit)
    return done
