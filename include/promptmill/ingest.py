"""Ingest: export files -> stored messages, each with what the bot parser and the clean-up made of it.

One file is one transaction: a file that fails halfway leaves nothing behind and is recorded as
quarantined with the reason. A file whose content hash was already ingested is skipped without parsing.
Worker processes each parse, derive (bot parser, clean-up) and store whole files over their own connection,
so the CPU work and the database work of different files overlap.
Dedupe (rules 12, 13, 34) runs afterwards over what changed; see dedupe.py.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import gc
import hashlib
import itertools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from promptmill.derive import PRE_REASON_INDEX, build_row
from promptmill.exports import ExportError, Source, discover, read_export
from promptmill.exports.archives import close_archives
from promptmill.exports.naming import channel_id_mismatch
from promptmill.progress import Progress
from promptmill.settings import Settings
from promptmill.store.bulk import KeyStoredConcurrently, MessageStager, member_of
from promptmill.store.db import RETRYABLE_SQLSTATES, sqlstate
from promptmill.store.lookup_indexes import drop_lookup_indexes, ensure_lookup_indexes, is_bulk_load
from promptmill.store.schema import channels, source_files

log = logging.getLogger("promptmill.ingest")


@dataclass
class FileOutcome:
    path: str
    outcome: str  # ingested | skipped | quarantined
    reason: str | None = None
    messages: int = 0
    generations: int = 0
    file_id: int | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    files_seen: int = 0
    files_ingested: int = 0
    files_skipped: int = 0
    files_quarantined: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)  # {path, warning}: ingested, but something was odd
    messages: int = 0
    generations: int = 0
    kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    file_ids: list[int] = field(default_factory=list)

    def add(self, outcome: FileOutcome) -> None:
        self.files_seen += 1
        self.warnings.extend({"path": outcome.path, "warning": warning} for warning in outcome.warnings)
        if outcome.outcome == "ingested":
            self.files_ingested += 1
            self.messages += outcome.messages
            self.generations += outcome.generations
            if outcome.file_id is not None:
                self.file_ids.append(outcome.file_id)
        elif outcome.outcome == "skipped":
            self.files_skipped += 1
        else:
            self.files_quarantined.append({"path": outcome.path, "reason": outcome.reason})

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("file_ids")
        data["elapsed_s"] = round(self.elapsed_s, 3)
        return data


def _now() -> datetime:
    return datetime.now(UTC)


def known_outcome(engine: Engine, content_hash: str) -> str | None:
    """The recorded outcome (ingested / quarantined) of a file with this content hash, if any."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(source_files.c.outcome).where(source_files.c.content_hash == content_hash)
        ).scalar_one_or_none()


def _quarantine(engine: Engine, key: str, source: Source | None, error: ExportError) -> FileOutcome:
    """Record a refused file (replacing any earlier record under the same key), log it, and report it."""
    path = source.display_path if source else error.source
    with engine.begin() as conn:
        conn.execute(sa.delete(source_files).where(source_files.c.content_hash == key))
        conn.execute(
            sa.insert(source_files).values(
                content_hash=key,
                path=path,
                format=source.format if source else None,
                partition_date=source.partition_date if source else None,
                size_bytes=source.size if source else None,
                message_count=0,
                outcome="quarantined",
                reason=error.reason,
                ingested_at=_now(),
            )
        )
    # A result, not a notice: the command's summary lists it on stdout, the DAG's in its return value; here only
    # the progress log says it (once, silenced by -q).
    log.info("quarantined %s", error)
    return FileOutcome(path, "quarantined", str(error))


def _path_key(path: str) -> str:
    """Key of a quarantine record for a path that could not even be hashed (missing, unreadable)."""
    return "path:" + hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:59]


def file_mtime_ns(source: Source) -> int | None:
    """Modification time of the file on disk holding ``source`` (the archive for a zip member).

    Stat'ed by its real name: the display path escapes a name that is not UTF-8, and may hold a "!" of its own.
    """
    try:
        return os.stat(source.disk_path).st_mtime_ns
    except OSError:
        return None


def unchanged_files(engine: Engine) -> set[tuple[str, int, int]]:
    """(path, size, mtime) of every ingested file: what a re-run can skip without reading a byte."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(source_files.c.path, source_files.c.size_bytes, source_files.c.file_mtime_ns).where(
                source_files.c.outcome == "ingested", source_files.c.file_mtime_ns.is_not(None)
            )
        )
        return {(path, size, mtime) for path, size, mtime in rows}


class _Refused(Exception):
    """Rolls the file's transaction back: its channel is not selected, or its content was ingested meanwhile."""

    def __init__(self, outcome: FileOutcome):
        super().__init__(outcome.reason)
        self.outcome = outcome


class _StoreDirectlyFailed(Exception):
    """A message key stored directly collided (or deadlocked) with a concurrent transaction's: store the file
    with the upsert."""


def ingest_source(
    engine: Engine,
    source: Source,
    profile: str,
    channels_selected: tuple[str, ...],
    defer_verdicts: bool = False,
) -> FileOutcome:
    """Hash, parse, derive and store one export file in one transaction (or record why it was refused).

    Runs in a worker process, each with its own database connection, so that files are parsed and stored in
    parallel. Rows stream from the parser into the staging table (bounded memory, whatever the file size); the
    staging table is temporary, so on SQLite the database is locked for writing only for the final merge.
    Never raises for bad input: the file is quarantined with the reason. ``defer_verdicts``: see MessageStager.
    """
    from sqlalchemy.exc import OperationalError

    try:
        content_hash = source.content_hash()
    except ExportError as exc:
        return _quarantine(engine, _path_key(source.display_path), source, exc)
    except OSError as exc:
        error = ExportError(source.display_path, f"cannot read: {exc.strerror or exc}")
        return _quarantine(engine, _path_key(source.display_path), source, error)
    direct = True
    for attempt in range(1, 4):
        try:
            return _store_file(engine, source, content_hash, profile, channels_selected, direct, defer_verdicts)
        except _StoreDirectlyFailed:
            log.info("%s: messages stored concurrently by another worker, retrying with an upsert", source.display_path)
            direct = False
            continue
        except _Refused as refused:
            return refused.outcome
        except ExportError as exc:
            return _quarantine(engine, content_hash, source, exc)
        except OperationalError as exc:
            # a deadlock or serialization failure between two workers storing overlapping files: retry the file
            retryable = sqlstate(exc) in RETRYABLE_SQLSTATES or (
                # SQLite has one writer: another worker's merge of a very large file can outlast the busy timeout
                "database is locked" in str(exc)
            )
            if retryable and attempt < 3:
                log.info("%s: concurrent ingest by another worker, retrying (%s)", source.display_path, attempt)
                continue
            raise
    raise AssertionError("unreachable")


def _store_file(
    engine: Engine,
    source: Source,
    content_hash: str,
    profile: str,
    channels_selected: tuple[str, ...],
    direct: bool = True,
    defer_verdicts: bool = False,
) -> FileOutcome:
    started = time.monotonic()
    messages = generations = 0
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # A crash before the WAL is flushed loses the whole file's transaction, source_files row included,
                # so the next run simply ingests the file again: no durability is lost that matters, and the
                # commit does not wait for a disk flush (one per file).
                conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
            # The same content stored already (under any name): skipped without parsing. Asked in the file's own
            # transaction (one connection and round trip per file fewer); a race with another worker storing the
            # same content is settled by the unique hash below.
            known = conn.execute(
                sa.select(source_files.c.outcome).where(source_files.c.content_hash == content_hash)
            ).scalar_one_or_none()
            if known is not None:
                raise _Refused(FileOutcome(source.display_path, "skipped", f"already {known} (same content hash)"))
            header, raw_messages = read_export(source)
            warnings = [w for w in (channel_id_mismatch(source.file_name, header.channel_id),) if w is not None]
            if channels_selected and not (
                header.channel_id in channels_selected or (header.channel_name or "") in channels_selected
            ):
                # Not recorded: a later run that selects this channel must still pick the file up.
                raise _Refused(
                    FileOutcome(source.display_path, "skipped", f"channel {header.channel_id} not selected")
                )
            # The file's row comes first so that its messages can point to it as they are stored; a second
            # worker storing the same content waits on its unique hash and then skips the file.
            file_id = conn.execute(
                sa.insert(source_files)
                .values(
                    content_hash=content_hash,
                    path=source.display_path,
                    format=source.format,
                    channel_id=header.channel_id,
                    partition_date=source.partition_date,
                    size_bytes=source.size,
                    file_mtime_ns=file_mtime_ns(source),
                    message_count=0,
                    outcome="ingested",
                    ingested_at=_now(),
                    verdicts_deferred=defer_verdicts,
                    warnings="\n".join(warnings) or None,
                )
                .returning(source_files.c.id)
            ).scalar_one()
            stager = MessageStager(conn, file_id=file_id, direct=direct, defer_verdicts=defer_verdicts)
            for raw in raw_messages:
                row = build_row(raw, file_id, profile)
                stager.add(row)
                messages += 1
                if row[PRE_REASON_INDEX] is None:
                    generations += 1
            stager.merge()
            _upsert_channel(conn, header)
            conn.execute(
                sa.update(source_files)
                .where(source_files.c.id == file_id)
                .values(message_count=messages, elapsed_s=round(time.monotonic() - started, 3))
            )
    except KeyStoredConcurrently as exc:
        # A concurrent file stored some of the same messages after this one checked their keys.
        raise _StoreDirectlyFailed from exc
    except IntegrityError:
        # Another worker ingested the same content at the same time: its commit won.
        if known_outcome(engine, content_hash) is not None:
            return FileOutcome(source.display_path, "skipped", "ingested concurrently by another worker")
        raise
    for warning in warnings:
        log.warning("%s: %s", source.display_path, warning)
    return FileOutcome(source.display_path, "ingested", None, messages, generations, file_id, warnings)


def _upsert_channel(conn, header) -> None:
    """The channel's row, inserted or completed in one statement: a name the header lacks never erases one stored."""
    from sqlalchemy.dialects import postgresql, sqlite

    values = {"name": header.channel_name, "guild_id": header.guild_id, "guild_name": header.guild_name}
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(channels)
    statement = insert.values(channel_id=header.channel_id, **values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[channels.c.channel_id],
            set_={name: sa.func.coalesce(statement.excluded[name], channels.c[name]) for name in values},
            where=sa.or_(*(statement.excluded[name].is_not(None) for name in values)),
        )
    )


def iter_sources(paths: Iterable[str | os.PathLike], settings: Settings) -> Iterator[Source | ExportError]:
    return discover(
        [Path(p) for p in paths],
        max_member_bytes=settings.zip_max_member_bytes,
        max_ratio=settings.zip_max_ratio,
    )


def ingest_paths(
    engine: Engine,
    paths: Iterable[str | os.PathLike],
    settings: Settings,
    *,
    run_dedupe: bool = True,
    progress_emit: Callable[[str], None] | None = None,
    defer_indexes: bool = True,
) -> IngestReport:
    """Ingest every export under ``paths`` (files or folders), then dedupe what changed.

    A bulk load (see Settings.bulk_load_min_bytes) is stored without the dedupe lookup indexes, which are built
    again before this returns; ``defer_indexes=False`` keeps them (callers that ingest concurrently, as the
    DAG's mapped tasks do, must not drop each other's indexes).
    """
    started = time.monotonic()
    report = IngestReport()
    items = list(iter_sources(paths, settings))
    total_bytes = sum(item.size for item in items if isinstance(item, Source)) or None
    progress = Progress("ingest", total=total_bytes, unit="bytes", every_s=settings.progress_every_s, emit=progress_emit)
    done_bytes = 0
    known_files = unchanged_files(engine)
    todo: list[Source] = []
    for item in items:
        if isinstance(item, ExportError):
            report.add(_quarantine(engine, _path_key(item.source), None, item))
        elif (item.display_path, item.size, file_mtime_ns(item)) in known_files:
            report.add(FileOutcome(item.display_path, "skipped", "already ingested (same path, size and time)"))
            done_bytes += item.size
        else:
            todo.append(item)
    deferred = False
    if defer_indexes:
        if is_bulk_load(engine, sum(source.size for source in todo), settings.bulk_load_min_bytes):
            deferred = drop_lookup_indexes(engine)
        else:
            ensure_lookup_indexes(engine)  # an earlier bulk load may have been stopped before building them
    try:
        # A bulk load also leaves the verdict rows of its new messages to the dedupe (see MessageStager), which
        # recomputes the whole store anyway; the lookup indexes are then built after those rows are written.
        for outcome, size in _ingest_in_workers(engine, todo, settings, defer_verdicts=deferred):
            report.add(outcome)
            done_bytes += size
            progress.update(
                done_bytes,
                extra=f"files {report.files_seen}/{len(items)} | messages {report.messages:,}",
            )
    except BaseException:
        if deferred:
            ensure_lookup_indexes(engine)
        raise
    if deferred and not run_dedupe:
        built = ensure_lookup_indexes(engine)
        progress.update(done_bytes, extra=f"built {len(built)} lookup indexes", force=True)
    if run_dedupe:
        from promptmill.dedupe import run_dedupe as dedupe

        # (builds the lookup indexes a bulk load dropped, after writing the deferred verdict rows)
        dedupe(engine, settings, progress_emit=progress_emit)
    if report.file_ids:
        _fill_outcome_counts(engine, report)
    report.elapsed_s = time.monotonic() - started
    progress.update(done_bytes, extra=f"files {report.files_seen} | messages {report.messages:,} | done", force=True)
    return report


_worker_engine: Engine | None = None
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PARENT_POLL_S = 0.5


def _set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when the thread that forked it ends; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGKILL)


def die_with_parent(parent_pid: int, parent_main_thread: int) -> None:
    """In a forked worker: make it die with the process that forked it, even by kill -9 (which runs no cleanup).

    Orphaned workers went on committing files and then blocked forever on the dead parent's pipe, holding their
    connections. Linux's parent-death signal fires when the *thread* that forked ends, so it is used only when the
    parent's main thread forked (a forked child runs on a copy of that thread: same ident), the one that lives as
    long as the process; otherwise, and where prctl is unavailable, a daemon thread polls the parent pid. A parent
    already gone when the signal is set (the race right after fork) ends the worker at once.
    """
    armed = threading.get_ident() == parent_main_thread and _set_parent_death_signal()
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="watch-parent", daemon=True).start()


def _start_worker(url: str, parent_pid: int, parent_main_thread: int) -> None:
    """In a forked worker: die with the parent, drop the parent's pooled connections (they are the parent's) and
    open its own engine."""
    from promptmill.store import db

    global _worker_engine
    die_with_parent(parent_pid, parent_main_thread)
    # A worker allocates a few objects per message and frees them a chunk later, so the cyclic collector ran every
    # 700 allocations and walked everything the worker inherited: frozen, it skips those, and runs 70x less often
    # (it still collects cycles), which shortens a large first load a little.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    for engine in list(db._engines.values()):
        engine.dispose(close=False)
    db._engines.clear()
    _worker_engine = db.connect(url, run_migrations=False)


def _ingest_in_worker(
    source: Source, profile: str, channels_selected: tuple[str, ...], defer_verdicts: bool
) -> FileOutcome:
    return ingest_source(_worker_engine, source, profile, channels_selected, defer_verdicts)


def _ingest_in_workers(
    engine: Engine, todo: list[Source], settings: Settings, *, defer_verdicts: bool = False
) -> Iterator[tuple[FileOutcome, int]]:
    """Ingest files in worker processes, each storing whole files over its own connection, as they complete.

    Parsing and storing overlap across workers: while one worker's file is merged by the database, another
    parses. At most two files per worker are queued, so memory stays bounded.
    """
    workers = min(settings.ingest_workers, len(todo))
    args = (settings.cleaning_profile, settings.channels, defer_verdicts)
    if workers <= 1:
        try:
            for source in todo:
                yield ingest_source(engine, source, *args), source.size
        finally:
            close_archives()  # kept open while their members were read (a worker's close as it exits)
        return
    url = engine.url.render_as_string(hide_password=False)
    # fork: workers start at once with everything imported, and need no `__main__` guard in the caller's script.
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_start_worker,
        initargs=(url, os.getpid(), threading.main_thread().ident),
    ) as pool:
        queue = iter(todo)
        running: dict[concurrent.futures.Future, Source] = {}
        for source in itertools.islice(queue, 2 * workers):
            running[pool.submit(_ingest_in_worker, source, *args)] = source
        while running:
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                source = running.pop(future)
                nxt = next(queue, None)
                if nxt is not None:
                    running[pool.submit(_ingest_in_worker, nxt, *args)] = nxt
                yield future.result(), source.size


def _fill_outcome_counts(engine: Engine, report: IngestReport) -> None:
    """Kept/rejected counts of the messages stored from this run's files."""
    from promptmill.store.schema import message_verdicts

    counts: Counter[str] = Counter()
    kept = 0
    by_verdict = (message_verdicts.c.status, message_verdicts.c.reason)
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        # When every stored message came from this run's files (a first load), count the verdicts alone instead of
        # joining every message row to its verdict, which is slow on a large store. One snapshot, so the test
        # and the counts see the same files even while another process ingests. (Not one statement: a false test
        # still paid for planning and a scan that the one-time filter did not skip.)
        ingested_files = conn.execute(
            sa.select(sa.func.count()).select_from(source_files).where(source_files.c.outcome == "ingested")
        ).scalar()
        whole_store = []
        if ingested_files == len(report.file_ids):
            whole_store = conn.execute(sa.select(*by_verdict, sa.func.count()).group_by(*by_verdict)).all()
        # (no rows: other files' messages are stored too, or there are no messages at all)
        # this run's keys looked up in the verdict key index (see member_of)
        this_runs_keys = member_of(conn.dialect.name, "SELECT key FROM messages WHERE source_file_id IN :ids")
        per_files = sa.text(
            f"SELECT status, reason, count(*) FROM message_verdicts WHERE key {this_runs_keys} GROUP BY status, reason"
        ).bindparams(sa.bindparam("ids", expanding=True))
        batches = [whole_store] if whole_store else (
            conn.execute(per_files, {"ids": report.file_ids[start : start + 500]})
            for start in range(0, len(report.file_ids), 500)
        )
        for rows in batches:
            for status, reason, n in rows:
                if status == "kept":
                    kept += n
                elif status == "rejected":
                    counts[reason or "unknown"] += n
    report.kept = kept
    report.rejected = dict(sorted(counts.items()))
