"""Ingest: export files -> stored messages, each with what the bot parser and the clean-up made of it.

One file is one transaction: a file that fails halfway leaves nothing behind and is recorded as
quarantined with the reason. A file whose content hash was already ingested is skipped without parsing.
The CPU work (parsing, the bot parser, the clean-up) runs in worker processes that spool the derived rows to
a temporary file; this process loads each file into the store in order.
Dedupe (rules 12, 13, 34) runs afterwards over what changed; see dedupe.py.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import itertools
import logging
import multiprocessing
import os
import pickle
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from promptmill.derive import PRE_REASON_INDEX, build_row
from promptmill.exports import ExportError, Source, discover, read_export
from promptmill.progress import Progress
from promptmill.settings import Settings
from promptmill.store.bulk import MessageStager
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


@dataclass
class IngestReport:
    files_seen: int = 0
    files_ingested: int = 0
    files_skipped: int = 0
    files_quarantined: list[dict] = field(default_factory=list)
    messages: int = 0
    generations: int = 0
    kept: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    file_ids: list[int] = field(default_factory=list)

    def add(self, outcome: FileOutcome) -> None:
        self.files_seen += 1
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


class _NotSelected(Exception):
    """The file's channel is not among the selected channels (rolls the file's transaction back)."""


def _now() -> datetime:
    return datetime.now(UTC)


def known_outcome(engine: Engine, content_hash: str) -> str | None:
    """The recorded outcome (ingested / quarantined) of a file with this content hash, if any."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(source_files.c.outcome).where(source_files.c.content_hash == content_hash)
        ).scalar_one_or_none()


def _record_quarantine(engine: Engine, content_hash: str, source: Source | None, path: str, reason: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(source_files).where(source_files.c.content_hash == content_hash))
        conn.execute(
            sa.insert(source_files).values(
                content_hash=content_hash,
                path=path,
                format=source.format if source else None,
                partition_date=source.partition_date if source else None,
                size_bytes=source.size if source else None,
                message_count=0,
                outcome="quarantined",
                reason=reason,
                ingested_at=_now(),
            )
        )


def _path_key(path: str) -> str:
    """Key of a quarantine record for a path that could not even be hashed (missing, unreadable)."""
    return "path:" + hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:59]


def file_mtime_ns(source: Source) -> int | None:
    """Modification time of the file on disk holding ``source`` (the archive for a zip member)."""
    try:
        return os.stat(source.display_path.split("!", 1)[0]).st_mtime_ns
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


@dataclass
class Prepared:
    """One export file parsed and derived by a worker, its rows spooled to a temporary file."""

    source: Source
    content_hash: str | None = None
    header: object | None = None
    spool: str | None = None
    messages: int = 0
    generations: int = 0
    error: ExportError | None = None
    not_selected: str | None = None
    elapsed_s: float = 0.0


_SPOOL_BATCH = 20_000


def prepare_source(source: Source, profile: str, channels_selected: tuple[str, ...], spool_dir: str) -> Prepared:
    """Hash, parse and derive one file (CPU work, run in a worker process): rows go to a pickle spool file.

    Never raises for bad input: the ExportError is returned for the caller to quarantine the file.
    """
    started = time.monotonic()
    prepared = Prepared(source)
    try:
        prepared.content_hash = source.content_hash()
    except ExportError as exc:
        prepared.error = exc
        return prepared
    except OSError as exc:
        prepared.error = ExportError(source.display_path, f"cannot read: {exc.strerror or exc}")
        return prepared
    fd, spool = tempfile.mkstemp(prefix="promptmill-", suffix=".spool", dir=spool_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            header, raw_messages = read_export(source)
            prepared.header = header
            if channels_selected and not (
                header.channel_id in channels_selected or (header.channel_name or "") in channels_selected
            ):
                prepared.not_selected = header.channel_id
                os.unlink(spool)
                return prepared
            batch: list[tuple] = []
            for raw in raw_messages:
                row = build_row(raw, 0, profile)
                batch.append(row)
                prepared.messages += 1
                if row[PRE_REASON_INDEX] is None:
                    prepared.generations += 1
                if len(batch) >= _SPOOL_BATCH:
                    pickle.dump(batch, out, protocol=pickle.HIGHEST_PROTOCOL)
                    batch = []
            if batch:
                pickle.dump(batch, out, protocol=pickle.HIGHEST_PROTOCOL)
        prepared.spool = spool
    except ExportError as exc:
        os.unlink(spool)
        prepared.error = exc
    except BaseException:
        os.unlink(spool)
        raise
    prepared.elapsed_s = time.monotonic() - started
    return prepared


def _spooled_rows(path: str) -> Iterator[list[tuple]]:
    with open(path, "rb") as handle:
        while True:
            try:
                yield pickle.load(handle)
            except EOFError:
                return


def commit_prepared(engine: Engine, prepared: Prepared) -> FileOutcome:
    """Store one prepared file in one transaction (or record why it was refused). Removes the spool."""
    source = prepared.source
    try:
        if prepared.error is not None:
            key = prepared.content_hash or _path_key(source.display_path)
            _record_quarantine(engine, key, source, source.display_path, prepared.error.reason)
            log.warning("quarantined %s", prepared.error)
            return FileOutcome(source.display_path, "quarantined", str(prepared.error))
        if prepared.not_selected is not None:
            # Not recorded: a later run that selects this channel must still pick the file up.
            return FileOutcome(source.display_path, "skipped", f"channel {prepared.not_selected} not selected")
        known = known_outcome(engine, prepared.content_hash)
        if known is not None:
            return FileOutcome(source.display_path, "skipped", f"already {known} (same content hash)")
        started = time.monotonic()
        header = prepared.header
        try:
            with engine.begin() as conn:
                file_id = conn.execute(
                    sa.insert(source_files)
                    .values(
                        content_hash=prepared.content_hash,
                        path=source.display_path,
                        format=source.format,
                        channel_id=header.channel_id,
                        partition_date=source.partition_date,
                        size_bytes=source.size,
                        file_mtime_ns=file_mtime_ns(source),
                        message_count=prepared.messages,
                        outcome="ingested",
                        ingested_at=_now(),
                    )
                    .returning(source_files.c.id)
                ).scalar_one()
                stager = MessageStager(conn)
                for batch in _spooled_rows(prepared.spool):
                    stager.extend(batch)
                stager.merge(file_id=file_id)
                _upsert_channel(conn, header)
                conn.execute(
                    sa.update(source_files)
                    .where(source_files.c.id == file_id)
                    .values(elapsed_s=round(prepared.elapsed_s + time.monotonic() - started, 3))
                )
        except IntegrityError:
            # Another worker ingested the same content at the same time: its commit won.
            if known_outcome(engine, prepared.content_hash) is not None:
                return FileOutcome(source.display_path, "skipped", "ingested concurrently by another worker")
            raise
        return FileOutcome(
            source.display_path, "ingested", None, prepared.messages, prepared.generations, file_id
        )
    finally:
        if prepared.spool:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(prepared.spool)


def _spool_dir(settings: Settings) -> str:
    """Where workers spool derived rows until the file is loaded: the data folder (often larger than /tmp)."""
    path = Path(settings.data_dir) / "spool"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _upsert_channel(conn, header) -> None:
    existing = conn.execute(sa.select(channels.c.channel_id).where(channels.c.channel_id == header.channel_id)).first()
    values = {"name": header.channel_name, "guild_id": header.guild_id, "guild_name": header.guild_name}
    if existing is None:
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(channels).values(channel_id=header.channel_id, **values))
            return
        except IntegrityError:
            pass
    if any(values.values()):
        conn.execute(
            sa.update(channels)
            .where(channels.c.channel_id == header.channel_id)
            .values(**{k: v for k, v in values.items() if v is not None})
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
) -> IngestReport:
    """Ingest every export under ``paths`` (files or folders), then dedupe what changed."""
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
            _record_quarantine(engine, _path_key(item.source), None, item.source, item.reason)
            report.add(FileOutcome(item.source, "quarantined", str(item)))
            log.warning("quarantined %s", item)
        elif (item.display_path, item.size, file_mtime_ns(item)) in known_files:
            report.add(FileOutcome(item.display_path, "skipped", "already ingested (same path, size and time)"))
            done_bytes += item.size
        else:
            todo.append(item)
    for outcome, size in _prepare_and_commit(engine, todo, settings):
        report.add(outcome)
        done_bytes += size
        progress.update(
            done_bytes,
            extra=f"files {report.files_seen}/{len(items)} | messages {report.messages:,}",
        )
    if run_dedupe:
        from promptmill.dedupe import run_dedupe as dedupe

        dedupe(engine, settings, progress_emit=progress_emit)
    if report.file_ids:
        _fill_outcome_counts(engine, report)
    report.elapsed_s = time.monotonic() - started
    progress.update(done_bytes, extra=f"files {report.files_seen} | messages {report.messages:,} | done", force=True)
    return report


def _forget_inherited_connections() -> None:
    """In a forked worker: drop the parent's pooled connections without closing them (they are the parent's)."""
    from promptmill.store import db

    for engine in list(db._engines.values()):
        engine.dispose(close=False)


def _prepare_and_commit(engine: Engine, todo: list[Source], settings: Settings) -> Iterator[tuple[FileOutcome, int]]:
    """Parse and derive files in worker processes (the CPU work) while this process loads them into the store.

    Files are committed one at a time, in order, each in its own transaction; at most workers + 1 files are
    prepared ahead, so memory and spool space stay bounded.
    """
    workers = min(settings.ingest_workers, len(todo))
    spool_dir = _spool_dir(settings)
    args = (settings.cleaning_profile, settings.channels, spool_dir)
    if workers <= 1:
        for source in todo:
            yield commit_prepared(engine, prepare_source(source, *args)), source.size
        return
    # fork: workers start at once with everything imported, and need no `__main__` guard in the caller's script.
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_forget_inherited_connections
    ) as pool:
        pending: deque[tuple[Source, concurrent.futures.Future]] = deque()
        queue = iter(todo)
        for source in itertools.islice(queue, workers + 1):
            pending.append((source, pool.submit(prepare_source, source, *args)))
        while pending:
            source, future = pending.popleft()
            prepared = future.result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(prepare_source, nxt, *args)))
            yield commit_prepared(engine, prepared), source.size


def _fill_outcome_counts(engine: Engine, report: IngestReport) -> None:
    """Kept/rejected counts of the messages stored from this run's files."""
    from promptmill.store.schema import messages

    counts: Counter[str] = Counter()
    kept = 0
    with engine.connect() as conn:
        for start in range(0, len(report.file_ids), 500):
            ids = report.file_ids[start : start + 500]
            rows = conn.execute(
                sa.select(messages.c.status, messages.c.reason, sa.func.count())
                .where(messages.c.source_file_id.in_(ids))
                .group_by(messages.c.status, messages.c.reason)
            )
            for status, reason, n in rows:
                if status == "kept":
                    kept += n
                elif status == "rejected":
                    counts[reason or "unknown"] += n
    report.kept = kept
    report.rejected = dict(sorted(counts.items()))
