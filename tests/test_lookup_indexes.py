"""Bulk loads on PostgreSQL: the dedupe lookup indexes are dropped while the load is stored and always rebuilt."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from promptmill.dedupe import run_dedupe
from promptmill.ingest import ingest_paths
from promptmill.settings import Settings
from promptmill.store.db import connect
from promptmill.store.lookup_indexes import LOOKUP_INDEXES, missing_lookup_indexes

from tests.helpers import slash, write_csv_export, write_json_export

CHANNEL = "Stable Diffusion - Bots - dreambot-1 [101].json"
BULK = Settings(bulk_load_min_bytes=1)  # any load into an empty store is a bulk load
NEVER_BULK = Settings(bulk_load_min_bytes=2**62)


def _exports(folder):
    # retry bursts (near-duplicates), exact duplicates across users and files, both formats
    json_msgs = [slash(f"user{i % 3}", f"a castle on a hill number {i // 2}", i * 7, seq=i) for i in range(40)]
    write_json_export(folder / CHANNEL, "101", json_msgs)
    csv_msgs = [slash(f"user{i % 4}", f"a castle on a hill number {i // 3}", 500 + i * 11, seq=i) for i in range(30)]
    write_csv_export(folder / "Stable Diffusion - Bots - dreambot-2 [102].csv", csv_msgs)
    return folder


def _verdicts(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT v.key, v.status, v.reason, v.near_dup_of, p.text FROM message_verdicts v "
                    "LEFT JOIN prompts p ON p.id = v.prompt_id ORDER BY v.key"
                )
            )
        ]


def _index_names(engine) -> set[str]:
    return {index.name for index in LOOKUP_INDEXES} - {index.name for index in missing_lookup_indexes(engine)}


def test_a_bulk_load_gives_the_same_verdicts_and_ends_with_every_index(pg_url, tmp_path, caplog):
    folder = _exports(tmp_path / "in")
    bulk_engine = connect(pg_url)
    with caplog.at_level(logging.INFO, logger="promptmill.store"):
        bulk = ingest_paths(bulk_engine, [folder], BULK)
    assert any("dropped" in record.getMessage() for record in caplog.records), "the load was not a bulk load"
    assert _index_names(bulk_engine) == {index.name for index in LOOKUP_INDEXES}

    with bulk_engine.connect() as conn:  # the same exports, loaded the ordinary way, in a second schema
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
    plain_url = pg_url.replace(schema, schema + "_plain") if schema in pg_url else None
    assert plain_url, "the test schema is not in the URL"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}_plain"'))
    try:
        plain_engine = connect(plain_url)
        plain = ingest_paths(plain_engine, [folder], NEVER_BULK)
        assert (bulk.kept, bulk.rejected) == (plain.kept, plain.rejected)
        assert bulk.rejected.get("near_duplicate") and bulk.rejected.get("duplicate")
        assert _verdicts(bulk_engine) == _verdicts(plain_engine)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}_plain" CASCADE'))
        admin.dispose()


def test_indexes_left_dropped_by_a_stopped_load_are_built_by_the_next_ingest_and_by_dedupe(pg_url, tmp_path):
    engine = connect(pg_url)
    ingest_paths(engine, [_exports(tmp_path / "in")], NEVER_BULK)
    names = ", ".join(index.name for index in LOOKUP_INDEXES)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX {names}"))  # what a killed bulk load leaves
    run_dedupe(engine, NEVER_BULK)
    assert _index_names(engine) == {index.name for index in LOOKUP_INDEXES}

    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX {names}"))
    more = [slash("user9", "an owl in a tree", 9_000, seq=1)]
    write_json_export(tmp_path / "more" / "Stable Diffusion - Bots - dreambot-3 [103].json", "103", more)
    report = ingest_paths(engine, [tmp_path / "more"], NEVER_BULK, run_dedupe=False)
    assert report.files_ingested == 1
    assert _index_names(engine) == {index.name for index in LOOKUP_INDEXES}


def test_a_busy_verdict_table_keeps_its_indexes_and_the_load_goes_on(pg_url, tmp_path, caplog):
    engine = connect(pg_url)
    run_dedupe(engine, NEVER_BULK)  # schema in place
    with engine.connect() as reader:
        with reader.begin():
            reader.execute(sa.text("SELECT count(*) FROM message_verdicts"))  # holds a lock the DROP must wait for
            with caplog.at_level(logging.INFO, logger="promptmill.store"):
                report = ingest_paths(engine, [_exports(tmp_path / "in")], BULK, run_dedupe=False)
    assert any("busy" in record.getMessage() for record in caplog.records)
    assert report.files_ingested == 2
    assert _index_names(engine) == {index.name for index in LOOKUP_INDEXES}


def test_two_processes_building_the_missing_indexes_at_once_both_succeed(pg_url, tmp_path):
    import threading

    from promptmill.store.lookup_indexes import ensure_lookup_indexes

    engine = connect(pg_url)
    ingest_paths(engine, [_exports(tmp_path / "in")], NEVER_BULK)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX {', '.join(index.name for index in LOOKUP_INDEXES)}"))
    errors: list[BaseException] = []
    built: list[list[str]] = []

    def build():
        try:
            built.append(ensure_lookup_indexes(connect(pg_url)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert _index_names(engine) == {index.name for index in LOOKUP_INDEXES}
