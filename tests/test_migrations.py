"""Store migrations: the migrated schema is exactly the tables the code declares, and data survives upgrades."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from promptmill.store.db import HEAD_REVISION, alembic_config, connect, create_engine_for, is_at_head, migrate
from promptmill.store.schema import load_all_tables


def test_head_revision_is_the_newest_migration_script(store_url):
    from alembic.script import ScriptDirectory

    engine = create_engine_for(store_url)
    with engine.connect() as conn:
        assert ScriptDirectory.from_config(alembic_config(conn)).get_current_head() == HEAD_REVISION
    # connect() skips alembic only for a store at that revision
    assert not is_at_head(engine)  # nothing migrated yet
    migrate(engine, "0003_publishing")
    assert not is_at_head(engine)
    migrate(engine)
    assert is_at_head(engine)


def test_migrated_schema_matches_the_declared_tables(store_url):
    engine = connect(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), load_all_tables())
    # alembic cannot compare server defaults or storage parameters reliably; tables, columns and indexes it can
    assert diff == []


def test_verdicts_move_to_their_own_table_and_back(store_url):
    engine = create_engine_for(store_url)
    migrate(engine, "0003_publishing")
    posted = datetime(2023, 1, 2, 3, 4, 5, tzinfo=UTC)
    with engine.begin() as conn:
        for key, status, reason in (("k1", "kept", None), ("k2", "rejected", "near_duplicate")):
            conn.execute(
                sa.text(
                    "INSERT INTO messages (key, channel_id, posted_at, content, username, raw_hash, status, reason, "
                    "raw_rep, near_dup, near_dup_of) VALUES (:key, 'c', :posted, 'x', 'ann', 'h', :status, :reason, "
                    ":rep, :nd, :of)"
                ),
                {"key": key, "posted": posted if engine.dialect.name == "postgresql" else "2023-01-02 03:04:05.000000",
                 "status": status, "reason": reason, "rep": True, "nd": reason is not None,
                 "of": "k1" if reason else None},
            )
    migrate(engine)
    verdicts = "SELECT key, username, raw_hash, status, reason, raw_rep, near_dup, near_dup_of FROM {} ORDER BY key"
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(verdicts.format("message_verdicts")))] == [
            ("k1", "ann", "h", "kept", None, True, False, None),
            ("k2", "ann", "h", "rejected", "near_duplicate", True, True, "k1"),
        ]
        columns = {c["name"] for c in sa.inspect(conn).get_columns("messages")}
    assert "status" not in columns and "content" in columns
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0003_publishing")
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sa.text(verdicts.format("messages")))] == [
            ("k1", "ann", "h", "kept", None, True, False, None),
            ("k2", "ann", "h", "rejected", "near_duplicate", True, True, "k1"),
        ]
        assert not sa.inspect(conn).has_table("message_verdicts")
    engine.dispose()


@pytest.fixture(autouse=True)
def _fresh_engines():
    from promptmill.store import db

    yield
    db.dispose_all()


def test_verdict_rows_get_the_raw_prompt_of_their_generation(store_url):
    """0006 copies each generation's raw prompt into its verdict row (rule 13 reads it there); others get none."""
    engine = create_engine_for(store_url)
    migrate(engine, "0005_raw_rank_index")
    posted = "2023-01-02 03:04:05.000000" if engine.dialect.name == "sqlite" else datetime(2023, 1, 2, tzinfo=UTC)
    with engine.begin() as conn:
        for key, raw_prompt, pre_reason in (("k1", "a cat", None), ("k2", None, "not_a_generation")):
            conn.execute(
                sa.text(
                    "INSERT INTO messages (key, channel_id, posted_at, content, raw_prompt, raw_hash, pre_reason) "
                    "VALUES (:key, 'c', :posted, 'x', :raw_prompt, :raw_hash, :pre_reason)"
                ),
                {"key": key, "posted": posted, "raw_prompt": raw_prompt, "raw_hash": raw_prompt and "h",
                 "pre_reason": pre_reason},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO message_verdicts (key, channel_id, posted_at, raw_hash, pre_reason) "
                    "VALUES (:key, 'c', :posted, :raw_hash, :pre_reason)"
                ),
                {"key": key, "posted": posted, "raw_hash": raw_prompt and "h", "pre_reason": pre_reason},
            )
    migrate(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT key, raw_prompt FROM message_verdicts ORDER BY key")).all()
    assert [tuple(r) for r in rows] == [("k1", "a cat"), ("k2", None)]


def test_duplicate_publication_records_are_merged_and_versions_become_unique(store_url):
    engine = create_engine_for(store_url)
    migrate(engine, "0008_deferred_verdicts")
    row = ("INSERT INTO publications (destination, version, content_sha256, train_rows, test_rows, created_at, "
           "manifest) VALUES (:d, :v, 'c', 1, 1, '2026-01-01 00:00:00', '{}')")
    with engine.begin() as conn:
        for version in ("v0001-aaaaaaaaaaaa", "v0001-aaaaaaaaaaaa", "v0002-bbbbbbbbbbbb"):
            conn.execute(sa.text(row), {"d": "file:///pub", "v": version})
    migrate(engine)
    with engine.connect() as conn:
        kept = [tuple(r) for r in conn.execute(sa.text("SELECT id, version FROM publications ORDER BY id"))]
    assert [version for _, version in kept] == ["v0001-aaaaaaaaaaaa", "v0002-bbbbbbbbbbbb"] and kept[0][0] == 1
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.text(row), {"d": "file:///pub", "v": "v0002-bbbbbbbbbbbb"})
