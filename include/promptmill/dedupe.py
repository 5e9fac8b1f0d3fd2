"""Dedupe: the original rules 12 (exact, raw prompt), 13 (near-duplicate attempts) and 34 (exact, cleaned prompt).

The notebook applied them to one DataFrame in file order. Here every rule is a pure function of the set of
stored messages, so the same exports in any order, in one run or many, give the same statuses:

- rule 12: within a raw-prompt group, the earliest message by (posted_at, key) is the representative
  (``raw_rep``); the others are ``duplicate``.
- rule 13: per username, walk the representatives newest first; a row is dropped (``near_duplicate``) when
  an already-kept row of the same user is less than the window newer and more similar than the threshold.
  A row's verdict depends only on rows after it in time, so a change at time t can only change rows in the
  chain of rows before t that are less than a window apart ("session"). Only those are recomputed; rows
  up to one window after the change are read as context. Work is proportional to the touched sessions.
- rule 34: within a cleaned-prompt group, one surviving message is ``kept``, the others ``duplicate``. The
  notebook kept the first row in the order its rule-13 loop left the frame, (username, date) descending, so
  the representative is the greatest (username, posted_at, key). Each group is one row of ``prompts``:
  the unit that gets labeled once.

The rules themselves are dedupe_rules.py (pure functions over groups); this module finds the groups a change
touches, reads them and writes back the verdicts and prompt rows that changed. Ingest marks new or changed
messages (``dedupe_dirty``) and queues the old values of changed ones; only the groups and user sessions they
touch are recomputed. "Whole store" (a first load, a large backfill, ``--full``) is the same driver with every
message touched; on PostgreSQL, up to ``Settings.dedupe_client_max_messages``, dedupe_whole.py computes it from one
read of the messages instead (the bulk-load speed-up).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import logging
import operator
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from promptmill import dedupe_rules
from promptmill.dedupe_rules import Candidate, walk_until_settled
from promptmill.progress import Progress
from promptmill.settings import Settings
from promptmill.similarity import similarity_function
from promptmill.store.bulk import insert_rows, iter_rows, member_of, timestamp_param, to_utc
from promptmill.store.db import RETRYABLE_SQLSTATES, sqlstate, store_lock
from promptmill.store.lookup_indexes import missing_lookup_indexes

log = logging.getLogger("promptmill.dedupe")

_PG_DEDUPE_LOCK = 7_142_600_002
# Time zones in which a timestamp needs no conversion before times are subtracted (no offset, no DST).
_UTC_ZONES = (UTC, ZoneInfo("UTC"), ZoneInfo("Etc/UTC"))

# Above this many touched points a full recompute (one streaming pass) is cheaper than windowed reads.
FULL_RECOMPUTE_POINTS = 50_000
# When this fraction of the stored messages is new or changed (a first load, a large backfill), every verdict is
# recomputed with whole-table passes instead of finding the touched groups and sessions key by key.
WHOLE_STORE_FRACTION = 0.5
# The first span of a session read on past its first window (then 4x longer each time; see _read_older).
_LOOKBACK = timedelta(hours=6)
# Touched points of one user further apart than this are read as separate windows.
_CLUSTER_GAP = timedelta(hours=6)


def _as_utc(posted_at) -> datetime:
    """A stored time as an aware UTC datetime, without a conversion for the common case that already is one."""
    if posted_at.__class__ is not datetime or posted_at.tzinfo not in _UTC_ZONES:
        return to_utc(posted_at)  # a string from SQLite, or a session time zone other than UTC
    return posted_at


def _binary_collation(dialect: str) -> str:
    """Code-point order, as Python and pandas compare strings (PostgreSQL's default collation is the locale's)."""
    return 'COLLATE "C"' if dialect == "postgresql" else ""


@dataclass
class DedupeReport:
    dirty_messages: int = 0
    raw_groups: int = 0
    users: int = 0
    near_dup_changes: int = 0
    clean_groups: int = 0
    full: bool = False
    elapsed_s: float = 0.0


@contextlib.contextmanager
def _dedupe_lock(conn: Connection):
    """One dedupe at a time per store, held around (not inside) the dedupe transaction (see store_lock)."""
    with store_lock(conn, _PG_DEDUPE_LOCK, "dedupe"):
        yield


def run_dedupe(
    engine: Engine,
    settings: Settings,
    *,
    full: bool = False,
    progress_emit: Callable[[str], None] | None = None,
    attempts: int = 5,
) -> DedupeReport:
    """Recompute the statuses of everything touched since the last dedupe (or everything with ``full``)."""
    from promptmill.store.lookup_indexes import ensure_lookup_indexes

    # The lookups of the incremental path need them; a stopped bulk load may have left them dropped. After a bulk
    # load whose verdict rows were deferred the whole store is recomputed without them: they are built after its
    # rows are written (one sorted pass each, instead of a million inserts into each).
    if not has_deferred_verdicts(engine):
        ensure_lookup_indexes(engine)
    for attempt in range(1, attempts + 1):
        try:
            options = {}
            if engine.dialect.name == "postgresql":
                # A consistent snapshot: a message re-ingested meanwhile makes the final update conflict
                # (serialization failure) instead of being marked clean unseen; we then simply retry.
                options["isolation_level"] = "REPEATABLE READ"
            with engine.connect().execution_options(**options) as conn:
                with _dedupe_lock(conn):
                    with conn.begin(), _without_cycle_collection():
                        report, stale_statistics = _dedupe(conn, settings, full=full, progress_emit=progress_emit)
        except Exception as exc:  # raised by SQLAlchemy or, from a COPY, by the driver itself
            # a unique violation: a concurrent ingest wrote the verdict row of a message whose row was deferred
            if sqlstate(exc) in (*RETRYABLE_SQLSTATES, "23505") and attempt < attempts:
                log.info("dedupe: concurrent ingest changed the snapshot, retrying (%s)", attempt)
                continue
            raise
        if report.full and engine.dialect.name == "postgresql":
            _vacuum_dirty_marks(engine)
        # (built and analysed side by side, each over its own connection)
        ensure_lookup_indexes(engine, then=[_analyze(engine, table) for table in _ANALYZED] if stale_statistics else ())
        return report
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _without_cycle_collection():
    """The cyclic garbage collector paused: dedupe creates objects by the million (rows, walk candidates) and
    forms no reference cycles, while each of the collector's passes walks every object alive (2.5 s instead of
    0.6 s to build a 1M first load's 726,000 walk candidates). Reference counting still frees everything."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


_ANALYZED = ("messages", "message_verdicts", "prompts")


def _analyze(engine: Engine, table: str) -> Callable[[], None]:
    """ANALYZE of one of the store's tables (outside any transaction, with the full sample), to run later."""

    def analyze() -> None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"ANALYZE {table}"))

    return analyze


def has_deferred_verdicts(bind: Engine | Connection) -> bool:
    """True when a bulk load stored messages without their verdict rows and no dedupe has written them yet."""
    if bind.dialect.name != "postgresql":
        return False  # bulk loads (and so deferred verdict rows) are PostgreSQL's only
    with bind.connect() if isinstance(bind, Engine) else contextlib.nullcontext(bind) as conn:
        return bool(conn.execute(sa.text("SELECT EXISTS (SELECT 1 FROM source_files WHERE verdicts_deferred)")).scalar())


def _vacuum_dirty_marks(engine: Engine) -> None:
    """Reclaim the dirty marks a whole-store dedupe deleted (as many as the messages of a first load) now.

    Until autovacuum gets to them, every dedupe's count of the marks and every increment's delete of its own
    read all the dead ones (0.15 s of a 10,000-message increment right after a 1M first load). Outside any
    transaction (VACUUM cannot run in one); a failure here loses nothing, autovacuum does it later.
    """
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM dedupe_dirty"))
    except SQLAlchemyError as exc:
        log.info("dedupe: VACUUM dedupe_dirty failed (%s); autovacuum will reclaim the marks", exc)


def _temp(
    conn: Connection,
    name: str,
    select_sql: str,
    params: dict | None = None,
    *,
    index: str | None = None,
    probed: bool = False,
) -> None:
    """A temporary table holding a query's rows for this transaction.

    ``index`` is the column the statements join it on. SQLite joins through indexes, so it always gets one there.
    PostgreSQL hash-joins these tables, and gets the index only where a plan ``probed`` it row by row (seen in
    the plans of the benchmark's increments): the other ten cost ~0.15 s of a 10,000-message increment and ~1 s of
    a 1M first load, and no plan used them.
    """
    _create_temp(conn, name, select_sql, params)
    _index_and_analyze(conn, name, index, probed)


def _create_temp(conn: Connection, name: str, select_sql: str, params: dict | None = None) -> None:
    if conn.dialect.name == "sqlite":
        conn.execute(sa.text(f"DROP TABLE IF EXISTS temp.{name}"))
        conn.execute(sa.text(f"CREATE TEMP TABLE {name} AS {select_sql}"), params or {})
    else:
        conn.execute(sa.text(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {select_sql}"), params or {})


def _index_and_analyze(conn: Connection, name: str, index: str | None, probed: bool) -> None:
    """A filled temporary table's index (see _temp) and, on PostgreSQL, its statistics."""
    if index and (probed or conn.dialect.name == "sqlite"):
        conn.execute(sa.text(f"CREATE INDEX ix_{name} ON {name} ({index})"))
    if conn.dialect.name == "postgresql":
        # Temporary tables have no statistics until analysed: without them the planner guesses badly.
        conn.execute(sa.text(f"ANALYZE {name}"))


def _temp_rows(
    conn: Connection, name: str, shape: str, rows: Iterable[tuple], *, index: str | None = None, probed: bool = False
) -> None:
    """A temporary table with the columns (names and types) of the query ``shape``, holding ``rows`` (computed in
    Python, in those columns' order, inserted a batch at a time); indexed and analysed as by _temp."""
    _create_temp(conn, name, f"SELECT * FROM ({shape}) shape WHERE 1 = 0")
    columns = list(conn.execute(sa.text(f"SELECT * FROM {name}")).keys())
    rows = iter(rows)
    while batch := list(itertools.islice(rows, 20_000)):
        insert_rows(conn, name, columns, batch)
    _index_and_analyze(conn, name, index, probed)


def _dedupe(conn: Connection, settings: Settings, *, full: bool, progress_emit) -> tuple[DedupeReport, bool]:
    """The dedupe, in the caller's transaction; and whether the store's planner statistics are now stale."""
    started = time.monotonic()
    report = DedupeReport(full=full)
    q = conn.execute
    dialect = conn.dialect.name

    max_queue_id = q(sa.text("SELECT MAX(id) FROM dedupe_queue")).scalar() or 0
    dirty = q(sa.text("SELECT COUNT(*) FROM dedupe_dirty")).scalar()
    stats_rows = -1.0
    if dialect == "postgresql":
        # JIT compilation costs more than any statement here saves. The store's working set (the narrow verdict
        # table and the indexes) is in memory on a running system, so an index lookup costs about what a
        # sequential page read does: with the default random_page_cost (4, for spinning disks) the planner
        # scanned the whole verdict table for a few thousand touched keys.
        q(sa.text("SET LOCAL jit = off"))
        q(sa.text("SET LOCAL random_page_cost = 1.1"))
        # Room for the joins of a large load to hash in one batch (a multi-batch hash join also reorders rows).
        q(sa.text("SET LOCAL work_mem = '256MB'"))
        # The temporary tables are analysed for their row counts and distinct values: a 3,000-row sample tells
        # those as well as the default 30,000 (all of a 10,000-message increment's tables: 0.45 s in all).
        q(sa.text("SET LOCAL default_statistics_target = 10"))
        stats_rows = q(sa.text("SELECT reltuples FROM pg_class WHERE oid = 'message_verdicts'::regclass")).scalar()
    # Choosing the path needs only the size of the store: the planner's estimate (kept current by the ANALYZE
    # below and by autovacuum) rather than counting a million rows on every run; an exact count when the table
    # was never analysed (-1), on SQLite, and for --full, whose report gives it.
    if stats_rows >= 0 and not full:
        stored_rows = stats_rows
    else:
        stored_rows = q(sa.text("SELECT COUNT(*) FROM message_verdicts")).scalar()

    deferred = has_deferred_verdicts(conn)
    if not full and not deferred and dirty == 0 and max_queue_id == 0:
        report.elapsed_s = time.monotonic() - started
        return report, False
    whole_store = full or deferred or dirty >= WHOLE_STORE_FRACTION * stored_rows
    if not whole_store and dialect == "postgresql":
        # The incremental path looks stored rows up through the lookup indexes. They were built before the lock
        # was taken, but a bulk load may have dropped them since; from here on none can be dropped until this
        # transaction ends (DROP INDEX needs the table exclusively). Without them, whole-table passes are far
        # cheaper than lookups that each scan the table.
        q(sa.text("LOCK TABLE message_verdicts IN ACCESS SHARE MODE"))
        if missing_lookup_indexes(conn):
            log.info("dedupe: the lookup indexes are missing (a bulk load is running): recomputing the whole store")
            whole_store = True
    if whole_store:
        # A first load, or one that touches most of the store: recomputing everything with plain whole-table
        # passes is cheaper than finding the touched groups and sessions (the same verdicts either way).
        report.full = True
        report.dirty_messages = stored_rows if full else dirty
        messages = _message_count(conn)
        if dialect == "postgresql" and messages <= settings.dedupe_client_max_messages:
            from promptmill.dedupe_whole import recompute_in_client

            recompute_in_client(conn, settings, report, progress_emit, total=messages)
            if deferred and not full:  # the messages without a verdict row count as new
                report.dirty_messages = int(max(dirty, dirty + messages - stored_rows))
        else:
            # the same driver as an increment, with every message touched: every group read once, in order
            if deferred:
                _insert_deferred_verdict_rows(conn)
            _recompute_touched(conn, settings, report, progress_emit, max_queue_id, every_message=True)
        q(sa.text("DELETE FROM dedupe_dirty"))
        if deferred:
            # only the files this snapshot saw: the messages of a bulk load committed since are not deduped yet
            q(sa.text("UPDATE source_files SET verdicts_deferred = FALSE WHERE verdicts_deferred"))
    else:
        report.dirty_messages = dirty
        _recompute_touched(conn, settings, report, progress_emit, max_queue_id)
        q(sa.text("DELETE FROM dedupe_dirty WHERE key IN (SELECT key FROM dd_msgs)"))
    q(sa.text("DELETE FROM dedupe_queue WHERE id <= :max_id"), {"max_id": max_queue_id})
    # A bulk load changed a large part of the store: the planner's statistics are refreshed right after this
    # commits (run_dedupe), rather than when autovacuum gets to it, or the next increment (minutes later) is
    # planned for the store as it was (never analysed: row counts guessed from the file size, no distribution of
    # the hashes).
    stale_statistics = dialect == "postgresql" and (stats_rows < 0 or report.dirty_messages > 0.2 * stats_rows)
    if dialect == "sqlite":
        for name in ("dd_msgs", "dd_dirty", "dd_queue", "dd_raw", "dd_rr", "dd_touched", "dd_nd",
                     "dd_clean", "dd_cleanfull", "dd_cand", "dd_groups", "dd_eff", "dd_rep", "dd_known", "dd_rows", "dd_v"):
            q(sa.text(f"DROP TABLE IF EXISTS temp.{name}"))
    report.elapsed_s = time.monotonic() - started
    log.info(
        "dedupe%s: %s dirty messages, %s raw groups, %s users, %s near-duplicate changes, %s prompt groups in %.1fs",
        " (whole store)" if report.full else "",
        f"{report.dirty_messages:,}",
        f"{report.raw_groups:,}",
        f"{report.users:,}",
        f"{report.near_dup_changes:,}",
        f"{report.clean_groups:,}",
        report.elapsed_s,
    )
    return report, stale_statistics


def _message_count(conn: Connection) -> int:
    """The number of stored messages, from the files' counts without reading the messages (at most the messages of
    every ingested file: a message in several files is stored once)."""
    return int(
        conn.execute(
            sa.text("SELECT COALESCE(SUM(message_count), 0) FROM source_files WHERE outcome = 'ingested'")
        ).scalar()
    )


def _insert_deferred_verdict_rows(conn: Connection) -> None:
    """The verdict rows a bulk load deferred, as pending rows (for the driver of increments, which updates rows)."""
    from promptmill.store.bulk import VERDICT_INPUT_COLUMNS

    columns = ", ".join(VERDICT_INPUT_COLUMNS)
    conn.execute(
        sa.text(
            f"INSERT INTO message_verdicts ({columns}) SELECT {', '.join('m.' + c for c in VERDICT_INPUT_COLUMNS)} "
            "FROM messages m WHERE NOT EXISTS (SELECT 1 FROM message_verdicts v WHERE v.key = m.key) ORDER BY m.key"
        )
    )


def _rank_kept(conn: Connection, later_in_file_newer: bool, candidates: str = "") -> None:
    """Rule 34 over the rows of dd_eff (only those in dd_cand when ``candidates`` joins it): the kept message of each
    cleaned-prompt group, as the temporary table dd_rep (key, clean_hash)."""
    rows = iter_rows(
        conn,
        "SELECT e.clean_hash, e.key, e.username, e.posted_at, e.posted_seq, e.pre_reason, e.raw_rep, e.near_dup, "
        f"e.clean_reason FROM dd_eff e {candidates} WHERE e.clean_hash IS NOT NULL "
        f"ORDER BY e.clean_hash {_binary_collation(conn.dialect.name)}",
    )

    def kept_of_groups() -> Iterator[tuple[str, str]]:
        for clean_hash, group in itertools.groupby(rows, key=operator.itemgetter(0)):
            best = None
            for _, key, user, at, seq, pre, rep, dup, reason in group:
                member = (user, _as_utc(at), seq, key)
                if dedupe_rules.eligible_for_prompt(pre, bool(rep), bool(dup), reason) and (
                    best is None or dedupe_rules.kept_before(member, best, later_in_file_newer=later_in_file_newer)
                ):
                    best = member
            if best is not None:
                yield best[3], clean_hash

    _temp_rows(conn, "dd_rep", "SELECT key, clean_hash FROM message_verdicts", kept_of_groups(), index="key")


def _store_near_dup_changes(conn: Connection, changes: list[tuple]) -> None:
    """The rule-13 results that differ from the stored ones, as the temporary table dd_nd."""
    q = conn.execute
    if conn.dialect.name == "sqlite":
        q(sa.text("DROP TABLE IF EXISTS temp.dd_nd"))
        q(sa.text("CREATE TEMP TABLE dd_nd (key TEXT, near_dup BOOLEAN, near_dup_of TEXT)"))
    else:
        q(sa.text("CREATE TEMP TABLE dd_nd (key TEXT, near_dup BOOLEAN, near_dup_of TEXT) ON COMMIT DROP"))
    insert_rows(conn, "dd_nd", ("key", "near_dup", "near_dup_of"), changes)
    if conn.dialect.name == "postgresql":
        q(sa.text("ANALYZE dd_nd"))  # hash-joined: no index (see _temp)
    else:
        q(sa.text("CREATE INDEX ix_dd_nd ON dd_nd (key)"))


def _upsert_prompt_rows(conn: Connection) -> None:
    """Prompt rows of the groups in dd_groups (whose stored rows dd_known holds): first_seen lowered where an
    earlier member turned up, and a row for each group new to the store, inserted in hash order (the unique index
    then fills front to back) and already marked with its kept message from dd_rep (so that a first load writes
    each prompt row once). The text of a new group comes from one of its message rows."""
    q = conn.execute
    q(
        sa.text(
            "UPDATE prompts SET first_seen = g.first_seen FROM dd_known k JOIN dd_groups g ON g.clean_hash = k.text_hash "
            "WHERE prompts.id = k.id AND g.first_seen < k.first_seen"
        )
    )
    # The kept message of each new group looked up by hash (ix_dd_rep_clean_hash). As a join, the planner,
    # expecting from the hash statistics hardly any new group, scanned all of dd_rep once per new group.
    select = """
        SELECT n.text, n.clean_hash, n.first_seen, n.rep_key IS NOT NULL, n.rep_key FROM (
            SELECT msg.clean_text AS text, g.clean_hash, g.first_seen,
                   (SELECT r.key FROM dd_rep r WHERE r.clean_hash = g.clean_hash) AS rep_key
            FROM dd_groups g JOIN messages msg ON msg.key = g.any_key
            WHERE NOT EXISTS (SELECT 1 FROM dd_known k WHERE k.text_hash = g.clean_hash)) n
        ORDER BY n.clean_hash
    """
    # Only dedupe writes prompt rows, one dedupe at a time, on a snapshot taken after the previous one committed
    # (_dedupe_lock): the NOT EXISTS above sees every stored prompt; ON CONFLICT is a safety net.
    q(sa.text("INSERT INTO prompts (text, text_hash, first_seen, kept, kept_message_key) " + select
              + " ON CONFLICT (text_hash) DO NOTHING"))
    # the new rows join the known ones, so that the verdicts find every touched group's prompt id there
    # (the NOT EXISTS sees dd_known as it was before this statement)
    new_groups = member_of(
        conn.dialect.name,
        "SELECT g.clean_hash FROM dd_groups g WHERE NOT EXISTS (SELECT 1 FROM dd_known k WHERE k.text_hash = g.clean_hash)",
    )
    q(
        sa.text(
            "INSERT INTO dd_known (id, text_hash, first_seen, kept, kept_message_key) "
            f"SELECT id, text_hash, first_seen, kept, kept_message_key FROM prompts WHERE text_hash {new_groups}"
        )
    )


def _write_verdicts(conn: Connection) -> None:
    """The final verdict of every message in dd_eff (dedupe_rules): one write per row, none when nothing changed.

    The prompt ids are looked up in dd_known, which holds the prompt row of every group in dd_eff. On PostgreSQL
    (dd_eff carries ``row_ctid``, read earlier in this transaction) each row is reached by its physical address
    instead of through the key index: the scattered rows of an increment cost fewer page reads. The key is still
    compared, and a row a concurrent transaction updated since makes the update fail (REPEATABLE READ), as the key
    lookup does.
    """
    by_ctid = conn.dialect.name == "postgresql"
    address = "e.row_ctid, " if by_ctid else ""
    rows = iter_rows(
        conn,
        f"SELECT e.key, {address}e.raw_rep, e.near_dup, e.near_dup_of, p.id, e.pre_reason, e.clean_reason, "
        "r.key IS NOT NULL FROM dd_eff e LEFT JOIN dd_rep r ON r.key = e.key "
        "LEFT JOIN dd_known p ON p.text_hash = e.clean_hash",
    )

    def verdicts() -> Iterator[tuple]:
        for *head, rep, dup, dup_of, prompt_id, pre, reason, kept in rows:
            dup, dup_of = dedupe_rules.near_duplicate_state(bool(rep), bool(dup), dup_of)
            status, why = dedupe_rules.verdict(pre, bool(rep), dup, reason, bool(kept))
            yield (*head, bool(rep), dup, dup_of, prompt_id, status, why)

    shape = (f"SELECT key, {'ctid AS row_ctid, ' if by_ctid else ''}raw_rep, near_dup, near_dup_of, prompt_id, "
             "status, reason FROM message_verdicts")
    _temp_rows(conn, "dd_v", shape, verdicts())
    where = "message_verdicts.ctid = v.row_ctid AND " if by_ctid else ""
    conn.execute(
        sa.text(
            f"""
            UPDATE message_verdicts SET raw_rep = v.raw_rep, near_dup = v.near_dup, near_dup_of = v.near_dup_of,
                prompt_id = v.prompt_id, status = v.status, reason = v.reason
            FROM dd_v v
            WHERE {where}message_verdicts.key = v.key
              AND (message_verdicts.status IS DISTINCT FROM v.status
                   OR message_verdicts.reason IS DISTINCT FROM v.reason
                   OR message_verdicts.raw_rep IS DISTINCT FROM v.raw_rep
                   OR message_verdicts.near_dup IS DISTINCT FROM v.near_dup
                   OR message_verdicts.near_dup_of IS DISTINCT FROM v.near_dup_of
                   OR message_verdicts.prompt_id IS DISTINCT FROM v.prompt_id)
            """
        )
    )


def _mark_kept_prompts(conn: Connection) -> None:
    """Each group's kept message (dd_rep) on its prompt row, written only where it changed."""
    conn.execute(
        sa.text(
            "UPDATE prompts SET kept = TRUE, kept_message_key = r.key FROM dd_rep r "
            "WHERE prompts.text_hash = r.clean_hash "
            "AND (NOT prompts.kept OR prompts.kept_message_key IS NULL OR prompts.kept_message_key <> r.key)"
        )
    )


def _recompute_touched(
    conn: Connection,
    settings: Settings,
    report: DedupeReport,
    progress_emit,
    max_queue_id: int,
    *,
    every_message: bool = False,
) -> None:
    """The verdicts of what changed since the last dedupe: only the touched groups and user sessions; with
    ``every_message``, of every message (--full, or a load that touches most of the store), read in the same
    steps, each a pass over the whole store, in bounded memory."""
    q = conn.execute
    ties = dedupe_rules.later_in_file_is_newer(settings.cleaning_profile)
    dialect = conn.dialect.name
    if not every_message:  # (the touched keys: the representative lookup's anti-join)
        _temp(conn, "dd_msgs", "SELECT key FROM dedupe_dirty", index="key", probed=True)
    _temp(
        conn,
        "dd_queue",
        "SELECT username, posted_at, raw_hash, clean_hash FROM dedupe_queue WHERE id <= :max_id",
        {"max_id": max_queue_id},
    )
    # Every verdict column is computed into temporary tables first and written with ONE update per row at the
    # end: updating each row once per rule was the dominant cost of a large load.
    # The verdict rows of the new and changed messages, read once for the statements below (with every message,
    # the verdict table itself).
    dirty = "message_verdicts"
    if not every_message:
        dirty = "dd_dirty"
        _temp(
            conn,
            "dd_dirty",
            "SELECT m.key, m.raw_hash, m.posted_at, m.posted_seq, m.pre_reason, m.username, m.raw_rep "
            "FROM message_verdicts m WHERE m.key " + member_of(dialect, "SELECT key FROM dd_msgs"),
        )

    # ---- rule 12: representative of each touched raw-prompt group ----------------------------------
    _temp(
        conn,
        "dd_raw",
        f"SELECT DISTINCT raw_hash FROM {dirty} WHERE raw_hash IS NOT NULL "
        "UNION SELECT raw_hash FROM dd_queue WHERE raw_hash IS NOT NULL",
        index="raw_hash",
    )
    report.raw_groups = q(sa.text("SELECT COUNT(*) FROM dd_raw")).scalar()
    # The representative can only move to a new or changed member, so a popular prompt's long history is not
    # re-read: the candidates of a group are its new and changed members and its stored representative, the one
    # unchanged member whose stored raw_rep is set (the stored verdicts are rule 12's over the unchanged members:
    # a new message is stored without raw_rep, reprocess marks every message). A group that an edit took a message
    # out of (the queue holds the edited message's old values, its representative's among them) is ranked again in
    # full. Each candidate also carries its stored raw_rep and its user and time, so that finding the touched rows
    # below needs no second read of the verdict table.
    stored_representatives = (
        ""
        if every_message
        else """
        UNION
        SELECT m.key, m.raw_hash, m.posted_at, m.posted_seq, m.raw_rep, m.username FROM (
            SELECT (SELECT s.key FROM message_verdicts s
                    WHERE s.raw_hash = r.raw_hash AND s.raw_rep AND s.pre_reason IS NULL
                      AND NOT EXISTS (SELECT 1 FROM dd_msgs d WHERE d.key = s.key)
                    LIMIT 1) AS key
            FROM dd_raw r) stored_rep
        JOIN message_verdicts m ON m.key = stored_rep.key
        UNION
        SELECT m.key, m.raw_hash, m.posted_at, m.posted_seq, m.raw_rep, m.username FROM message_verdicts m
        JOIN (SELECT DISTINCT raw_hash FROM dd_queue) f ON f.raw_hash = m.raw_hash
        WHERE m.pre_reason IS NULL AND NOT EXISTS (SELECT 1 FROM dd_msgs d WHERE d.key = m.key)
        """
    )
    candidates = iter_rows(
        conn,
        "SELECT * FROM (SELECT d.key, d.raw_hash, d.posted_at, d.posted_seq, d.raw_rep AS stored_raw_rep, d.username "
        f"FROM {dirty} d WHERE d.pre_reason IS NULL AND d.raw_hash IS NOT NULL {stored_representatives}) c "
        # grouped in binary order: equality is the same in any collation, and the locale's rules cost more
        f"ORDER BY c.raw_hash {_binary_collation(dialect)}",
    )

    def rule_12() -> Iterator[tuple]:
        """(key, raw_rep, stored raw_rep, username, posted_at) of every candidate and every touched message that
        is no generation, one raw-prompt group at a time."""
        for _, group in itertools.groupby(candidates, key=operator.itemgetter(1)):
            group = list(group)
            first = min(group, key=lambda row: dedupe_rules.raw_rank(_as_utc(row[2]), row[3], row[0]))[0]
            for key, _, at, _, stored, user in group:
                yield key, key == first, bool(stored), user, at
        yield from (
            (key, False, bool(stored), user, at)
            for key, user, at, stored in iter_rows(
                conn, f"SELECT key, username, posted_at, raw_rep FROM {dirty} WHERE raw_hash IS NULL OR pre_reason IS NOT NULL"
            )
        )

    _temp_rows(
        conn,
        "dd_rr",
        "SELECT key, raw_rep, raw_rep AS stored_raw_rep, username, posted_at FROM message_verdicts",
        rule_12(),
        index="key",
        probed=True,  # the later reads of a session join it row by row
    )
    # Beyond the new and changed messages, only those whose representative status flips are touched: a later
    # duplicate of a prompt leaves its group's earlier members as they were. (With every message: all of them.)
    touched = "message_verdicts"
    if not every_message:
        touched = "dd_touched"
        _temp(
            conn,
            "dd_touched",
            "SELECT key, username, posted_at FROM dd_dirty "
            "UNION SELECT key, username, posted_at FROM dd_rr WHERE stored_raw_rep <> raw_rep",
            index="key",
        )

    # ---- rule 13: near-duplicate attempts, per user session -----------------------------------------
    similarity = similarity_function(settings.near_dup_metric)
    changes: list[tuple] = []
    if similarity is None:
        rows = q(sa.text(f"SELECT m.key FROM message_verdicts m JOIN {touched} t ON t.key = m.key WHERE m.near_dup"))
        changes = [(key, False, None) for (key,) in rows]
    else:
        changes, report.users = _near_duplicates(conn, settings, similarity, progress_emit, every_message)
    report.near_dup_changes = len(changes)
    _store_near_dup_changes(conn, changes)

    # The stored verdict rows of the touched messages, read once: every statement below joins this small table
    # instead of looking the same keys up in the verdict table again (each lookup is a random read of a table far
    # larger than the buffer cache: ~0.25 s per statement for the 30,000 keys of a 10,000-message increment).
    # Rows that become candidates of a touched prompt group are added as they are found.
    verdict_columns = (
        "m.key, m.clean_hash, m.posted_at, m.posted_seq, m.username, m.pre_reason, m.clean_reason, m.raw_rep, "
        "m.near_dup, m.near_dup_of, m.status" + (", m.ctid AS row_ctid" if dialect == "postgresql" else "")
    )
    which = "" if every_message else " WHERE m.key " + member_of(dialect, "SELECT key FROM dd_touched UNION SELECT key FROM dd_nd")
    _temp(conn, "dd_rows", f"SELECT {verdict_columns} FROM message_verdicts m{which}", index="key")

    # ---- rule 34 and the prompts: touched cleaned-prompt groups ---------------------------------------
    # The stored prompt rows of the touched groups, read once for every use below; with every message all of them,
    # so that a group no message has any more (after reprocess) loses its kept message too.
    in_clean = ""
    if not every_message:
        _temp(
            conn,
            "dd_clean",
            "SELECT DISTINCT clean_hash FROM dd_rows WHERE clean_hash IS NOT NULL "
            "UNION SELECT clean_hash FROM dd_queue WHERE clean_hash IS NOT NULL",
            index="clean_hash",
        )
        report.clean_groups = q(sa.text("SELECT COUNT(*) FROM dd_clean")).scalar()
        in_clean = " WHERE text_hash " + member_of(dialect, "SELECT clean_hash FROM dd_clean")
    _temp(
        conn,
        "dd_known",
        f"SELECT id, text_hash, first_seen, kept, kept_message_key FROM prompts{in_clean}",
        index="text_hash",
    )
    if not every_message:  # (with every message, dd_rows holds every member of every group already)
        # Groups whose current kept message is touched, or that an edit left (the queue), are ranked again in
        # full; in the others the kept message can only change to a touched member.
        _temp(
            conn,
            "dd_cleanfull",
            "SELECT DISTINCT clean_hash FROM dd_rows WHERE status = 'kept' AND clean_hash IS NOT NULL "
            "UNION SELECT clean_hash FROM dd_queue WHERE clean_hash IS NOT NULL",
            index="clean_hash",
        )
        _temp(
            conn,
            "dd_cand",
            """
            SELECT key FROM dd_rows
            UNION SELECT kept_message_key FROM dd_known WHERE kept AND kept_message_key IS NOT NULL
            UNION SELECT m.key FROM message_verdicts m JOIN dd_cleanfull f ON f.clean_hash = m.clean_hash
            """,
            index="key",
        )
        # the candidates not read yet: the kept messages of touched groups, the members of groups ranked in full
        q(
            sa.text(
                f"INSERT INTO dd_rows SELECT {verdict_columns} FROM message_verdicts m WHERE m.key "
                + member_of(
                    dialect, "SELECT c.key FROM dd_cand c WHERE NOT EXISTS (SELECT 1 FROM dd_rows r WHERE r.key = c.key)"
                )
            )
        )
    _temp(
        conn,
        "dd_groups",
        "SELECT clean_hash, MIN(posted_at) AS first_seen, MIN(key) AS any_key "
        "FROM dd_rows WHERE clean_hash IS NOT NULL GROUP BY clean_hash",
    )
    if every_message:  # (every group that has a message)
        report.clean_groups = q(sa.text("SELECT COUNT(*) FROM dd_groups")).scalar()
    # The effective verdict columns of the touched messages: this run's results where there are any, else the
    # stored ones (what they mean for a message that is no representative, dedupe_rules decides where they are
    # read). Materialised (and analysed) once: the planner cannot estimate the effective columns inside a join,
    # and guessed one row, turning the joins below into repeated scans. On PostgreSQL in the physical order
    # of the verdict rows, so that the final update writes each page once, in order, each row carrying its place
    # (row_ctid) so that the update goes straight to it.
    order = " ORDER BY m.row_ctid" if dialect == "postgresql" else ""
    _temp(
        conn,
        "dd_eff",
        """
        SELECT m.key, m.clean_hash, m.posted_at, m.posted_seq, m.username, m.pre_reason, m.clean_reason,"""
        + (" m.row_ctid," if dialect == "postgresql" else "")
        + """
               COALESCE(rr.raw_rep, m.raw_rep) AS raw_rep,
               CASE WHEN nd.key IS NOT NULL THEN nd.near_dup ELSE m.near_dup END AS near_dup,
               CASE WHEN nd.key IS NOT NULL THEN nd.near_dup_of ELSE m.near_dup_of END AS near_dup_of
        FROM dd_rows m LEFT JOIN dd_rr rr ON rr.key = m.key LEFT JOIN dd_nd nd ON nd.key = m.key
        """
        + order,
        index="key",
    )
    _rank_kept(conn, ties, "" if every_message else "JOIN dd_cand c ON c.key = e.key")
    # The new prompt rows look their kept message up by hash: without this index the planner, expecting
    # (from the hash statistics) hardly any new group, scanned dd_rep once per new prompt (2.4 s for 6,400).
    q(sa.text("CREATE INDEX ix_dd_rep_clean_hash ON dd_rep (clean_hash)"))
    _upsert_prompt_rows(conn)

    _write_verdicts(conn)
    # dd_rep holds exactly the kept message of every touched prompt group.
    lost = member_of(
        dialect, "SELECT k.id FROM dd_known k WHERE k.kept AND NOT EXISTS (SELECT 1 FROM dd_rep r WHERE r.clean_hash = k.text_hash)"
    )
    q(sa.text(f"UPDATE prompts SET kept = FALSE, kept_message_key = NULL WHERE kept AND id {lost}"))
    _mark_kept_prompts(conn)


def _near_duplicates(conn: Connection, settings: Settings, similarity, progress_emit, every_message: bool = False):
    ties = dedupe_rules.later_in_file_is_newer(settings.cleaning_profile)
    window = timedelta(seconds=settings.near_dup_window_s)
    threshold = settings.near_dup_threshold
    q = conn.execute
    if every_message or (
        q(sa.text("SELECT COUNT(*) FROM dd_touched WHERE username IS NOT NULL")).scalar()
        + q(sa.text("SELECT COUNT(*) FROM dd_queue WHERE username IS NOT NULL")).scalar()
        > FULL_RECOMPUTE_POINTS
    ):
        return _near_duplicates_full(conn, ties, similarity, threshold, window, progress_emit)

    # Touched points per user -> clusters -> windows [first - lookback, last + window].
    points: dict[str, list[datetime]] = {}
    for username, posted_at in q(
        sa.text(
            "SELECT username, posted_at FROM dd_touched WHERE username IS NOT NULL UNION ALL "
            "SELECT username, posted_at FROM dd_queue WHERE username IS NOT NULL"
        )
    ):
        points.setdefault(username, []).append(to_utc(posted_at))
    cluster_gap = max(_CLUSTER_GAP, 3 * window)
    clusters: list[tuple[str, datetime, datetime]] = []
    for username, times in points.items():
        times.sort()
        first = last = times[0]
        for t in times[1:]:
            if t - last > cluster_gap:
                clusters.append((username, first, last))
                first = t
            last = t
        clusters.append((username, first, last))

    # Clusters of one user are processed newest first, and rows recomputed here override the stored verdicts
    # when a later read sees them as context: a session chain of a later cluster may reach an earlier one.
    computed: dict[str, tuple[bool, str | None]] = {}
    stored: dict[str, tuple[bool, str | None]] = {}

    def candidates(rows: Iterable[tuple]) -> list[Candidate]:
        """Read rows as the walk takes them: newest first, with this run's verdicts where it has any."""
        attempts = []
        for key, posted_at, seq, raw_prompt, nd, nd_of in rows:
            stored.setdefault(key, (bool(nd), nd_of))
            nd, nd_of = computed.get(key, (bool(nd), nd_of))
            attempts.append(Candidate(key, _as_utc(posted_at), raw_prompt, nd, nd_of, seq))
        return dedupe_rules.newest_first(attempts, later_in_file_newer=ties)

    def older_candidates(username: str, before: datetime) -> Iterator[Candidate]:
        for span in _read_older(conn, username, before):
            yield from candidates(span)

    clusters.sort(key=lambda c: (c[0], c[1]), reverse=True)
    # Every cluster's first window in one query: from one window before its first touched point (most walks
    # settle within it) to one window after its last. A session reaching further back is read on, older rows
    # only, as far as the walk needs them. (A 6-hour first read cost 0.4-0.6 s more in the late-history
    # increment of the benchmark than this one with its later reads.)
    prefetched = _read_windows(conn, [(u, first - window, last + window) for u, first, last in clusters])
    for index, (username, first, last) in enumerate(clusters):
        rows = candidates(prefetched.pop(index, []))
        region = [r for r in rows if r.posted_at <= last]
        context = [r for r in rows if r.posted_at > last and not r.near_dup]
        lo = first - window
        walked = walk_until_settled(
            region, context, similarity, threshold, window, first, stored,
            read_older=functools.partial(older_candidates, username, lo), region_start=lo,
        )
        for row, is_dup, dup_of in walked:
            computed[row.key] = (is_dup, dup_of)
    changes = [
        (key, value[0], value[1])
        for key, value in computed.items()
        if stored.get(key) != value
    ]
    return changes, len(points)


# The incremental rule-13 candidates: the verdict rows m of ``source`` within ``bounds`` that are effective
# representatives (this run's rule-12 results where there are any).
_CANDIDATES = (
    "SELECT {extra}m.key, m.posted_at, m.posted_seq, m.raw_prompt, m.near_dup, m.near_dup_of FROM {source} "
    "LEFT JOIN dd_rr rr ON rr.key = m.key WHERE {bounds} AND COALESCE(rr.raw_rep, m.raw_rep)"
)
_USER_ROWS = _CANDIDATES.format(
    extra="",
    source="message_verdicts m",
    bounds="m.username = :username AND m.posted_at >= :lo AND m.posted_at < :hi",
)


def _read_older(conn: Connection, username: str, before: datetime) -> Iterator[list[tuple]]:
    """A user's rule-13 candidates older than ``before``, read lazily in ever longer spans, newest span first.

    The walk back of a session consumes rows only until the change can no longer spread, so nothing is read
    for most clusters; a long session is read on span by span (6 h, 24 h, 96 h, ... before the next older row).
    """
    dialect = conn.dialect.name
    span = _LOOKBACK
    while True:
        newest = conn.execute(
            sa.text("SELECT MAX(posted_at) FROM message_verdicts WHERE username = :username AND posted_at < :before"),
            {"username": username, "before": timestamp_param(dialect, before)},
        ).scalar()
        if newest is None:
            return
        lo = to_utc(newest) - span
        yield conn.execute(
            sa.text(_USER_ROWS),
            {"username": username, "lo": timestamp_param(dialect, lo), "hi": timestamp_param(dialect, before)},
        ).all()
        before = lo
        span *= 4


def _read_windows(conn: Connection, windows: list[tuple[str, datetime, datetime]]) -> dict[int, list[tuple]]:
    """Rule-13 candidates (effective representatives) of each (username, lo, hi) window."""
    dialect = conn.dialect.name
    rows: dict[int, list[tuple]] = {}
    if not windows:
        return rows
    win = sa.Table(
        "dd_win",
        sa.MetaData(),
        sa.Column("idx", sa.Integer),
        sa.Column("username", sa.Text),
        sa.Column("lo", sa.DateTime(timezone=True) if dialect == "postgresql" else sa.Text),
        sa.Column("hi", sa.DateTime(timezone=True) if dialect == "postgresql" else sa.Text),
        prefixes=["TEMPORARY"],
    )
    conn.execute(sa.text("DROP TABLE IF EXISTS dd_win"))
    win.create(conn)
    conn.execute(
        sa.insert(win),
        [
            {"idx": i, "username": u, "lo": timestamp_param(dialect, lo), "hi": timestamp_param(dialect, hi)}
            for i, (u, lo, hi) in enumerate(windows)
        ],
    )
    if dialect == "postgresql":
        conn.execute(sa.text("ANALYZE dd_win"))
    result = conn.execute(
        sa.text(
            _CANDIDATES.format(
                extra="w.idx, ",
                source="dd_win w JOIN message_verdicts m ON m.username = w.username",
                bounds="m.posted_at >= w.lo AND m.posted_at <= w.hi",
            )
        )
    )
    for idx, *row in result.all():  # (iterating the result fetched one row per call: 0.2 s for 50,000 rows)
        rows.setdefault(idx, []).append(tuple(row))
    conn.execute(sa.text("DROP TABLE dd_win"))
    return rows


def _near_duplicates_full(
    conn: Connection,
    later_in_file_newer: bool,
    similarity,
    threshold: float,
    window: timedelta,
    progress_emit,
):
    """One streaming pass over every representative (this run's rule-12 results where there are any), user by
    user."""
    eligible = (
        "FROM message_verdicts m LEFT JOIN dd_rr rr ON rr.key = m.key "
        "WHERE COALESCE(rr.raw_rep, m.raw_rep) AND m.username IS NOT NULL"
    )
    total = conn.execute(sa.text(f"SELECT COUNT(*) {eligible}")).scalar()
    progress: Progress | None = None  # started with the first row: the server sorts everything before sending it
    rows = iter_rows(
        conn,
        f"SELECT m.username, m.key, m.posted_at, m.posted_seq, m.raw_prompt, m.near_dup, m.near_dup_of {eligible}"
        # Users in binary order: any order of users will do, and the locale's rules cost a third of the sort.
        + f" ORDER BY m.username {_binary_collation(conn.dialect.name)}",
    )
    changes: list[tuple] = []
    users = 0
    done = 0
    current_user = None
    batch: list[Candidate] = []

    def flush():
        attempts = dedupe_rules.newest_first(batch, later_in_file_newer=later_in_file_newer)
        for row, is_dup, dup_of in dedupe_rules.walk(attempts, [], similarity, threshold, window):
            if row.near_dup != is_dup or row.near_dup_of != dup_of:
                changes.append((row.key, is_dup, dup_of))

    for username, key, posted_at, seq, raw_prompt, nd, nd_of in rows:
        if username != current_user:
            if batch:
                flush()
                done += len(batch)
                progress.update(done)
            elif progress is None:
                progress = Progress(
                    "near-duplicates", total=total, unit="rows", emit=progress_emit, first_line_at_once=False
                )
            batch = []
            current_user = username
            users += 1
        batch.append(Candidate(key, _as_utc(posted_at), raw_prompt, bool(nd), nd_of, seq))
    if batch:
        flush()
        done += len(batch)
    if progress is not None:
        progress.update(done, force=total > 100_000)
    return changes, users
