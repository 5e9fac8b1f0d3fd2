"""The dedupe lookup indexes of message_verdicts, deferred during a bulk load on PostgreSQL.

Incremental dedupe finds the stored rows a new dump touches through three secondary indexes (user and time, raw
hash, clean hash). Keeping them current row by row is a large part of the server's work of a first load: the hash
keys land on random pages of indexes larger than the buffer cache. A load that at least doubles the store is
deduped by whole-table passes that use none of them, so ingest drops them for such a load and builds them again
afterwards, sorted in one pass each: less time, server CPU and WAL, the three builds included.

Only speed depends on the indexes, never a result. Whatever stops a load (an error, a kill) leaves them
missing at worst: every ingest and every dedupe first builds the ones that are missing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import logging
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from promptmill.store.schema import message_verdicts

log = logging.getLogger("promptmill.store")
# Any constant works; it only has to be the same for every promptmill process building these indexes.
_BUILD_LOCK = 7_142_600_010  # plus the index's position in LOOKUP_INDEXES: one lock per index

LOOKUP_INDEXES: tuple[sa.Index, ...] = tuple(
    sorted((index for index in message_verdicts.indexes), key=lambda index: index.name)
)


def stored_bytes(engine: Engine) -> int:
    """Total size of the export files ingested so far: the yardstick for "this load doubles the store"."""
    with engine.connect() as conn:
        return int(
            conn.execute(sa.text("SELECT COALESCE(SUM(size_bytes), 0) FROM source_files WHERE outcome = 'ingested'"))
            .scalar()
        )


def is_bulk_load(engine: Engine, incoming_bytes: int, min_bytes: int) -> bool:
    """PostgreSQL, at least ``min_bytes`` coming in, and at least as much as the store already holds."""
    return (
        engine.dialect.name == "postgresql"
        and incoming_bytes >= max(min_bytes, 1)
        and incoming_bytes >= stored_bytes(engine)
    )


def drop_lookup_indexes(engine: Engine) -> bool:
    """Drop the lookup indexes for a bulk load; False (nothing dropped) when another session holds the table."""
    names = ", ".join(index.name for index in LOOKUP_INDEXES)
    try:
        with engine.begin() as conn:
            # DROP INDEX locks the table exclusively: give up quickly rather than queue behind a long reader
            # (and make every later reader queue behind us).
            conn.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
            conn.execute(sa.text(f"DROP INDEX IF EXISTS {names}"))
    except OperationalError as exc:
        log.info("bulk load: the verdict table is busy, keeping its indexes (%s)", str(exc).splitlines()[0])
        return False
    log.info("bulk load: dropped %s until the load is stored", names)
    return True


def missing_lookup_indexes(bind: Engine | Connection) -> list[sa.Index]:
    """The lookup indexes the store lacks; ``bind`` is an engine, or a connection (inside its transaction)."""
    if bind.dialect.name != "postgresql":
        return []  # never dropped there
    with bind.connect() if isinstance(bind, Engine) else contextlib.nullcontext(bind) as conn:
        present = set(
            conn.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :table"),
                {"table": message_verdicts.name},
            ).scalars()
        )
    return [index for index in LOOKUP_INDEXES if index.name not in present]


def ensure_lookup_indexes(engine: Engine, then: Sequence[Callable[[], None]] = ()) -> list[str]:
    """Build the lookup indexes that are missing (after a bulk load, or one that was stopped); their names.

    Two at a time, each over its own connection (a build is one sort on one core), and then the jobs ``then``,
    in the same two lanes.
    """
    missing = missing_lookup_indexes(engine)
    jobs = [functools.partial(_build, engine, index) for index in missing] + list(then)
    if len(jobs) > 1:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="promptmill-index") as pool:
            for future in [pool.submit(job) for job in jobs]:
                future.result()
    elif jobs:
        jobs[0]()
    return [index.name for index in missing]


def _build(engine: Engine, index: sa.Index) -> None:
    with engine.begin() as conn:
        # Two processes building the same index at once would both pass IF NOT EXISTS (CREATE INDEX locks do not
        # conflict with each other) and the second would fail on the catalog: they take turns, index by index.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _BUILD_LOCK + LOOKUP_INDEXES.index(index)})
        # The sort of a million keys fits in memory at this size; the default (64 MB) spills to disk.
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '256MB'"))
        conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
    log.info("built index %s", index.name)
