"""The whole-store dedupe computed in the client (dedupe_whole.py) and the deferred verdict rows of a bulk load.

It is a speed-up, so it must give exactly what the driver of increments gives over every message
(``dedupe_client_max_messages=0`` selects that driver), run on the same exports in a second schema: every verdict
column, every prompt row.
"""

from __future__ import annotations

import csv
import logging
import secrets
import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from promptmill import dedupe_whole
from promptmill.dedupe import run_dedupe
from promptmill.ingest import ingest_paths
from promptmill.settings import Settings
from promptmill.status import store_status
from promptmill.store.db import connect
from promptmill.store.lookup_indexes import LOOKUP_INDEXES, missing_lookup_indexes

from tests.helpers import (
    BOT,
    EPOCH,
    Msg,
    slash,
    slash_content,
    text_content,
    write_csv_export,
    write_json_export,
)

BULK = Settings(bulk_load_min_bytes=1)  # any load that at least doubles the store is a bulk load
EVERY_MESSAGE_DRIVER = Settings(bulk_load_min_bytes=2**62, dedupe_client_max_messages=0)
CHANNEL = "Stable Diffusion - Bots - dreambot-1 [101].json"


def _exports(folder, start: int = 0):
    """Retry bursts, exact duplicates across users and files, equal timestamps, a user-less era, and values
    that COPY's text format escapes (backslashes, tabs, newlines) in prompts and user names."""
    json_msgs = [slash(f"user{i % 3}", f"a castle on a hill number {i // 2}", start + i * 7, seq=i) for i in range(40)]
    json_msgs += [slash("back\\slash", f"a \\ tabbed\tprompt\nover lines {i % 2}", start + 3, seq=100 + i) for i in range(4)]
    json_msgs += [Msg(text_content(None, f"an anonymous lighthouse {i % 2}"), json_msgs[0].when, seq=200 + i) for i in range(3)]
    json_msgs += [slash("user1", "a castle on a hill number 1", start + 7, seq=300)]  # same time as an earlier one
    write_json_export(folder / CHANNEL, "101", json_msgs)
    csv_msgs = [slash(f"user{i % 4}", f"a castle on a hill number {i // 3}", start + 500 + i * 11, seq=i) for i in range(30)]
    csv_msgs += [Msg("just chatting", csv_msgs[0].when, author={**BOT, "id": "55", "name": "someone", "isBot": False})]
    write_csv_export(folder / "Stable Diffusion - Bots - dreambot-2 [102].csv", csv_msgs)
    _write_minute_precision_csv(folder / "Stable Diffusion - Bots - dreambot-3 [103].csv", start)
    return folder


def _write_minute_precision_csv(path, start: int) -> None:
    """An old export whose dates have minutes only: messages of the same minute are ordered by their rank in it
    (posted_seq). Within one minute: one raw prompt by three users (rule 12 keeps the first), and one user's two
    raw prompts that clean to the same text (rule 34 keeps the first when near-dedupe is off)."""
    minute = (EPOCH + timedelta(minutes=start + 900)).strftime("%d-%b-%y %I:%M %p")
    rows = [(user, "a red fox in the snow") for user in ("cid", "ann", "bob")]
    rows += [("dan", "a blue whale."), ("dan", "a blue whale"), ("eve", "a blue whale")]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("AuthorID,Author,Date,Content,Attachments,Reactions\n")
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for seq, (user, prompt) in enumerate(rows):
            writer.writerow([BOT["id"], "DreamBotMothership#6958", minute, slash_content(user, prompt, seed=seq), "", ""])


@contextmanager
def _second_schema(pg_url):
    """An engine on a second, empty schema of the test's database."""
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
        other = f"{schema}_{secrets.token_hex(3)}"
        conn.execute(sa.text(f'CREATE SCHEMA "{other}"'))
    try:
        yield connect(pg_url.replace(schema, other))
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{other}" CASCADE'))
        admin.dispose()


def _store(engine) -> tuple[list[tuple], list[tuple]]:
    """Every verdict row (prompt ids as their texts) and every prompt row, comparable across stores."""
    with engine.connect() as conn:
        verdicts = [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT v.key, v.channel_id, v.username, v.posted_at, v.posted_seq, v.raw_hash, v.clean_hash, "
                    "v.pre_reason, v.clean_reason, v.raw_prompt, v.raw_rep, v.near_dup, v.near_dup_of, v.status, "
                    "v.reason, p.text FROM message_verdicts v LEFT JOIN prompts p ON p.id = v.prompt_id ORDER BY v.key"
                )
            )
        ]
        prompts = [
            tuple(row)
            for row in conn.execute(
                sa.text("SELECT text, text_hash, first_seen, kept, kept_message_key FROM prompts ORDER BY text_hash")
            )
        ]
    return verdicts, prompts


def _with_driver(url: str, driver: str) -> str:
    return url.replace("postgresql://", f"postgresql+{driver}://", 1)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_bulk_load_defers_its_verdict_rows_and_dedupe_writes_them_as_the_driver_of_increments_would(
    pg_url, tmp_path, driver
):
    folder = _exports(tmp_path / "in")
    engine = connect(_with_driver(pg_url, driver))
    assert engine.dialect.driver == driver
    report = ingest_paths(engine, [folder], BULK, run_dedupe=False)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM message_verdicts")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM dedupe_dirty")).scalar() == 0
        assert conn.execute(sa.text("SELECT bool_and(verdicts_deferred) FROM source_files")).scalar()
    status = store_status(engine)
    assert status["messages"] == report.messages == status["pending_dedupe"] > 0
    assert status["generations"] == report.generations

    deduped = run_dedupe(engine, BULK)
    assert deduped.full and deduped.dirty_messages == report.messages
    with engine.connect() as conn:
        assert not conn.execute(sa.text("SELECT bool_or(verdicts_deferred) FROM source_files")).scalar()
    assert not missing_lookup_indexes(engine), "the lookup indexes are built after the verdict rows"
    status = store_status(engine)
    assert status["pending_dedupe"] == 0 and status["kept"] > 0 and status["near_duplicates"] > 0

    with _second_schema(pg_url) as oracle:
        ingest_paths(oracle, [folder], EVERY_MESSAGE_DRIVER)
        expected = _store(oracle)
    actual = _store(engine)
    assert actual == expected
    assert any(row[2] == "back\\slash" and "\t" in row[9] for row in actual[0]), "the escaped values were stored"
    assert any(row[2] is None and row[10] for row in actual[0]), "a representative without a user"


def test_the_walk_split_over_two_processes_gives_the_same_verdicts(pg_url, tmp_path, monkeypatch):
    monkeypatch.setattr(dedupe_whole, "_TWO_PROCESS_WALK_MIN", 1)
    folder = _exports(tmp_path / "in")
    engine = connect(pg_url)
    report = ingest_paths(engine, [folder], BULK)
    assert report.rejected.get("near_duplicate")
    with _second_schema(pg_url) as oracle:
        ingest_paths(oracle, [folder], EVERY_MESSAGE_DRIVER)
        expected = _store(oracle)
    assert _store(engine) == expected


def test_a_failed_second_walk_process_fails_the_dedupe_and_changes_nothing(pg_url, tmp_path, monkeypatch):
    import os

    from promptmill import dedupe_rules

    monkeypatch.setattr(dedupe_whole, "_TWO_PROCESS_WALK_MIN", 1)
    parent = os.getpid()
    walk = dedupe_rules.walk

    def walk_failing_in_the_child(*args):
        if os.getpid() != parent:
            raise MemoryError("the child ran out of memory")
        return walk(*args)

    monkeypatch.setattr(dedupe_rules, "walk", walk_failing_in_the_child)
    folder = _exports(tmp_path / "in")
    engine = connect(pg_url)
    ingest_paths(engine, [folder], BULK, run_dedupe=False)
    with pytest.raises(RuntimeError, match="second process failed"):
        run_dedupe(engine, BULK)
    with engine.connect() as conn:  # the parent's connection still works, and nothing was written
        assert conn.execute(sa.text("SELECT count(*) FROM message_verdicts")).scalar() == 0
        assert conn.execute(sa.text("SELECT bool_and(verdicts_deferred) FROM source_files")).scalar()
    monkeypatch.setattr(dedupe_rules, "walk", walk)
    run_dedupe(engine, BULK)
    assert store_status(engine)["pending_dedupe"] == 0


def test_a_failed_walk_in_the_parent_does_not_wait_forever_for_the_child(pg_url, tmp_path, monkeypatch):
    """The child blocks writing its result until the parent reads it: a parent that fails first must let it go."""
    import os

    from promptmill import dedupe_rules

    monkeypatch.setattr(dedupe_whole, "_TWO_PROCESS_WALK_MIN", 1)
    parent = os.getpid()

    def walk_failing_in_the_parent(rows, *args):
        if os.getpid() == parent:
            raise KeyError("the parent's half failed")
        for row in rows:  # a result far larger than a pipe's buffer
            yield row, True, "x" * 100_000

    monkeypatch.setattr(dedupe_rules, "walk", walk_failing_in_the_parent)
    folder = _exports(tmp_path / "in")
    engine = connect(pg_url)
    ingest_paths(engine, [folder], BULK, run_dedupe=False)
    raised: list[BaseException] = []

    def dedupe() -> None:
        try:
            run_dedupe(engine, BULK)
        except BaseException as exc:
            raised.append(exc)

    worker = threading.Thread(target=dedupe, daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "dedupe is still waiting for the walk's child"
    assert len(raised) == 1 and "parent's half" in str(raised[0])


@pytest.mark.parametrize("metric", ["off", "indel"])
def test_ties_and_other_metrics_agree_with_the_driver_of_increments(pg_url, tmp_path, metric):
    folder = _exports(tmp_path / "in")
    engine = connect(pg_url)
    ingest_paths(engine, [folder], BULK.with_overrides(near_dup_metric=metric))
    with _second_schema(pg_url) as oracle:
        ingest_paths(oracle, [folder], EVERY_MESSAGE_DRIVER.with_overrides(near_dup_metric=metric))
        expected = _store(oracle)
    actual = _store(engine)
    assert actual == expected
    same_minute = [row for row in actual[0] if row[3] == actual[0][0][3] or row[4] > 0]
    assert sum(1 for row in same_minute if row[4] > 0) >= 5, "messages ranked within their minute"


def test_deferred_verdict_rows_above_the_client_limit_are_inserted_for_the_driver_of_increments(pg_url, tmp_path):
    folder = _exports(tmp_path / "in")
    engine = connect(pg_url)
    too_many = BULK.with_overrides(dedupe_client_max_messages=10)
    report = ingest_paths(engine, [folder], too_many)
    assert report.messages > 10
    with engine.connect() as conn:
        assert not conn.execute(sa.text("SELECT bool_or(verdicts_deferred) FROM source_files")).scalar()
    with _second_schema(pg_url) as oracle:
        ingest_paths(oracle, [folder], EVERY_MESSAGE_DRIVER)
        expected = _store(oracle)
    assert _store(engine) == expected


def test_the_verdict_rows_of_a_bulk_load_lie_by_user_then_time(pg_url, tmp_path):
    """Physical order is what makes an increment's reads of a user's hour cheap (a few pages, not one per row)."""
    engine = connect(pg_url)
    ingest_paths(engine, [_exports(tmp_path / "in")], BULK)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT username, posted_at FROM message_verdicts ORDER BY ctid")).all()
    assert len({user for user, _ in rows}) > 3
    assert rows == sorted(rows, key=lambda row: (row[0] is not None, row[0] or "", row[1]))


def test_a_bulk_load_onto_a_stored_history_updates_only_what_changed(pg_url, tmp_path, caplog):
    """Messages with verdict rows (an earlier load) and deferred ones (the bulk load) in one whole-store pass; a
    late history changes which attempts are the latest, so stored verdicts change too."""
    later = _exports(tmp_path / "later", start=600)
    earlier = _exports(tmp_path / "earlier", start=0)
    (earlier / CHANNEL).rename(earlier / "Stable Diffusion - Bots - dreambot-1 [101] [part 0].json")
    engine = connect(pg_url)
    ingest_paths(engine, [later], EVERY_MESSAGE_DRIVER)
    with caplog.at_level(logging.INFO, logger="promptmill"):
        ingest_paths(engine, [earlier], BULK)
    assert any("dropped" in record.getMessage() for record in caplog.records), "the second load was not a bulk load"

    with _second_schema(pg_url) as oracle:
        ingest_paths(oracle, [later, earlier], EVERY_MESSAGE_DRIVER)
        expected = _store(oracle)
    assert _store(engine) == expected


def test_the_client_dedupe_logs_how_long_each_step_took(pg_url, tmp_path, caplog):
    engine = connect(pg_url)
    with caplog.at_level(logging.INFO, logger="promptmill.dedupe"):
        ingest_paths(engine, [_exports(tmp_path / "in")], BULK)
    (line,) = [record.getMessage() for record in caplog.records if record.getMessage().startswith("dedupe (client): ")]
    assert line.startswith("dedupe (client): read ") and "near-duplicates " in line and "new verdict rows" in line


def test_a_full_recompute_in_the_client_changes_nothing_on_a_deduped_store(pg_url, tmp_path):
    engine = connect(pg_url)
    ingest_paths(engine, [_exports(tmp_path / "in")], EVERY_MESSAGE_DRIVER)
    before = _store(engine)
    with engine.connect() as conn:
        xmin = conn.execute(sa.text("SELECT max(xmin::text::bigint) FROM message_verdicts")).scalar()
    report = run_dedupe(engine, Settings(), full=True)
    assert report.full and report.near_dup_changes == 0
    assert _store(engine) == before
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT max(xmin::text::bigint) FROM message_verdicts")).scalar() == xmin, (
            "a verdict row was rewritten"
        )


def test_a_verdict_row_written_concurrently_for_a_deferred_message_makes_dedupe_retry(pg_url, tmp_path, monkeypatch, caplog):
    """An ordinary ingest may store (and give a verdict row to) a message the bulk load stored without one, after
    dedupe read it: the COPY of its row then fails on the key, and dedupe retries with that row as a stored one."""
    folder = _exports(tmp_path / "in")
    engine = connect(pg_url)
    ingest_paths(engine, [folder], BULK, run_dedupe=False)
    original = dedupe_whole._verdict_lines
    calls = []

    def verdict_lines_after_a_concurrent_write(msgs, *args):
        if not calls:
            key = msgs.keys[0]
            with engine.begin() as other:  # what the upsert of an ingest writes for a changed message
                other.execute(
                    sa.text(
                        "INSERT INTO message_verdicts (key, channel_id, username, posted_at, posted_seq, raw_hash, "
                        "clean_hash, pre_reason, clean_reason, raw_prompt) SELECT key, channel_id, username, "
                        "posted_at, posted_seq, raw_hash, clean_hash, pre_reason, clean_reason, raw_prompt "
                        "FROM messages WHERE key = :key"
                    ),
                    {"key": key},
                )
                other.execute(sa.text("INSERT INTO dedupe_dirty (key) VALUES (:key)"), {"key": key})
        calls.append(1)
        return original(msgs, *args)

    monkeypatch.setattr(dedupe_whole, "_verdict_lines", verdict_lines_after_a_concurrent_write)
    with caplog.at_level(logging.INFO, logger="promptmill.dedupe"):
        run_dedupe(engine, BULK)
    assert len(calls) == 2 and any("retrying" in record.getMessage() for record in caplog.records)
    with _second_schema(pg_url) as oracle:
        ingest_paths(oracle, [folder], EVERY_MESSAGE_DRIVER)
        expected = _store(oracle)
    assert _store(engine) == expected


def test_a_dedupe_that_fails_after_the_verdict_rows_were_committed_is_completed_by_the_next(pg_url, tmp_path, monkeypatch):
    """The new verdict rows commit on their own connection before the rest: a failure after that leaves the files
    marked deferred, and the next dedupe rewrites what it must."""
    folder = _exports(tmp_path / "in")
    engine = connect(pg_url)
    ingest_paths(engine, [folder], BULK, run_dedupe=False)

    def fail(self, conn):
        raise RuntimeError("the prompt rows could not be written")

    with monkeypatch.context() as patch:
        patch.setattr(dedupe_whole._PromptRows, "write", fail)
        with pytest.raises(RuntimeError, match="prompt rows"):
            run_dedupe(engine, BULK)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM message_verdicts")).scalar() > 0, "the rows committed"
        assert conn.execute(sa.text("SELECT count(*) FROM prompts")).scalar() == 0
        assert conn.execute(sa.text("SELECT bool_and(verdicts_deferred) FROM source_files")).scalar()
    assert store_status(engine)["messages"] > 0

    report = run_dedupe(engine, BULK)
    assert report.full
    with _second_schema(pg_url) as oracle:
        ingest_paths(oracle, [folder], EVERY_MESSAGE_DRIVER)
        expected = _store(oracle)
    assert _store(engine) == expected
    assert {index.name for index in LOOKUP_INDEXES} - {index.name for index in missing_lookup_indexes(engine)} == {
        index.name for index in LOOKUP_INDEXES
    }


@pytest.mark.parametrize(
    "field",
    ["plain", "\\N", "a\\b", "tab\there", "new\nline", "cr\rreturn", "back\\\\slashes", "\\x41", "é ü 中"],
)
def test_copy_text_fields_round_trip(field):
    from promptmill.store import copy_text

    assert copy_text.decode(copy_text.encode(field)) == field
