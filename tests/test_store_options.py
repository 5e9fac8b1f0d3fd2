"""A store remembers the options its verdicts were computed with (store/options.py): every command computes with
them, only the commands that recompute the whole store change them, the others stop with one line. On SQLite and
PostgreSQL, through the `promptmill` command as users call it."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from promptmill.cli import main
from promptmill.store import options
from promptmill.store.options import OptionsConflict, StoreOptions

from tests.helpers import slash, write_json_export

PARITY = StoreOptions("parity", "jaro", 0.6, 3600)  # --profile parity alone: the original rule
STORED = "--profile parity --near-dup-metric token_set --near-dup-threshold 0.8 --near-dup-window 3600"


@pytest.fixture(autouse=True)
def _one_worker(monkeypatch):
    monkeypatch.setenv("PROMPTMILL_INGEST_WORKERS", "1")  # in-process: no worker processes forked from pytest


def _exports(tmp_path):
    """Two users' attempts within the hour: unrelated prompts that Jaro 0.6 merges and token_set 0.8 does not."""
    first = write_json_export(tmp_path / "a" / "dreambot-1 [101].json", "101", [
        slash("ann", "a red fox in the snow", 0, seq=1), slash("ann", "a robot in the rain", 10, seq=2),
        slash("ann", "a cottage in Sussex", 200, seq=3),
    ])
    second = write_json_export(tmp_path / "b" / "dreambot-2 [102].json", "102", [
        slash("bob", "a castle at night", 100, seq=4), slash("bob", "a cat at noon", 110, seq=5),
        slash("ann", "a sailing ship in a storm", 20, seq=6),
    ])
    return first, second


def _cli(capsys, *argv, db):
    code = main([*argv, "-q", "--db", db])
    out, err = capsys.readouterr()
    return code, out, err


def _verdicts(url) -> dict:
    """The verdict of each message, by the prompt its content asks for."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT m.content, v.status, v.reason FROM messages m "
                                    "JOIN message_verdicts v ON v.key = m.key")).all()
    engine.dispose()
    return {re.search(r"prompt:(.*) seed:", content).group(1): (status, reason) for content, status, reason in rows}


def _stored(url) -> StoreOptions | None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        stored = options.read(conn)
    engine.dispose()
    return stored


@pytest.fixture
def other_url(store_url, tmp_path):
    """A second empty store on the same backend."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'other.sqlite'}"
    schema = store_url.rsplit("search_path%3D", 1)[1] + "_other"
    engine = sa.create_engine(store_url.split("?")[0], isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{store_url.split('?')[0]}?options=-csearch_path%3D{schema}"


def test_after_dedupe_full_with_new_options_an_ingest_without_flags_keeps_them(store_url, other_url, tmp_path, capsys):
    first, second = _exports(tmp_path)
    assert _cli(capsys, "ingest", str(first), "--profile", "parity", db=store_url)[0] == 0
    assert _stored(store_url) == PARITY  # first use: what it was given, and the profile's near-duplicate rule
    assert _verdicts(store_url)["a red fox in the snow"] == ("rejected", "near_duplicate")  # Jaro 0.6
    code, _, err = _cli(capsys, "dedupe", "--full", "--near-dup-metric", "token_set", "--near-dup-threshold", "0.8",
                        db=store_url)
    assert code == 0, err
    assert _stored(store_url) == StoreOptions("parity", "token_set", 0.8, 3600)
    assert _cli(capsys, "ingest", str(second), db=store_url)[0] == 0  # no flags: the store's options

    # the same verdicts as a store that used token_set 0.8 from the start
    assert _cli(capsys, "ingest", str(first), "--profile", "parity", "--near-dup-metric", "token_set",
                "--near-dup-threshold", "0.8", db=other_url)[0] == 0
    assert _cli(capsys, "ingest", str(second), db=other_url)[0] == 0
    verdicts = _verdicts(store_url)
    assert verdicts == _verdicts(other_url)
    assert verdicts["a castle at night"] == ("kept", None)  # Jaro 0.6 would drop it as bob's earlier attempt
    assert _stored(other_url) == _stored(store_url)


def test_an_ingest_asking_for_other_options_stops_with_one_line_and_changes_nothing(store_url, tmp_path, capsys,
                                                                                     monkeypatch):
    first, second = _exports(tmp_path)
    _cli(capsys, "ingest", str(first), "--profile", "parity", "--near-dup-metric", "token_set", "--near-dup-threshold",
         "0.8", db=store_url)
    before = _verdicts(store_url)

    code, out, err = _cli(capsys, "ingest", str(second), "--near-dup-metric", "jaro", db=store_url)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err == (f"promptmill: error: this store's verdicts use {STORED}, not --near-dup-metric jaro; to apply that "
                   "to the whole store run `promptmill dedupe --full --near-dup-metric jaro`, or leave the option out "
                   "to use the store's\n")
    # the same from the environment, which it names
    monkeypatch.setenv("PROMPTMILL_NEAR_DUP_THRESHOLD", "0.9")
    code, _, err = _cli(capsys, "ingest", str(second), db=store_url)
    assert code == 2 and "not --near-dup-threshold 0.9 (PROMPTMILL_NEAR_DUP_THRESHOLD);" in err
    monkeypatch.delenv("PROMPTMILL_NEAR_DUP_THRESHOLD")
    # a profile is applied when messages are derived: `dedupe --full` cannot change it, reprocess can
    code, _, err = _cli(capsys, "dedupe", "--full", "--profile", "quality", db=store_url)
    assert code == 2 and "run `promptmill reprocess --profile quality`" in err
    code, _, err = _cli(capsys, "dedupe", "--near-dup-window", "60", db=store_url)  # an incremental dedupe
    assert code == 2 and "`promptmill dedupe --full --near-dup-window 60`" in err
    assert _verdicts(store_url) == before and _stored(store_url) == StoreOptions("parity", "token_set", 0.8, 3600)

    # options equal to the store's are fine
    code, _, err = _cli(capsys, "ingest", str(second), "--near-dup-metric", "token_set", "--profile", "parity",
                        db=store_url)
    assert code == 0, err


def test_reprocess_with_a_new_profile_records_it_and_later_ingests_use_it(store_url, other_url, tmp_path, capsys):
    first, second = _exports(tmp_path)
    _cli(capsys, "ingest", str(first), "--profile", "parity", db=store_url)
    assert _verdicts(store_url)["a cottage in Sussex"] == ("rejected", "nsfw_word")  # the parity defect
    code, _, err = _cli(capsys, "reprocess", "--profile", "quality", db=store_url)
    assert code == 0, err
    assert _stored(store_url) == StoreOptions("quality", "content_words", 0.8, 3600)  # the profile's own rule
    assert _cli(capsys, "ingest", str(second), db=store_url)[0] == 0

    _cli(capsys, "ingest", str(first), str(second), "--profile", "quality", db=other_url)
    assert _verdicts(store_url) == _verdicts(other_url)
    assert _verdicts(store_url)["a cottage in Sussex"] == ("kept", None)


def test_status_shows_the_options_and_a_new_store_has_none_until_first_used(store_url, tmp_path, capsys):
    first, _ = _exports(tmp_path)
    code, out, _ = _cli(capsys, "status", "--json", db=store_url)
    assert code == 0 and json.loads(out)["options"] is None
    assert _stored(store_url) is None  # status never records
    _cli(capsys, "ingest", str(first), "--near-dup-window", "600", db=store_url)
    code, out, _ = _cli(capsys, "status", "--json", db=store_url)
    # a new store takes the defaults: the quality profile and its near-duplicate rule
    assert json.loads(out)["options"] == {"cleaning_profile": "quality", "near_dup_metric": "content_words",
                                          "near_dup_threshold": 0.8, "near_dup_window_s": 600}
    code, out, _ = _cli(capsys, "status", db=store_url)
    assert ("options:         --profile quality --near-dup-metric content_words --near-dup-threshold 0.8 "
            "--near-dup-window 600\n") in out


def test_resolve():
    stored = StoreOptions("parity", "jaro", 0.6, 3600)
    assert options.resolve({}, stored) == stored
    assert options.resolve({"near_dup_metric": "jaro", "near_dup_threshold": 0.6}, stored) == stored
    changed = options.resolve({"near_dup_metric": "indel", "near_dup_threshold": 0.7}, stored,
                              may_change=options.NEAR_DUP_OPTIONS)
    assert changed == StoreOptions("parity", "indel", 0.7, 3600)
    with pytest.raises(OptionsConflict, match=r"not --profile quality --near-dup-metric indel; .* run `promptmill "
                                              r"reprocess --profile quality --near-dup-metric indel`"):
        options.resolve({"cleaning_profile": "quality", "near_dup_metric": "indel"}, stored,
                        may_change=options.NEAR_DUP_OPTIONS)
    with pytest.raises(OptionsConflict, match="not cleaning_profile=quality; to apply that to the whole store trigger "
                                              "a run with the param recompute on"):
        options.resolve({"cleaning_profile": "quality"}, stored, dag=True)


def test_a_new_profile_brings_its_near_duplicate_rule_unless_one_is_asked_for():
    stored = StoreOptions("quality", "content_words", 0.8, 3600)
    may = options.OPTIONS
    assert options.resolve({"cleaning_profile": "parity"}, stored, may_change=may) == StoreOptions(
        "parity", "jaro", 0.6, 3600)  # reprocess --profile parity reproduces the notebook
    assert options.resolve({"cleaning_profile": "parity", "near_dup_threshold": 0.7}, stored, may_change=may) == \
        StoreOptions("parity", "jaro", 0.7, 3600)
