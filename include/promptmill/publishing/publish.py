"""Publish the labeled dataset: rows -> sticky cluster split -> files -> a complete versioned folder -> LATEST.

Airflow-free: the DAG's publish task and ``promptmill publish`` both call :func:`publish`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from promptmill.publishing import formats
from promptmill.publishing.card import render_card
from promptmill.publishing.destination import MANIFEST, Destination, version_name, version_sequence
from promptmill.publishing.errors import PublishError
from promptmill.publishing.manifest import FileInfo, build_manifest, content_sha256, dump_manifest, file_info
from promptmill.publishing.report import quality_report
from promptmill.publishing.rows import (
    PublishRow,
    RowSet,
    current_label_version,
    format_timestamp,
    label_version_info,
    load_rows,
    store_watermark,
)
from promptmill.publishing.settings import PublishSettings
from promptmill.publishing.sides import record_sides, recorded_sides, split_rows_of
from promptmill.publishing.split import TEST, TRAIN, SplitPlan, plan_split
from promptmill.publishing.tables import publications
from promptmill.store.db import LockTimeout, lock_key, store_lock

log = logging.getLogger("promptmill.publishing")

PUBLISHED = "published"
UNCHANGED = "unchanged"
EMPTY = "empty"
CARD = "README.md"


@dataclass(frozen=True, slots=True)
class PublishResult:
    status: str  # published | unchanged (LATEST already holds this content) | empty (no publishable row)
    version: str | None
    uri: str | None  # the publication folder (credentials removed)
    destination: str  # the root (credentials removed)
    label_version: str
    content_sha256: str | None
    counts: dict[str, Any] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)  # publications deleted by retention
    warnings: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return self.status == UNCHANGED

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["unchanged"] = self.unchanged
        return data

    def as_event_extra(self) -> dict[str, Any]:
        """What an asset event may carry: JSON-able, no secrets, no usernames."""
        return {
            "status": self.status,
            "unchanged": self.unchanged,
            "version": self.version,
            "uri": self.uri,
            "label_version": self.label_version,
            "content_sha256": self.content_sha256,
            "counts": {key: self.counts[key] for key in ("train", "test", "total", "no_object") if key in self.counts},
        }


@dataclass(frozen=True, slots=True)
class _DataFile:
    name: str
    split: str | None  # None: both splits (result.csv)
    writer: Callable[[Sequence[PublishRow], BinaryIO], int]
    strings_only: bool = False  # only rows the token formats can carry


DATA_FILES: tuple[_DataFile, ...] = (
    _DataFile("train_strings.txt", TRAIN, formats.write_strings_txt, strings_only=True),
    _DataFile("test_strings.txt", TEST, formats.write_strings_txt, strings_only=True),
    _DataFile("train_strings.csv", TRAIN, formats.write_strings_csv, strings_only=True),
    _DataFile("val_strings.csv", TEST, formats.write_strings_csv, strings_only=True),
    _DataFile("result.csv", None, formats.write_result_csv),
    _DataFile("train.jsonl", TRAIN, lambda rows, out: formats.write_jsonl(rows, TRAIN, out)),
    _DataFile("test.jsonl", TEST, lambda rows, out: formats.write_jsonl(rows, TEST, out)),
    _DataFile("train.parquet", TRAIN, lambda rows, out: formats.write_parquet(rows, TRAIN, out)),
    _DataFile("test.parquet", TEST, lambda rows, out: formats.write_parquet(rows, TEST, out)),
)


def plan_for(rows: Sequence[PublishRow], settings: PublishSettings,
             recorded: dict[str, tuple[str, str]] | None = None) -> SplitPlan:
    """The split of ``rows`` given the sides recorded at the destination (split.py)."""
    return plan_split(split_rows_of(rows, recorded or {}), test_ratio=settings.test_ratio,
                      split_key=settings.split_key, one_per_cluster=settings.one_per_cluster)


def write_data_files(folder: Path, rowset: RowSet, plan: SplitPlan) -> tuple[list[FileInfo], dict]:
    """Write every data file into ``folder`` (the rows ``plan`` places); returns their checksums and the counts."""
    published = [row for row in rowset.rows if row.row_id in plan.sides]
    parts: dict[str, list[PublishRow]] = {TRAIN: [], TEST: []}
    for row in published:
        parts[plan.sides[row.row_id]].append(row)
    excluded: dict[str, int] = {}
    string_parts: dict[str, list[PublishRow]] = {TRAIN: [], TEST: []}
    for split, rows in parts.items():
        for row in rows:
            problem = formats.string_format_problem(row)
            if problem is None:
                string_parts[split].append(row)
            elif problem != "no_object":  # no_object rows never were string rows: not an exclusion
                excluded[problem] = excluded.get(problem, 0) + 1
    infos = []
    for spec in DATA_FILES:
        source = string_parts if spec.strings_only else parts
        rows = published if spec.split is None else source[spec.split]
        path = folder / spec.name
        with open(path, "wb") as out:
            count = spec.writer(rows, out)
        infos.append(file_info(path, rows=count))
    counts = {
        "train": len(parts[TRAIN]),
        "test": len(parts[TEST]),
        "total": len(published),
        "no_object": sum(1 for row in published if row.no_object),
        "strings": {TRAIN: len(string_parts[TRAIN]), TEST: len(string_parts[TEST])},
        "excluded_from_strings": dict(sorted(excluded.items())),
        "skipped": rowset.skipped,
        **plan.counts(),
    }
    return infos, counts


def publish(
    engine: Engine,
    settings: PublishSettings,
    run_id: str | None = None,
    *,
    label_settings: Any | None = None,
    storage_options: dict | None = None,
    now: dt.datetime | None = None,
) -> PublishResult:
    """Publish the current labeled dataset to ``settings.out_uri`` unless LATEST already holds the same content.

    ``label_settings`` (a LabelSettings) picks the current label version when ``settings.label_version`` is not
    set; by default the labeling settings from the environment.
    """
    label_version = settings.label_version or current_label_version(engine, label_settings)
    warnings: list[str] = []  # said by the caller (the CLI on stderr, the DAG in its log), once
    destination = Destination(settings.out_uri, storage_options=storage_options)
    try:
        with publish_lock(engine, destination, timeout_s=settings.lock_timeout_s):
            return _publish_locked(engine, destination, settings, label_version, run_id, warnings, now)
    except OSError as exc:  # read-only, full, gone: the previous publication stays current (see destination.py)
        raise PublishError(f"cannot publish to {destination.display_uri}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def publish_lock(engine: Engine, destination: Destination, *, timeout_s: float | None) -> Generator[None]:
    """Publishers to one destination take turns (see destination.py); PublishError after ``timeout_s``."""
    name = destination.lock_name
    purpose = "publish-" + format(lock_key(name) & 0xFFFF_FFFF_FFFF_FFFF, "016x")
    with engine.connect() as conn, contextlib.ExitStack() as held:
        try:
            held.enter_context(store_lock(conn, lock_key("publish " + name), purpose, timeout_s=timeout_s))
        except LockTimeout:
            raise PublishError(
                f"another publish to {destination.display_uri} has been running for over {timeout_s:g} s; "
                "try again when it has finished (PROMPTMILL_PUBLISH_LOCK_TIMEOUT_S sets the wait)"
            ) from None
        yield


def _publish_locked(engine: Engine, destination: Destination, settings: PublishSettings, label_version: str,
                    run_id: str | None, warnings: list[str], now: dt.datetime | None) -> PublishResult:
    rowset = load_rows(
        engine,
        label_version,
        include_no_object=settings.include_no_object,
        username_salt=settings.username_salt.get_secret_value(),
    )
    if not rowset.rows:
        log.warning("publish: no publishable row for label version %s; nothing written", label_version)
        return PublishResult(EMPTY, None, None, destination.display_uri, label_version, None,
                             counts={"train": 0, "test": 0, "total": 0, "no_object": 0, "skipped": rowset.skipped},
                             warnings=warnings)

    plan = plan_for(rowset.rows, settings, recorded_sides(engine, destination.display_uri))
    with destination.staging() as staged:
        infos, counts = write_data_files(staged, rowset, plan)
        content = content_sha256(infos)

        latest = destination.latest_version()
        latest_manifest = destination.read_manifest(latest) if latest else None
        if latest_manifest and latest_manifest.get("content_sha256") == content:
            log.info("publish: unchanged, %s already holds this content", destination.uri_of(latest))
            _record(engine, destination, latest, latest_manifest)
            record_sides(engine, destination.display_uri, latest, rowset.rows, plan)
            # the same files; the counts of now (rows held out or left out may differ without changing a file)
            return _result(UNCHANGED, destination, latest, {**latest_manifest, "counts": counts}, warnings=warnings)

        stored = destination.publications()
        # A crash between the complete folder and LATEST leaves a newer complete copy of this very content.
        latest_seq = version_sequence(latest) if latest else 0
        for pub in reversed(stored):
            if pub.sequence > latest_seq and pub.version.endswith(content[:12]):
                manifest = destination.read_manifest(pub.version)
                if manifest and manifest.get("content_sha256") == content:
                    log.info("publish: %s was complete but not current; pointing LATEST at it", pub.version)
                    return _finish(engine, destination, pub.version, manifest, settings, warnings, rowset, plan)

        version = version_name(max((p.sequence for p in stored), default=0) + 1, content)
        manifest = build_manifest(
            version=version,
            content=content,
            created_at=format_timestamp(now or dt.datetime.now(dt.UTC)),
            run_id=run_id,
            settings=settings.public_dict(),
            counts=counts,
            label_versions=[label_version_info(engine, label_version)],
            watermark=store_watermark(engine, label_version),
            files=infos,
            quality=quality_report(engine, label_version),
        )
        (staged / CARD).write_text(render_card(manifest), encoding="utf-8", newline="\n")
        manifest["files"][CARD] = file_info(staged / CARD).as_dict()
        (staged / MANIFEST).write_bytes(dump_manifest(manifest))
        names = [info.name for info in infos] + [CARD, MANIFEST]
        destination.commit(staged, version, names)
    log.info("publish: wrote %s (%s train, %s test)", destination.uri_of(version), counts["train"], counts["test"])
    return _finish(engine, destination, version, manifest, settings, warnings, rowset, plan)


def _finish(engine: Engine, destination: Destination, version: str, manifest: dict, settings: PublishSettings,
            warnings: list[str], rowset: RowSet, plan: SplitPlan) -> PublishResult:
    if not settings.username_salt.get_secret_value():  # only when usernames are written
        warnings = [*warnings, "PROMPTMILL_PUBLISH_USERNAME_SALT is not set: username hashes are unsalted SHA-256, "
                    "which anyone with a list of names can reverse"]
    destination.point_latest(version)
    _record(engine, destination, version, manifest)
    record_sides(engine, destination.display_uri, version, rowset.rows, plan)
    removed = destination.apply_retention(settings.retention, protect=[version])
    destination.remove_leftovers(protect=[version])
    return _result(PUBLISHED, destination, version, manifest, removed=removed, warnings=warnings)


def _result(status: str, destination: Destination, version: str, manifest: dict, *, removed: list[str] | None = None,
            warnings: list[str]) -> PublishResult:
    label_versions = manifest.get("label_versions") or [{}]
    return PublishResult(
        status=status,
        version=version,
        uri=destination.uri_of(version),
        destination=destination.display_uri,
        label_version=label_versions[0].get("version", ""),
        content_sha256=manifest.get("content_sha256"),
        counts=manifest.get("counts", {}),
        removed=removed or [],
        warnings=warnings,
    )


def _record(engine: Engine, destination: Destination, version: str, manifest: dict) -> None:
    """Keep the store's history of publications (once per destination and version)."""
    with engine.begin() as conn:
        known = conn.execute(
            sa.select(publications.c.id).where(
                publications.c.destination == destination.display_uri, publications.c.version == version
            )
        ).first()
        if known:
            return
        counts = manifest.get("counts", {})
        created = manifest.get("created_at")
        conn.execute(
            sa.insert(publications).values(
                destination=destination.display_uri,
                version=version,
                content_sha256=manifest["content_sha256"],
                label_version=(manifest.get("label_versions") or [{}])[0].get("version"),
                train_rows=counts.get("train", 0),
                test_rows=counts.get("test", 0),
                run_id=manifest.get("run_id"),
                created_at=dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
                if created
                else dt.datetime.now(dt.UTC),
                manifest=orjson.dumps(manifest).decode(),
            )
        )
