"""Dedupe (rules 12, 13, 34) on a real store: the rules themselves, incrementality, and order independence."""

from __future__ import annotations

import itertools
import secrets
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from promptmill.dedupe import run_dedupe
from promptmill.derive import build_row
from promptmill.records import RawMessage
from promptmill.settings import Settings
from promptmill.store.bulk import MessageStager
from promptmill.store.db import connect

from tests.helpers import Msg, slash_content

T0 = datetime(2022, 11, 1, 12, 0, tzinfo=UTC)
SETTINGS = Settings(cleaning_profile="parity")  # the notebook's rules, which the oracle below spells out


def raw(key: str, user: str, prompt: str, minutes: float, edited: float | None = None) -> RawMessage:
    return RawMessage(
        key=key,
        channel_id="c1",
        author_id="bot",
        author="DreamBot#6958",
        posted_at=T0 + timedelta(minutes=minutes),
        content=slash_content(user, prompt),
        edited_at=T0 + timedelta(minutes=edited) if edited is not None else None,
    )


def load(engine, messages: list[RawMessage], settings: Settings = SETTINGS, dedupe: bool = True) -> None:
    with engine.begin() as conn:
        stager = MessageStager(conn)
        for m in messages:
            stager.add(build_row(m, 1, settings.cleaning_profile))
        stager.merge()
    if dedupe:
        run_dedupe(engine, settings)


def snapshot(engine) -> dict:
    """Every verdict column and kept prompt row; and, checked on the way, one representative per raw-prompt group
    (the invariant an increment's lookup of a group's stored representative relies on)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT m.key, m.status, m.reason, m.raw_rep, m.near_dup, m.near_dup_of, p.text, p.kept "
                "FROM message_verdicts m LEFT JOIN prompts p ON p.id = m.prompt_id ORDER BY m.key"
            )
        ).all()
        prompts = conn.execute(
            sa.text("SELECT text, kept, kept_message_key FROM prompts WHERE kept ORDER BY text")
        ).all()
        representatives = conn.execute(
            sa.text(
                "SELECT raw_hash, SUM(CASE WHEN raw_rep THEN 1 ELSE 0 END) FROM message_verdicts "
                "WHERE pre_reason IS NULL AND raw_hash IS NOT NULL GROUP BY raw_hash"
            )
        ).all()
    assert all(count == 1 for _, count in representatives), [group for group in representatives if group[1] != 1]
    return {"messages": [tuple(r) for r in rows], "kept_prompts": [tuple(r) for r in prompts]}


def statuses(engine) -> dict[str, tuple]:
    return {row[0]: (row[1], row[2]) for row in snapshot(engine)["messages"]}


def test_exact_duplicates_keep_the_earliest(engine):
    load(engine, [raw("b", "ann", "a red fox", 10), raw("a", "bob", "a red fox", 5), raw("c", "cid", "a red fox", 5)])
    assert statuses(engine) == {
        "a": ("kept", None),  # earliest (5 min), key order breaks the tie with "c"
        "b": ("rejected", "duplicate"),
        "c": ("rejected", "duplicate"),
    }


def test_near_duplicate_keeps_the_latest_attempt_of_a_user(engine):
    load(
        engine,
        [
            raw("1", "ann", "a castle on a hill at night", 0),
            raw("2", "ann", "a castle on a hill at dusk", 10),  # similar, within the hour: only the latest survives
            raw("3", "ann", "a castle on a hill at dawn", 20),
            raw("4", "bob", "a castle on a hill at noon", 15),  # other user: not compared
            raw("5", "ann", "a castle on a hill in winter", 90),  # more than an hour later: kept
        ],
    )
    got = statuses(engine)
    assert got["3"] == ("kept", None)
    assert got["1"] == ("rejected", "near_duplicate")
    assert got["2"] == ("rejected", "near_duplicate")
    assert got["4"] == ("kept", None)
    assert got["5"] == ("kept", None)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT near_dup_of FROM message_verdicts WHERE key = '1'")).scalar() == "3"


def test_cleaned_duplicates_and_prompt_rows(engine):
    # Different raw prompts that clean to the same text: rule 34 keeps the row the notebook's frame had first
    # after its rule-13 loop, (username, date) descending; one prompt row.
    load(engine, [raw("x", "bob", "a cat, 4 k", 0), raw("y", "ann", "a cat, 4k", 5), raw("z", "cid", "http://x a cat", 9)])
    got = statuses(engine)
    assert got == {"x": ("kept", None), "y": ("rejected", "duplicate"), "z": ("rejected", "url")}
    snap = snapshot(engine)
    assert snap["kept_prompts"] == [("a cat, 4k", True, "x")]


def test_a_late_earlier_attempt_changes_nothing_already_latest_but_an_even_later_one_does(engine):
    load(engine, [raw("1", "ann", "portrait of an old sailor, oil", 10)])
    assert statuses(engine)["1"] == ("kept", None)
    load(engine, [raw("0", "ann", "portrait of an old sailor, oil paint", 0)])  # older attempt arrives late
    assert statuses(engine) == {"0": ("rejected", "near_duplicate"), "1": ("kept", None)}
    load(engine, [raw("2", "ann", "portrait of an old sailor, oil on canvas", 30)])  # newer attempt arrives
    assert statuses(engine) == {
        "0": ("rejected", "near_duplicate"),
        "1": ("rejected", "near_duplicate"),
        "2": ("kept", None),
    }


def test_edited_message_keeps_newest_text_and_revisits_its_old_groups(engine):
    load(engine, [raw("1", "ann", "a blue whale", 0), raw("2", "bob", "a blue whale", 5)])
    assert statuses(engine)["2"] == ("rejected", "duplicate")
    # Message 1 is edited to another prompt: message 2 becomes the earliest of "a blue whale".
    load(engine, [raw("1", "ann", "a green turtle", 0, edited=60)])
    assert statuses(engine) == {"1": ("kept", None), "2": ("kept", None)}
    # An older version arriving later (an earlier export) does not win over the newer text.
    load(engine, [raw("1", "ann", "a blue whale", 0)])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT raw_prompt FROM messages WHERE key = '1'")).scalar() == "a green turtle"


def test_incremental_dedupe_only_touches_affected_rows(engine):
    load(engine, [raw(f"k{i:03d}", f"user{i % 20}", f"prompt number {i} about {i * 7}", i * 3) for i in range(200)])
    before = snapshot(engine)
    with engine.begin() as conn:
        stager = MessageStager(conn)
        stager.add(build_row(raw("new", "user3", "prompt number 3 about 21!", 10), 1, "parity"))
        stager.merge()
    report = run_dedupe(engine, SETTINGS)
    assert report.dirty_messages == 1
    assert not report.full
    assert report.users == 1
    after = snapshot(engine)
    changed = set(after["messages"]) - set(before["messages"])
    assert {row[0] for row in changed} <= {"new", "k003"}


def test_near_dup_metric_off_and_full_recompute(engine):
    msgs = [raw("1", "ann", "a castle at night", 0), raw("2", "ann", "a castle at dusk", 10)]
    load(engine, msgs)
    assert statuses(engine)["1"] == ("rejected", "near_duplicate")
    run_dedupe(engine, Settings(near_dup_metric="off"), full=True)
    assert statuses(engine)["1"] == ("kept", None)
    run_dedupe(engine, SETTINGS, full=True)
    assert statuses(engine)["1"] == ("rejected", "near_duplicate")


# ---------------------------------------------------------------- order independence (property test)

WORDS = ["cat", "castle", "fox", "dragon", "city", "ship", "forest"]
STYLES = ["", ", 4 k", ", oil painting", ", trending on artstation", " at night", ", http://x.y"]


@st.composite
def message_sets(draw):
    n = draw(st.integers(min_value=1, max_value=28))
    msgs = []
    for i in range(n):
        user = draw(st.sampled_from(["ann", "bob", "cid"]))
        prompt = f"a {draw(st.sampled_from(WORDS))}{draw(st.sampled_from(STYLES))}"
        minutes = draw(st.integers(min_value=0, max_value=240))
        msgs.append(raw(f"m{i:02d}", user, prompt, minutes))
    # a few edits: same key, later edit time, another prompt
    for i in draw(st.lists(st.integers(min_value=0, max_value=n - 1), max_size=3, unique=True)):
        prompt = f"a {draw(st.sampled_from(WORDS))}{draw(st.sampled_from(STYLES))}"
        m = msgs[i]
        msgs.append(raw(m.key, "ann", prompt, (m.posted_at - T0).total_seconds() / 60, edited=500))
    order = draw(st.permutations(range(len(msgs))))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(msgs)), max_size=4)))
    dedupe_every = draw(st.booleans())
    return msgs, order, cuts, dedupe_every


_counter = itertools.count()


def _fresh_engine(kind: str, tmp_path_factory, pg_database=None):
    if kind == "sqlite":
        return connect(f"sqlite:///{tmp_path_factory.mktemp('h')}/s{next(_counter)}.sqlite")
    schema = f"h_{secrets.token_hex(5)}"
    admin = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return connect(f"{pg_database}?options=-csearch_path%3D{schema}")


def _check_order_independence(kind, data, tmp_path_factory, pg_database=None, settings=SETTINGS):
    msgs, order, cuts, dedupe_every = data
    reference = _fresh_engine(kind, tmp_path_factory, pg_database)
    load(reference, msgs, settings)
    variant = _fresh_engine(kind, tmp_path_factory, pg_database)
    shuffled = [msgs[i] for i in order]
    bounds = [0, *cuts, len(shuffled)]
    for lo, hi in itertools.pairwise(bounds):
        load(variant, shuffled[lo:hi], settings, dedupe=dedupe_every)
    if not dedupe_every:
        run_dedupe(variant, settings)
    assert snapshot(variant) == snapshot(reference)
    reference.dispose()
    variant.dispose()


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=message_sets())
def test_order_independence_sqlite(data, tmp_path_factory):
    _check_order_independence("sqlite", data, tmp_path_factory)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=message_sets())
def test_order_independence_postgresql(data, tmp_path_factory, pg_database):
    _check_order_independence("postgresql", data, tmp_path_factory, pg_database)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=message_sets())
def test_order_independence_and_incremental_equal_full_under_the_quality_profile(data, tmp_path_factory):
    """The quality profile's rules (content_words 0.8, its clean-up, its ties) in random partitions and orders, each
    part deduped incrementally or not at all until the end, give the verdicts of one load of everything."""
    _check_order_independence("sqlite", data, tmp_path_factory, settings=Settings())


# ---------------------------------------------------------------- an independent oracle of the rules


def oracle(msgs: list[RawMessage], window=timedelta(hours=1), threshold=0.6) -> dict[str, tuple]:
    """Rules 12, 13, 34 written the plain way over the final message set."""
    from promptmill.bots import extract
    from promptmill.cleaning import clean
    from rapidfuzz.distance import Jaro

    final: dict[str, RawMessage] = {}
    for m in msgs:
        old = final.get(m.key)
        if old is None or (m.edited_at or T0 - timedelta(days=9999), m.content) > (
            old.edited_at or T0 - timedelta(days=9999),
            old.content,
        ):
            final[m.key] = m
    rows = sorted(final.values(), key=lambda m: (m.posted_at, m.key))
    gens = {m.key: extract(m.content) for m in rows}
    verdict: dict[str, tuple] = {}
    seen_raw: set[str] = set()
    survivors = []
    for m in rows:
        g = gens[m.key]
        if g.reject:
            verdict[m.key] = ("rejected", g.reject)
        elif g.raw_prompt in seen_raw:
            verdict[m.key] = ("rejected", "duplicate")
        else:
            seen_raw.add(g.raw_prompt)
            survivors.append(m)
    kept13 = []
    # the notebook's sort_values(["username", "date"], ascending=False) keeps ties in their prior order
    by_key = sorted(survivors, key=lambda m: m.key)
    for m in sorted(by_key, key=lambda m: (gens[m.key].username, m.posted_at), reverse=True):
        g = gens[m.key]
        if any(
            gens[k.key].username == g.username
            and k.posted_at - m.posted_at < window
            and Jaro.similarity(gens[k.key].raw_prompt, g.raw_prompt) > threshold
            for k in kept13
        ):
            verdict[m.key] = ("rejected", "near_duplicate")
        else:
            kept13.append(m)
    seen_clean: set[str] = set()
    for m in kept13:  # already in the walk's order: (username, date) descending, ties by key
        c = clean(gens[m.key].raw_prompt)
        if c.reject or not c.text:
            verdict[m.key] = ("rejected", c.reject or "empty")
        elif c.text in seen_clean:
            verdict[m.key] = ("rejected", "duplicate")
        else:
            seen_clean.add(c.text)
            verdict[m.key] = ("kept", None)
    return verdict


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=message_sets())
def test_store_matches_the_plain_oracle(data, tmp_path_factory):
    msgs, *_ = data
    engine = _fresh_engine("sqlite", tmp_path_factory)
    load(engine, msgs)
    assert statuses(engine) == oracle(msgs)
    engine.dispose()


@pytest.mark.parametrize(
    ("gap_minutes", "attempts"),
    # every chain reaches back past the first read (one window, 1 h, before the new attempt); the last two, 14 h
    # and 29 h long, are read on lazily in spans of 6 h and then 24 h
    [(30, 6), (59, 6), (61, 6), (59, 15), (45, 40)],
)
def test_session_chains_reach_back_across_windows(engine, gap_minutes, attempts):
    """A chain of attempts each < 1 h apart: a late newest attempt must revisit the whole chain."""
    chain = [raw(f"c{i:02d}", "ann", f"a lighthouse on a cliff {'!' * i}", i * gap_minutes) for i in range(attempts)]
    load(engine, chain[:-1])
    load(engine, chain[-1:])
    fresh = chain
    assert statuses(engine) == oracle(fresh)


@st.composite
def long_sessions(draw):
    """Users posting for many hours with gaps mostly under the window: sessions far longer than one read."""
    msgs = []
    for user in draw(st.lists(st.sampled_from(["ann", "bob"]), min_size=1, max_size=2, unique=True)):
        minutes = 0.0
        for i in range(draw(st.integers(min_value=2, max_value=30))):
            minutes += draw(st.sampled_from([5, 20, 45, 59, 61, 90]))
            prompt = f"a {draw(st.sampled_from(WORDS[:3]))}{draw(st.sampled_from(STYLES[:4]))}"
            msgs.append(raw(f"{user}{i:02d}", user, prompt, minutes))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(msgs)), max_size=3)))
    order = draw(st.permutations(range(len(msgs))))
    return msgs, order, cuts


def _check_long_sessions(kind, data, tmp_path_factory, pg_database=None):
    msgs, order, cuts = data
    engine = _fresh_engine(kind, tmp_path_factory, pg_database)
    shuffled = [msgs[i] for i in order]
    for lo, hi in itertools.pairwise([0, *cuts, len(shuffled)]):
        load(engine, shuffled[lo:hi])
    assert statuses(engine) == oracle(msgs)
    engine.dispose()


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=long_sessions())
def test_long_sessions_incremental_matches_the_oracle(data, tmp_path_factory):
    """Increments into sessions spanning many hours: the walk back stops early only where nothing can change."""
    _check_long_sessions("sqlite", data, tmp_path_factory)


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=long_sessions())
def test_long_sessions_incremental_matches_the_oracle_postgresql(data, tmp_path_factory, pg_database):
    """The same on PostgreSQL, where the walk back reads older rows through the (username, posted_at) index."""
    _check_long_sessions("postgresql", data, tmp_path_factory, pg_database)


def test_two_dedupes_at_once_take_turns_and_agree_with_one(pg_url):
    """The second dedupe waits for the first and then works on a snapshot that sees its prompt rows."""
    import threading

    engine = connect(pg_url)
    messages = [raw(str(i), f"user{i % 4}", f"a lantern in the fog number {i % 7}", i * 20) for i in range(60)]
    load(engine, messages, dedupe=False)
    errors: list[BaseException] = []

    def dedupe(full: bool):
        try:
            run_dedupe(engine, SETTINGS, full=full)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=dedupe, args=(full,)) for full in (True, True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    together = snapshot(engine)
    run_dedupe(engine, SETTINGS, full=True)
    assert snapshot(engine) == together
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM prompts")).scalar() == 7
        assert conn.execute(sa.text("SELECT COUNT(*) FROM message_verdicts WHERE status = 'pending'")).scalar() == 0


def test_an_increment_deduped_while_the_lookup_indexes_are_dropped_recomputes_the_whole_store(pg_url, monkeypatch):
    """A bulk load may drop the lookup indexes between dedupe's check and its lock: the incremental path would
    then scan the table once per touched group, so dedupe takes the whole-store path (same verdicts)."""
    from promptmill.store import lookup_indexes

    engine = connect(pg_url)
    history = [raw(str(i), f"user{i % 3}", f"a kite over the sea number {i % 5}", i * 15) for i in range(40)]
    load(engine, history)
    load(engine, [raw("late", "user1", "a kite over the sea number 2", 7)], dedupe=False)  # an increment
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP INDEX {', '.join(index.name for index in lookup_indexes.LOOKUP_INDEXES)}"))
    monkeypatch.setattr(lookup_indexes, "ensure_lookup_indexes", lambda engine, then=(): [])  # dropped after the check
    report = run_dedupe(engine, SETTINGS)
    assert report.full and report.dirty_messages == 1
    after_increment = snapshot(engine)
    run_dedupe(engine, SETTINGS, full=True)
    assert snapshot(engine) == after_increment
    # the late message is the earliest of its raw prompt's group: the stored first one became its duplicate
    assert statuses(engine)["2"] == ("rejected", "duplicate")
    assert statuses(engine)["late"][1] != "duplicate"


def test_a_verdict_row_changed_by_a_concurrent_ingest_makes_the_increment_retry(pg_url, monkeypatch, caplog):
    """The final update reaches rows by the address read earlier in the dedupe's snapshot: a row an ingest changed
    meanwhile (an edit of a touched message) makes it fail and retry, never write over the newer row."""
    import logging

    import promptmill.dedupe as dedupe_module

    engine = connect(pg_url)
    load(engine, [raw(str(i), f"user{i % 3}", f"a kite over the sea number {i % 5}", i * 15) for i in range(30)])
    load(engine, [raw("late", "user1", "a kite over the sea number 2", 7)], dedupe=False)  # an increment
    write_verdicts = dedupe_module._write_verdicts
    calls = []

    def edit_then_write(conn, *args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:  # another process stores an edit of the touched message before the final update
            load(connect(pg_url), [raw("late", "user1", "a violet comet", 7, edited=30)], dedupe=False)
        return write_verdicts(conn, *args, **kwargs)

    monkeypatch.setattr(dedupe_module, "_write_verdicts", edit_then_write)
    with caplog.at_level(logging.INFO, logger="promptmill.dedupe"):
        report = run_dedupe(engine, SETTINGS)
    assert not report.full and calls
    assert len(calls) == 2 and any("retrying" in record.getMessage() for record in caplog.records)
    monkeypatch.undo()
    after_retry = snapshot(engine)
    with engine.connect() as conn:  # the retry saw the edit
        assert conn.execute(sa.text("SELECT raw_prompt FROM message_verdicts WHERE key = 'late'")).scalar() == "a violet comet"
        assert conn.execute(sa.text("SELECT COUNT(*) FROM dedupe_dirty")).scalar() == 0
    run_dedupe(engine, SETTINGS, full=True)
    assert snapshot(engine) == after_retry


def _kept_texts(engine) -> set[str]:
    with engine.connect() as conn:
        return {t for (t,) in conn.execute(sa.text("SELECT text FROM prompts WHERE kept"))}


@pytest.mark.parametrize(("profile", "same"), [("quality", True), ("parity", False)])
def test_minute_precision_csv_keeps_the_prompts_of_the_exact_json_export(tmp_path, profile, same):
    """Ties in time: among one user's attempts of the same minute of a minute-precision CSV export, the quality
    profile takes the later in the file as the newer, as the JSON export of the same messages (exact times) orders
    them; parity keeps the notebook's reading (the earlier in the file is the newer)."""
    import csv

    from promptmill.ingest import ingest_paths

    from tests.helpers import write_json_export

    attempts = [("ann", "a red fox in the snow, highly detailed", 5), ("ann", "a red fox in the snow, highly detailed, 8k", 40),
                ("bob", "a castle at dawn, oil painting", 45), ("bob", "a castle at dawn, oil painting, 4k", 50)]
    msgs = [Msg(slash_content(user, prompt, seed=i + 1), T0 + timedelta(seconds=s), seq=i)
            for i, (user, prompt, s) in enumerate(attempts)]
    settings = SETTINGS.with_overrides(cleaning_profile=profile, near_dup_metric="content_words", near_dup_threshold=0.8)
    json_store = connect(f"sqlite:///{tmp_path / 'json.sqlite'}")
    write_json_export(tmp_path / "json" / "G - C - dreambot-1 [101].json", "101", msgs)
    ingest_paths(json_store, [tmp_path / "json"], settings)
    csv_path = tmp_path / "csv" / "G - C - dreambot-1 [101].csv"
    csv_path.parent.mkdir()
    with open(csv_path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow(["AuthorID", "Author", "Date", "Content", "Attachments", "Reactions"])
        for m in msgs:  # DCE's old default date format: to the minute
            writer.writerow(["1", "DreamBot#6958", m.when.strftime("%d-%b-%y %I:%M %p"), m.content, "", ""])
    csv_store = connect(f"sqlite:///{tmp_path / 'csv.sqlite'}")
    ingest_paths(csv_store, [csv_path.parent], settings)
    assert (_kept_texts(csv_store) == _kept_texts(json_store)) is same
    assert "a red fox in the snow, highly detailed, 8k" in _kept_texts(json_store)
