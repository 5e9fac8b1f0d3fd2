"""Ingest on both backends: idempotence, overlaps, edits, quarantine, nothing lost."""

from __future__ import annotations

import json
import os
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from promptmill.ingest import ingest_paths
from promptmill.settings import Settings

from tests.exports.zips import write_zip_raw_names
from tests.helpers import EPOCH, Msg, slash, slash_content, write_csv_export, write_json_export

SETTINGS = Settings()
CHANNEL = "Stable Diffusion - Bots - dreambot-1 [101].json"


def _counts(engine) -> dict:
    with engine.connect() as conn:
        return {
            "messages": conn.execute(sa.text("SELECT COUNT(*) FROM messages")).scalar(),
            "kept": conn.execute(sa.text("SELECT COUNT(*) FROM message_verdicts WHERE status = 'kept'")).scalar(),
            "pending": conn.execute(sa.text("SELECT COUNT(*) FROM message_verdicts WHERE status = 'pending'")).scalar(),
        }


def test_report_counts_only_the_messages_of_this_runs_files(engine, tmp_path):
    # first load: every stored message is this run's (counted from the verdicts alone)
    write_json_export(tmp_path / "a" / CHANNEL, "101", [slash("ann", f"a fox number {i}", i * 90, seq=i) for i in range(4)])
    first = ingest_paths(engine, [tmp_path / "a"], SETTINGS)
    assert (first.kept, first.rejected) == (4, {})
    # a later run: only its own file's messages, although the store holds the first run's too
    later = [slash("bob", f"an owl number {i}", 10_000 + i * 90, seq=i) for i in range(2)]
    later.append(slash("bob", "an owl number 0", 10_500, seq=9))  # the same prompt again: a duplicate
    write_json_export(tmp_path / "b" / "Stable Diffusion - Bots - dreambot-2 [102].json", "102", later)
    second = ingest_paths(engine, [tmp_path / "b"], SETTINGS)
    assert (second.messages, second.kept, second.rejected) == (3, 2, {"duplicate": 1})


def test_ingest_then_rerun_skips_everything(engine, tmp_path):
    msgs = [slash("ann", f"a fox number {i}", i * 90, seq=i) for i in range(10)]
    msgs.append(Msg("hello everyone", EPOCH + timedelta(minutes=3), seq=99,
                    author={"id": "5", "name": "human", "discriminator": "0000", "nickname": "h", "isBot": False}))
    write_json_export(tmp_path / "in" / CHANNEL, "101", msgs)
    first = ingest_paths(engine, [tmp_path / "in"], SETTINGS)
    assert (first.files_seen, first.files_ingested, first.files_skipped) == (1, 1, 0)
    assert first.messages == 11 and first.generations == 10
    assert first.kept == 10 and first.rejected == {"not_a_generation": 1}
    second = ingest_paths(engine, [tmp_path / "in"], SETTINGS)
    assert (second.files_ingested, second.files_skipped, second.messages) == (0, 1, 0)
    # the same content under another name is the same file
    (tmp_path / "in" / CHANNEL).rename(tmp_path / "in" / "renamed [101].json")
    third = ingest_paths(engine, [tmp_path / "in"], SETTINGS)
    assert third.files_skipped == 1
    assert _counts(engine) == {"messages": 11, "kept": 10, "pending": 0}


def test_overlapping_exports_store_each_message_once(engine, tmp_path):
    msgs = [slash("ann", f"a ship number {i}", i * 90, seq=i) for i in range(6)]
    write_json_export(tmp_path / "a" / "x [101].json", "101", msgs[:4])
    write_json_export(tmp_path / "b" / "x [101] [part 2].json", "101", msgs[2:])
    report = ingest_paths(engine, [tmp_path / "a", tmp_path / "b"], SETTINGS)
    assert report.messages == 8
    assert _counts(engine)["messages"] == 6


def test_edited_message_keeps_the_newest_text_whatever_the_order(engine, tmp_path):
    original = slash("ann", "a cat", 0, seq=1)
    edited = Msg(slash_content("ann", "a dog"), original.when, seq=1, edited=EPOCH + timedelta(hours=1))
    write_json_export(tmp_path / "new" / "n [101].json", "101", [edited])
    write_json_export(tmp_path / "old" / "o [101].json", "101", [original])
    ingest_paths(engine, [tmp_path / "new"], SETTINGS)
    ingest_paths(engine, [tmp_path / "old"], SETTINGS)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT raw_prompt FROM messages")).scalars().all() == ["a dog"]


def test_bad_files_are_quarantined_and_nothing_stored_is_lost(engine, tmp_path):
    good = write_json_export(tmp_path / "in" / "good [101].json", "101", [slash("ann", "a red barn", 0, seq=1)])
    ingest_paths(engine, [good], SETTINGS)
    before = _counts(engine)

    bad = tmp_path / "bad"
    bad.mkdir()
    full = json.dumps(json.loads(good.read_text()) | {"messages": json.loads(good.read_text())["messages"] * 1})
    (bad / "truncated [102].json").write_text(full[: len(full) // 2 + 40], encoding="utf-8")
    (bad / "not-dce.json").write_text('{"hello": "world"}', encoding="utf-8")
    (bad / "empty [103].csv").write_bytes(b"")
    (bad / "latin1 [104].csv").write_bytes(
        b"AuthorID,Author,Date,Content,Attachments,Reactions\n"
        + '"1","x","2022-11-01T00:00:00.0000000+00:00","caf\xe9","",""\n'.encode("latin-1")
    )
    with zipfile.ZipFile(bad / "evil.zip", "w") as zf:
        zf.writestr("../escape [105].json", good.read_text())
    # a file whose first half is fine but second half broken leaves nothing behind
    msgs = [slash("bob", f"a tower {i}", i, seq=i) for i in range(50)]
    half = write_json_export(bad / "half [106].json", "106", msgs).read_text()
    (bad / "half [106].json").write_text(half[: int(len(half) * 0.8)], encoding="utf-8")

    report = ingest_paths(engine, [bad], SETTINGS)
    reasons = {item["path"].split("/")[-1]: item["reason"] for item in report.files_quarantined}
    assert report.files_ingested == 0
    assert set(reasons) >= {"truncated [102].json", "not-dce.json", "empty [103].csv", "latin1 [104].csv", "half [106].json"}
    assert any("escape" in path or "evil.zip" in path for path in reasons)
    for name, reason in reasons.items():
        assert name in reason or "evil.zip" in reason, reason  # each reason names its file
    assert _counts(engine) == before
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM messages WHERE channel_id = '106'")).scalar() == 0
        quarantined = conn.execute(sa.text("SELECT COUNT(*) FROM source_files WHERE outcome = 'quarantined'")).scalar()
    assert quarantined >= 6


def test_csv_and_zip_and_channel_selection(engine, tmp_path):
    write_csv_export(tmp_path / "in" / "Stable Diffusion - Bots - dreambot-7 [107].csv",
                     [slash("dee", "a mountain lake", 0, seq=1), slash("dee", "a mountain lake", 1, seq=2)])
    inner = write_json_export(tmp_path / "tmp" / "Stable Diffusion - Bots - dreambot-8 [108].json", "108",
                              [slash("eve", "an owl at night", 0, seq=3)])
    with zipfile.ZipFile(tmp_path / "in" / "dump.zip", "w") as zf:
        zf.write(inner, "exports/2022/" + inner.name)
    only_107 = Settings(channels=("107",))
    report = ingest_paths(engine, [tmp_path / "in"], only_107)
    assert report.files_ingested == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT DISTINCT channel_id FROM messages")).scalars().all() == ["107"]
        rows = conn.execute(sa.text("SELECT status, reason FROM message_verdicts ORDER BY posted_at")).all()
    assert [tuple(r) for r in rows] == [("rejected", "duplicate"), ("kept", None)] or [tuple(r) for r in rows] == [
        ("kept", None),
        ("rejected", "duplicate"),
    ]
    report = ingest_paths(engine, [tmp_path / "in"], SETTINGS)  # the zip's channel is taken now
    assert report.files_ingested == 1 and report.files_skipped == 1
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.text("SELECT DISTINCT channel_id FROM messages")).scalars()) == ["107", "108"]


def test_reprocess_applies_a_changed_profile_to_stored_messages(engine, tmp_path):
    from promptmill.reprocess import reprocess

    msgs = [slash("ann", "a cottage in Sussex", 0, seq=1), slash("bob", "a red barn", 5, seq=2)]
    ingest_paths(engine, [write_json_export(tmp_path / "in" / "x [101].json", "101", msgs)],
                 Settings(cleaning_profile="parity"))
    with engine.connect() as conn:
        before = dict(conn.execute(sa.text("SELECT m.content LIKE '%Sussex%', v.reason FROM messages m "
                                         "JOIN message_verdicts v ON v.key = m.key")).all())
    assert before == {True: "nsfw_word", False: None}  # the parity defect: "Sussex" contains "sex"
    assert reprocess(engine, Settings(cleaning_profile="quality")) == 2
    with engine.connect() as conn:
        after = dict(conn.execute(sa.text("SELECT m.content LIKE '%Sussex%', v.status FROM messages m "
                                        "JOIN message_verdicts v ON v.key = m.key")).all())
    assert after == {True: "kept", False: "kept"}


def test_a_reprocess_interrupted_before_its_dedupe_is_completed_by_the_next_dedupe(engine, tmp_path, monkeypatch):
    import promptmill.dedupe
    from promptmill.dedupe import run_dedupe
    from promptmill.reprocess import reprocess

    from tests.test_dedupe import snapshot

    msgs = [slash("ann", "a cottage in Sussex", 0, seq=1), slash("bob", "a red barn", 5, seq=2)]
    ingest_paths(engine, [write_json_export(tmp_path / "in" / "x [101].json", "101", msgs)],
                 Settings(cleaning_profile="parity"))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(promptmill.dedupe, "run_dedupe", killed)
    with pytest.raises(KeyboardInterrupt):
        reprocess(engine, Settings(cleaning_profile="quality"))
    monkeypatch.undo()
    run_dedupe(engine, Settings(cleaning_profile="quality"))  # a plain dedupe, as the next ingest runs it
    completed = snapshot(engine)
    assert {status for _, status, *_ in completed["messages"]} == {"kept"}  # "Sussex" is no NSFW word in quality
    run_dedupe(engine, Settings(cleaning_profile="quality"), full=True)
    assert snapshot(engine) == completed


def test_reprocess_takes_the_kept_message_from_a_prompt_no_message_has_any_more(engine, tmp_path):
    """Parity cuts "a cat -- in the rain" down to "a cat"; quality rejects it: the prompt "a cat" then has no
    message, and must not stay kept (it would be labeled and published)."""
    from promptmill.reprocess import reprocess

    msgs = [slash("ann", "a cat -- in the rain", 0, seq=1), slash("bob", "a red barn", 5, seq=2)]
    ingest_paths(engine, [write_json_export(tmp_path / "in" / "x [101].json", "101", msgs)],
                 Settings(cleaning_profile="parity"))
    kept = "SELECT text FROM prompts WHERE kept ORDER BY text"
    with engine.connect() as conn:
        assert conn.execute(sa.text(kept)).scalars().all() == ["a cat", "a red barn"]
    reprocess(engine, Settings(cleaning_profile="quality"))
    with engine.connect() as conn:
        assert conn.execute(sa.text(kept)).scalars().all() == ["a red barn"]


def _ingest_until_it_waits(engine, source, outcome: dict):
    """Start ingesting ``source`` in a thread (its outcome lands in ``outcome``); return once it waits for a lock."""
    import threading
    import time

    from promptmill.ingest import ingest_source

    worker = threading.Thread(target=lambda: outcome.update(result=ingest_source(engine, source, "parity", ())))
    worker.start()
    deadline = time.monotonic() + 30
    with engine.connect() as probe:
        while not probe.execute(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar():
            assert time.monotonic() < deadline, "the file's COPY never waited for the other transaction"
            time.sleep(0.05)
    return worker


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_message_stored_concurrently_after_the_key_check_makes_the_file_retry_with_the_upsert(pg_url, tmp_path, driver):
    """The direct COPY of new keys meets a key another transaction inserted meanwhile: the file is stored anyway
    (with either driver: they report the unique violation differently)."""

    from promptmill.derive import build_row
    from promptmill.exports import discover, read_export
    from promptmill.store.bulk import MessageStager
    from promptmill.store.db import connect

    engine = connect(pg_url.replace("postgresql://", f"postgresql+{driver}://", 1))
    assert engine.dialect.driver == driver
    msgs = [slash("ann", f"a lighthouse number {i}", i * 90, seq=i) for i in range(6)]
    write_json_export(tmp_path / "a" / CHANNEL, "101", msgs)
    write_json_export(tmp_path / "b" / "Stable Diffusion - Bots - dreambot-1 [101] [part 2].json", "101", msgs[3:4])
    (source_a,) = discover([tmp_path / "a"])
    (source_b,) = discover([tmp_path / "b"])
    outcome = {}
    with engine.connect() as blocker:
        with blocker.begin():
            # another transaction holds message 3, not committed yet: the file's key check cannot see it
            stager = MessageStager(blocker)
            _, rows = read_export(source_b)
            for message in rows:
                stager.add(build_row(message, 0, "parity"))
            stager.merge()
            # the file's COPY waits on message 3's unique index entry
            worker = _ingest_until_it_waits(engine, source_a, outcome)
        worker.join(30)
    assert outcome["result"].outcome == "ingested"
    assert outcome["result"].messages == 6
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar() == 6
        assert conn.execute(sa.text("SELECT count(*) FROM message_verdicts")).scalar() == 6
        assert conn.execute(sa.text("SELECT count(*) FROM dedupe_dirty")).scalar() == 6


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_keys_repeated_within_and_across_chunks_of_a_file_keep_the_newest_version(pg_url, driver):
    """Direct COPY of new keys, in chunks of 2: repeats (edits) within a chunk and in later chunks go through the
    upsert, and the newest edit wins whatever its position in the file."""
    from datetime import UTC, datetime

    from promptmill.derive import build_row
    from promptmill.records import RawMessage
    from promptmill.store.bulk import MessageStager
    from promptmill.store.db import connect

    engine = connect(pg_url.replace("postgresql://", f"postgresql+{driver}://", 1))
    assert engine.dialect.driver == driver
    t0 = datetime(2022, 11, 1, 12, 0, tzinfo=UTC)

    def message(key: str, prompt: str, edited_minutes: int | None) -> RawMessage:
        edited = t0.replace(minute=edited_minutes) if edited_minutes is not None else None
        return RawMessage(key=key, channel_id="101", author_id="bot", author="DreamBot#6958", posted_at=t0,
                          content=slash_content("ann", prompt), edited_at=edited)

    rows = [
        message("k1", "first version", None),
        message("k1", "second version", 5),  # same chunk as its first version
        message("k2", "a fox", None),
        message("k3", "an owl", None),
        message("k1", "stale version", 1),  # a later chunk, but an older edit: loses
        message("k2", "a fox, edited", 9),  # a later chunk, newer: wins
    ]
    with engine.begin() as conn:
        file_id = conn.execute(
            sa.text("INSERT INTO source_files (content_hash, path, outcome, ingested_at) "
                    "VALUES ('h', 'f.json', 'ingested', now()) RETURNING id")
        ).scalar_one()
        stager = MessageStager(conn, chunk_rows=2, file_id=file_id, direct=True)
        for raw_message in rows:
            stager.add(build_row(raw_message, file_id, "parity"))
        stager.merge()
        assert stager.inserted_directly == 3 and stager.staged == 3
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT key, raw_prompt FROM messages")).all())
        verdict_keys = conn.execute(sa.text("SELECT count(*) FROM message_verdicts")).scalar()
    assert stored == {"k1": "second version", "k2": "a fox, edited", "k3": "an owl"}
    assert verdict_keys == 3


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_deadlock_of_the_direct_copy_with_another_transaction_makes_the_file_retry_with_the_upsert(
    pg_url, tmp_path, driver
):
    """The file's COPY waits for a key another transaction holds, which then waits for one the file holds:
    PostgreSQL aborts the file's transaction (it waited first), and the file is stored with the upsert."""

    from promptmill.derive import build_row
    from promptmill.exports import discover, read_export
    from promptmill.store.bulk import MessageStager
    from promptmill.store.db import connect

    engine = connect(pg_url.replace("postgresql://", f"postgresql+{driver}://", 1))
    msgs = [slash("ann", f"a windmill number {i}", i * 90, seq=i) for i in range(6)]
    write_json_export(tmp_path / "a" / CHANNEL, "101", msgs)
    write_json_export(tmp_path / "b" / "Stable Diffusion - Bots - dreambot-1 [101] [part 2].json", "101", msgs[5:6])
    write_json_export(tmp_path / "c" / "Stable Diffusion - Bots - dreambot-1 [101] [part 3].json", "101", msgs[0:1])
    (source_a,) = discover([tmp_path / "a"])

    def rows_of(folder):
        (source,) = discover([folder])
        _, rows = read_export(source)
        return [build_row(message, 0, "parity") for message in rows]

    outcome = {}
    with engine.connect() as blocker:
        with blocker.begin():
            stager = MessageStager(blocker)  # holds the file's last message, uncommitted
            for row in rows_of(tmp_path / "b"):
                stager.add(row)
            stager.merge()
            worker = _ingest_until_it_waits(engine, source_a, outcome)
            # now wait for the file's first message: a deadlock, which aborts the file's transaction
            for row in rows_of(tmp_path / "c"):
                stager.add(row)
            stager.merge()
        worker.join(30)
    assert outcome["result"].outcome == "ingested"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar() == 6
        assert conn.execute(sa.text("SELECT count(*) FROM message_verdicts")).scalar() == 6


def test_a_channel_row_is_completed_by_later_exports_and_never_erased(engine, tmp_path):
    """A CSV export names no guild; a JSON export of the same channel does: the row keeps what any file told."""
    msgs = [slash("ann", f"a lighthouse number {i}", i * 90, seq=i) for i in range(3)]
    write_csv_export(tmp_path / "a" / "Stable Diffusion - Bots - dreambot-1 [101].csv", msgs[:1])
    write_json_export(tmp_path / "b" / CHANNEL, "101", msgs[1:2], channel_name="dreambot-1")
    write_csv_export(tmp_path / "c" / "Stable Diffusion - Bots - dreambot-1 [101] [part 3].csv", msgs[2:])
    settings = Settings(ingest_workers=1)
    rows = []
    for folder in ("a", "b", "c"):
        ingest_paths(engine, [tmp_path / folder], settings)
        with engine.connect() as conn:
            rows.append(tuple(conn.execute(sa.text("SELECT channel_id, name, guild_id, guild_name FROM channels")).one()))
    assert rows[0][0] == "101" and rows[0][2] is None
    assert rows[1] == ("101", "dreambot-1", "1002292111942635562", "Stable Diffusion")
    assert rows[2] == rows[1]


def test_names_that_are_not_utf8_are_ingested_stored_escaped_and_skipped_unchanged(engine, tmp_path, monkeypatch):
    """A file (or folder, or zip member) named in another locale's bytes is ingested like any other, its name
    stored with the bytes escaped; a re-run skips it by path, size and mtime, stat'ed by its real bytes."""
    from promptmill.exports.sources import Source

    landing = tmp_path / "in"
    write_json_export(landing / CHANNEL, "101", [slash("ann", "a red fox", 0, seq=1)])
    data = write_json_export(tmp_path / "x.json", "102", [slash("bob", "a blue owl", 0, seq=2)]).read_bytes()
    root = os.fsencode(landing)
    with open(root + b"/caf\xe9 [102].json", "wb") as handle:
        handle.write(data)
    os.mkdir(root + b"/d\xfcr!")  # (a "!" is not the archive member separator either)
    write_csv_export(Path(os.fsdecode(root + b"/d\xfcr!/na\xefve [103].csv")), [slash("cy", "a green frog", 0, seq=3)])
    write_zip_raw_names(landing / "dump.zip", {b"\xe0 la carte [104].json": data.replace(b'"102"', b'"104"')})
    report = ingest_paths(engine, [landing], SETTINGS)
    assert (report.files_ingested, report.files_quarantined, report.messages) == (4, [], 4)
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT path, file_mtime_ns FROM source_files")).all())
    expected = {f"{landing}/{CHANNEL}": landing / CHANNEL,
                f"{landing}/caf\\xe9 [102].json": root + b"/caf\xe9 [102].json",
                f"{landing}/d\\xfcr!/na\\xefve [103].csv": root + b"/d\xfcr!/na\xefve [103].csv",
                f"{landing}/dump.zip!\\xe0 la carte [104].json": landing / "dump.zip"}
    assert stored == {path: os.stat(real).st_mtime_ns for path, real in expected.items()}

    def unread(source):
        raise AssertionError(f"{source.display_path} read again")

    monkeypatch.setattr(Source, "content_hash", unread)
    again = ingest_paths(engine, [landing], SETTINGS)
    assert (again.files_seen, again.files_skipped, again.files_quarantined) == (4, 4, [])


def _process_state(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of a process, from /proc; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def _children(pid: int) -> dict[int, int]:
    """{child pid: its start time} of a process (scanning /proc: works without CONFIG_PROC_CHILDREN)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (state := _process_state(int(entry))) is not None and state[0] == pid:
            found[int(entry)] = state[2]
    return found


def test_kill_9_of_the_ingest_kills_its_workers_and_a_rerun_completes_the_store(pg_url, tmp_path):
    """Issue #15: the forked workers of a killed `promptmill ingest` went on committing files under PID 1, then
    blocked forever holding their connections. They must die with their parent, leaving every file stored whole
    or not at all."""
    import signal
    import subprocess
    import sys
    import time

    from tests.synth import SynthConfig, write_exports

    cfg = SynthConfig(messages=150_000, seed=5, channels=4, partition_size=500, formats=("csv",))
    files = write_exports(tmp_path / "landing", cfg)
    env = dict(os.environ, PROMPTMILL_INGEST_WORKERS="3")
    command = [sys.executable, "-m", "promptmill.cli", "ingest", str(tmp_path / "landing"), "--json", "--db", pg_url]
    probe = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    parent = subprocess.Popen([*command, "--no-dedupe"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    workers: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while len(workers) < 3 or not stored:  # the workers exist and have committed a file
            assert parent.poll() is None, f"the ingest ended before it was killed: {parent.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, f"no 3 workers storing files after 60 s: {workers}"
            workers.update(_children(parent.pid))
            try:
                with probe.connect() as conn:
                    stored = conn.execute(sa.text("SELECT count(*) FROM source_files")).scalar()
            except sa.exc.ProgrammingError:  # not migrated yet
                pass
            time.sleep(0.05)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 5
        alive = workers
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            # (a zombie is dead: an init that does not reap, as in some containers, leaves it listed)
            alive = {pid: started for pid, started in workers.items()
                     if (state := _process_state(pid)) is not None and state[2] == started and state[1] != "Z"}
        assert not alive, f"workers outlived their killed parent: {sorted(alive)}"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        for pid, started in workers.items():
            if (state := _process_state(pid)) is not None and state[2] == started:
                os.kill(pid, signal.SIGKILL)
    with probe.connect() as conn:
        stored_before = conn.execute(sa.text("SELECT count(*) FROM source_files")).scalar()
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    report = json.loads(rerun.stdout)
    assert report["files_quarantined"] == [] and stored_before < len(files)
    assert (report["files_seen"], report["files_ingested"]) == (len(files), len(files) - stored_before)
    with probe.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*), sum(message_count) FROM source_files WHERE outcome = 'ingested'")).one() == (
            len(files), cfg.messages)
        assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar() == cfg.messages
        assert conn.execute(sa.text("SELECT count(*) FROM message_verdicts WHERE status = 'pending'")).scalar() == 0
    probe.dispose()


def _report_death_arrangements(parent_pid: int, parent_main_thread: int, results) -> None:
    """In a forked child: arrange to die with the parent, then report how (parent-death signal, polling thread)."""
    import ctypes
    import threading

    from promptmill.ingest import die_with_parent

    die_with_parent(parent_pid, parent_main_thread)
    signal_number = ctypes.c_int(-1)
    ctypes.CDLL(None).prctl(2, ctypes.byref(signal_number), 0, 0, 0)  # PR_GET_PDEATHSIG
    results.put((signal_number.value, [t.name for t in threading.enumerate() if t.name == "watch-parent"]))


@pytest.mark.parametrize("forked_from", ["main thread", "other thread", "dead parent"])
def test_a_worker_dies_with_its_parent_by_signal_or_by_polling(forked_from):
    """The parent-death signal fires when the forking *thread* ends: only a fork from the main thread may use it;
    a fork from another thread polls the parent pid; a parent already gone (the race) ends the worker at once."""
    import multiprocessing
    import signal
    import threading

    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    parent_pid = os.getpid() + (1 if forked_from == "dead parent" else 0)
    child = context.Process(target=_report_death_arrangements,
                            args=(parent_pid, threading.main_thread().ident, results))
    starter = threading.Thread(target=child.start)
    if forked_from == "other thread":
        starter.start()
        starter.join()
    else:
        child.start()
    child.join(30)
    assert child.exitcode is not None, "the child never ended"
    if forked_from == "dead parent":
        assert child.exitcode == -signal.SIGKILL and results.empty()
        return
    assert child.exitcode == 0
    expected = (signal.SIGKILL, []) if forked_from == "main thread" else (0, ["watch-parent"])
    assert results.get() == expected


def test_a_channel_id_that_differs_from_the_file_name_is_a_recorded_warning(engine, tmp_path):
    landing = tmp_path / "landing"
    msgs = [slash("alice", "a lighthouse at dusk", minutes=0), slash("bob", "a fox in snow", minutes=1)]
    write_json_export(landing / "Stable Diffusion - Bots - dreambot-1 [777].json", "555", msgs)
    write_json_export(landing / "Stable Diffusion - Bots - dreambot-2 [888].json", "888",
                      [slash("carol", "a castle in fog", minutes=2)])
    report = ingest_paths(engine, [landing], Settings())
    mismatched = str(landing / "Stable Diffusion - Bots - dreambot-1 [777].json")
    expected = "the file name says channel 777 but the export's header says 555: stored under 555"
    assert report.files_ingested == 2 and report.as_dict()["warnings"] == [{"path": mismatched, "warning": expected}]
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT channel_id, warnings FROM source_files")).all())
        stored_channels = {r[0] for r in conn.execute(sa.text("SELECT DISTINCT channel_id FROM messages"))}
    assert rows == {"555": expected, "888": None} and stored_channels == {"555", "888"}


def test_a_run_leaves_no_archive_open(engine, tmp_path):
    """Members are read through an archive kept open between them (issue #15: re-opening it for each member made
    a many-member zip quadratic); the run closes it at its end."""
    inner = write_json_export(tmp_path / "tmp" / CHANNEL, "101", [slash("ann", "a red fox", 0, seq=1)])
    (tmp_path / "in").mkdir()
    with zipfile.ZipFile(tmp_path / "in" / "dump.zip", "w") as zf:
        zf.write(inner, "a/" + inner.name)
        zf.write(inner, "b/" + inner.name.replace("[101]", "[101] [part 2]"))
    report = ingest_paths(engine, [tmp_path / "in"], Settings(ingest_workers=1))
    assert (report.files_ingested, report.files_skipped) == (1, 1)  # (the same content twice)
    open_files = {os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
    assert str(tmp_path / "in" / "dump.zip") not in open_files
