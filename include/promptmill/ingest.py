"""Ingest: export files -> stored messages, each with what the bot parser and the clean-up made of it.

One file is one transaction: a file that fails halfway leaves nothing behind and is recorded as
quarantined with the reason. A file whose content hash was already ingested is skipped without parsing.
Dedupe (rules 12, 13, 34) runs afterwards over what changed; see dedupe.py.
"""

from __future__ import annotations

import hashlib
import logging
import os
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
    changed: int = 0
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

    def merge(self, other: IngestReport) -> None:
        self.files_seen += other.files_seen
        self.files_ingested += other.files_ingested
        self.files_skipped += other.files_skipped
        self.files_quarantined.extend(other.files_quarantined)
        self.messages += other.messages
        self.generations += other.generations
        self.file_ids.extend(other.file_ids)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("file_ids")
        data["elapsed_s"] = round(self.elapsed_s, 3)
        return data


class _NotSelected(Exception):
    """The file's channel is not among the selected channels (rolls the file's transaction back)."""


def _now() -> datetime:
    return datetime.now(UTC)


def _known_hash(engine: Engine, content_hash: str) -> str | None:
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


def ingest_source(
    engine: Engine,
    source: Source,
    settings: Settings,
    on_message: Callable | None = None,
    known_files: set[tuple[str, int, int]] | None = None,
) -> FileOutcome:
    """Ingest one export file in one transaction. Never raises for bad input: returns a quarantined outcome."""
    started = time.monotonic()
    mtime = file_mtime_ns(source)
    if known_files is not None and (source.display_path, source.size, mtime) in known_files:
        return FileOutcome(source.display_path, "skipped", "already ingested (same path, size and time)")
    try:
        content_hash = source.content_hash()
    except ExportError as exc:
        _record_quarantine(engine, _path_key(source.display_path), source, source.display_path, exc.reason)
        return FileOutcome(source.display_path, "quarantined", str(exc))
    except OSError as exc:
        reason = f"cannot read: {exc.strerror or exc}"
        _record_quarantine(engine, _path_key(source.display_path), source, source.display_path, reason)
        return FileOutcome(source.display_path, "quarantined", f"{source.display_path}: {reason}")

    known = _known_hash(engine, content_hash)
    if known is not None:
        return FileOutcome(source.display_path, "skipped", f"already {known} (same content hash)")

    profile = settings.cleaning_profile
    messages = generations = 0
    try:
        with engine.begin() as conn:
            file_id = conn.execute(
                sa.insert(source_files)
                .values(
                    content_hash=content_hash,
                    path=source.display_path,
                    format=source.format,
                    partition_date=source.partition_date,
                    size_bytes=source.size,
                    file_mtime_ns=mtime,
                    outcome="ingested",
                    ingested_at=_now(),
                )
                .returning(source_files.c.id)
            ).scalar_one()
            header, raw_messages = read_export(source)
            if settings.channels and not (
                header.channel_id in settings.channels or (header.channel_name or "") in settings.channels
            ):
                raise _NotSelected(header.channel_id)
            stager = MessageStager(conn)
            for raw in raw_messages:
                row = build_row(raw, file_id, profile)
                stager.add(row)
                messages += 1
                if row[PRE_REASON_INDEX] is None:
                    generations += 1
                if on_message is not None and messages % 10_000 == 0:
                    on_message(10_000)
            changed = stager.merge()
            if on_message is not None:
                on_message(messages % 10_000)
            _upsert_channel(conn, header)
            conn.execute(
                sa.update(source_files)
                .where(source_files.c.id == file_id)
                .values(
                    channel_id=header.channel_id,
                    message_count=messages,
                    elapsed_s=round(time.monotonic() - started, 3),
                )
            )
    except _NotSelected as exc:
        # Not recorded: a later run that selects this channel must still pick the file up.
        return FileOutcome(source.display_path, "skipped", f"channel {exc} not selected")
    except ExportError as exc:
        _record_quarantine(engine, content_hash, source, source.display_path, exc.reason)
        log.warning("quarantined %s", exc)
        return FileOutcome(source.display_path, "quarantined", str(exc))
    except IntegrityError:
        # Another worker ingested the same content at the same time: its commit won.
        if _known_hash(engine, content_hash) is not None:
            return FileOutcome(source.display_path, "skipped", "ingested concurrently by another worker")
        raise
    return FileOutcome(source.display_path, "ingested", None, messages, generations, changed, file_id)


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
    for item in items:
        if isinstance(item, ExportError):
            _record_quarantine(engine, _path_key(item.source), None, item.source, item.reason)
            report.add(FileOutcome(item.source, "quarantined", str(item)))
            log.warning("quarantined %s", item)
            continue
        outcome = ingest_source(engine, item, settings, known_files=known_files)
        report.add(outcome)
        done_bytes += item.size
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
