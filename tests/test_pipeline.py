"""Task bodies shared by the DAG and the CLI: planning ingest groups and date partitions."""

from __future__ import annotations

import os

from promptmill.pipeline import ingest_group, partition_of, plan_ingest
from promptmill.settings import Settings

from tests.helpers import slash, write_json_export


def _landing(tmp_path):
    landing = tmp_path / "landing"
    for day, n in (("2022-11-01", 1), ("2022-11-02", 2), ("2022-11-03", 3)):
        write_json_export(landing / day / f"dreambot-1 [101] ({day}).json", "101",
                          [slash("ann", f"a {day} fox {i}", i * 90, seq=n * 10 + i) for i in range(n)])
    write_json_export(landing / "loose [102].json", "102", [slash("bob", "a loose owl", 0, seq=99)])
    return landing


def test_partition_of(tmp_path):
    assert partition_of(tmp_path / "2022-11-01" / "x.json", tmp_path) == "2022-11-01"
    assert partition_of(tmp_path / "a" / "x.json", tmp_path) is None


def test_a_dated_run_takes_every_partition_up_to_its_date_and_unpartitioned_files(store_url, tmp_path, caplog):
    """Issue #19.1: a run for a date D (a UI trigger's logical date is now) takes every new file dated up to D, not
    only D's own partition (older partitions were skipped forever), and logs what it leaves for later."""
    landing = _landing(tmp_path)
    settings = Settings(database_url=store_url, landing_dir=landing)
    with caplog.at_level("INFO", logger="promptmill"):
        groups = plan_ingest(settings, run_date="2022-11-02")
    paths = sorted(p for g in groups for p in g)
    assert [p.rsplit("/", 2)[-2] for p in paths] == ["2022-11-01", "2022-11-02", "landing"]
    assert "left for a later run: 1 files in partitions dated after 2022-11-02 (2022-11-03)" in caplog.text

    report = ingest_group(settings, paths)
    assert report["files_ingested"] == 3 and report["messages"] == 4
    # what is ingested is not planned again; a manual run (no date) takes every remaining partition
    assert plan_ingest(settings, run_date="2022-11-02") == []
    rest = sorted(p.rsplit("/", 2)[-2] for g in plan_ingest(settings, run_date=None) for p in g)
    assert rest == ["2022-11-03"]


def test_groups_are_size_balanced_and_bounded(store_url, tmp_path):
    landing = tmp_path / "many"
    for i in range(12):
        write_json_export(landing / f"c{i} [{200 + i}].json", str(200 + i),
                          [slash("ann", f"prompt {i} {j}", j, seq=j) for j in range(1 + i)])
    groups = plan_ingest(Settings(database_url=store_url, landing_dir=landing), max_groups=5)
    assert len(groups) == 5
    assert sorted(p for g in groups for p in g) == sorted(str(p) for p in landing.iterdir())


def test_a_backfill_is_stored_without_the_lookup_indexes_and_the_dedupe_task_builds_them(pg_url, tmp_path):
    from promptmill.pipeline import dedupe
    from promptmill.store.db import connect
    from promptmill.store.lookup_indexes import LOOKUP_INDEXES, missing_lookup_indexes

    landing = _landing(tmp_path)
    settings = Settings(database_url=pg_url, landing_dir=landing, bulk_load_min_bytes=1)
    engine = connect(pg_url)
    groups = plan_ingest(settings, run_date=None)
    assert {index.name for index in missing_lookup_indexes(engine)} == {index.name for index in LOOKUP_INDEXES}
    reports = [ingest_group(settings, paths) for paths in groups]
    assert sum(r["messages"] for r in reports) == 7
    assert len(missing_lookup_indexes(engine)) == 3  # the mapped tasks leave them alone
    result = dedupe(settings)
    assert missing_lookup_indexes(engine) == []
    assert result["dedupe"]["full"] and result["status"]["messages"] == 7, result["status"]
    # the same verdicts as the ordinary path (SQLite, indexes never dropped)
    from promptmill.ingest import ingest_paths
    from promptmill.status import store_status

    plain_settings = Settings(database_url=f"sqlite:///{tmp_path / 'plain.sqlite'}")
    plain = connect(plain_settings.database_url)
    ingest_paths(plain, [landing], plain_settings)
    compared = ("messages", "kept", "near_duplicates", "rejected", "unique_prompts")
    assert {k: result["status"][k] for k in compared} == {k: store_status(plain, plain_settings)[k] for k in compared}
    assert result["status"]["near_duplicates"] > 0

    # a later, small run is no bulk load: the indexes stay
    write_json_export(landing / "2022-11-04" / "dreambot-1 [101] (2022-11-04).json", "101",
                      [slash("cid", "a late heron", 0, seq=1)])
    assert plan_ingest(Settings(database_url=pg_url, landing_dir=landing), run_date=None)
    assert missing_lookup_indexes(engine) == []


def test_a_file_name_that_is_not_utf8_is_planned_by_its_real_name(store_url, tmp_path):
    landing = tmp_path / "landing"
    data = write_json_export(tmp_path / "x.json", "103", [slash("cy", "a green frog", 0, seq=3)]).read_bytes()
    landing.mkdir()
    real = os.fsdecode(os.fsencode(landing) + b"/caf\xe9 [103].json")
    with open(real, "wb") as handle:
        handle.write(data)
    settings = Settings(database_url=store_url, landing_dir=landing)
    assert plan_ingest(settings, run_date=None) == [[real]]
    report = ingest_group(settings, [real])
    assert report["files_ingested"] == 1
    assert report["files_quarantined"] == [] and plan_ingest(settings, run_date=None) == []


def test_a_run_with_options_other_than_the_stores_fails_unless_it_recomputes(store_url, tmp_path):
    """The DAG's task bodies: params other than the store's options fail the first task and change nothing; with
    recompute, the ingest tasks store with the store's options and the dedupe task applies the new ones to all."""
    import pytest
    from promptmill.pipeline import dedupe
    from promptmill.store import options
    from promptmill.store.db import connect

    landing = _landing(tmp_path)
    settings = Settings(database_url=store_url, landing_dir=landing)
    for paths in plan_ingest(settings, run_date="2022-11-01"):
        ingest_group(settings, paths)
    dedupe(settings)
    engine = connect(store_url)
    assert options.read(engine) == options.StoreOptions("quality", "content_words", 0.8, 3600)  # the defaults

    asking = Settings(database_url=store_url, landing_dir=landing, near_dup_metric="token_set")
    expected = ("this store's verdicts use cleaning_profile=quality near_dup_metric=content_words near_dup_threshold=0.8 "
                "near_dup_window_s=3600, not near_dup_metric=token_set; to apply that to the whole store trigger a run "
                "with the param recompute on, or leave the params empty to use the store's")
    for task in (lambda: plan_ingest(asking, run_date=None), lambda: ingest_group(asking, []), lambda: dedupe(asking)):
        with pytest.raises(options.OptionsConflict) as caught:
            task()
        assert str(caught.value) == expected

    groups = plan_ingest(asking, run_date=None, recompute=True)
    reports = [ingest_group(asking, paths, recompute=True) for paths in groups]
    assert sum(r["messages"] for r in reports) == 5
    result = dedupe(asking, recompute=True)
    assert result["reprocessed"] == 7 and result["status"]["pending_dedupe"] == 0
    assert result["status"]["options"]["near_dup_metric"] == "token_set"
    assert options.read(engine) == options.StoreOptions("quality", "token_set", 0.8, 3600)
    assert dedupe(Settings(database_url=store_url, landing_dir=landing))["status"]["options"]["near_dup_metric"] == \
        "token_set"  # a run without params follows the store


def test_a_run_of_a_past_day_is_catching_up():
    from datetime import UTC, datetime, timedelta

    from promptmill.pipeline import is_catching_up

    now = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
    assert not is_catching_up(None, now)  # no logical date: the newest
    assert not is_catching_up(datetime(2026, 12, 7, 0, 0, tzinfo=UTC), now)  # today's scheduled run
    assert not is_catching_up(now - timedelta(hours=30), now)  # yesterday's, started late
    assert is_catching_up(datetime(2026, 12, 5, tzinfo=UTC), now)  # a backfilled day
