"""Task bodies shared by the DAG and the CLI: plain functions over a store URL and settings.

The DAG adapts Airflow (connections, params, run dates) to these arguments; nothing here imports Airflow,
and every function returns small JSON-able values fit for XCom (never payloads, never secrets).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from promptmill.settings import Settings

log = logging.getLogger("promptmill.pipeline")

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Mapped ingest tasks per run: enough to keep a few workers busy, far below Airflow's max_map_length (1024).
MAX_INGEST_GROUPS = 64


def _engine(settings: Settings):
    return settings.connect_store()


def _store_options(engine, settings: Settings, recompute: bool) -> Settings:
    """``settings`` with the store's cleaning and near-duplicate options (store/options.py). Params other than the
    store's fail the task (OptionsConflict), unless the run asks to ``recompute``: its ingest tasks then store with
    the store's options and its dedupe task applies the new ones to the whole store."""
    from promptmill.store.options import settle

    return settle(engine, settings, requested={} if recompute else None, dag=True)


def partition_of(path: Path, landing: Path) -> str | None:
    """The YYYY-MM-DD folder a file sits in below the landing folder, if any."""
    try:
        parts = path.relative_to(landing).parts[:-1]
    except ValueError:
        parts = path.parts[:-1]
    for part in parts:
        if _DATE_DIR.match(part):
            return part
    return None


def plan_ingest(
    settings: Settings, *, run_date: str | None = None, max_groups: int = MAX_INGEST_GROUPS, recompute: bool = False
) -> list[list[str]]:
    """Top-level export files of the landing folder that hold anything not ingested yet, in size-balanced groups.

    Date-partitioned landing folders (``<landing>/<YYYY-MM-DD>/...``): a run for a date takes every new file dated
    up to that date (a scheduled run, a backfill for its day, a run triggered from the UI, whose logical date is
    now) plus unpartitioned files, and logs the files it leaves to later runs; a run without a date takes every
    partition. Nothing is skipped forever: a file dated D is taken by the first run for D or later. A run whose
    options differ from the store's fails here, first (see _store_options).
    """
    from promptmill.exports import ExportError
    from promptmill.exports.archives import close_archives
    from promptmill.ingest import file_mtime_ns, iter_sources, known_outcome, unchanged_files
    from promptmill.store.lookup_indexes import drop_lookup_indexes, is_bulk_load

    engine = _engine(settings)
    _store_options(engine, settings, recompute)
    landing = settings.effective_landing_dir
    if not landing.exists():
        log.warning("landing folder %s does not exist: nothing to ingest", landing)
        return []
    # The same shortcut ingest takes: a file ingested under the same path, size and mtime is not hashed again.
    known_files = unchanged_files(engine)
    pending: dict[str, int] = {}
    later: dict[str, str] = {}  # top-level path -> its partition, dated after the run
    for item in iter_sources([landing], settings):
        if isinstance(item, ExportError):
            pending.setdefault(item.source.split("!", 1)[0], 0)
            continue
        top = item.disk_path  # the real name: a display path escapes a name that is not UTF-8
        date = partition_of(Path(top), landing)
        if (item.display_path, item.size, file_mtime_ns(item)) in known_files:
            continue
        if run_date and date and date > run_date:
            later[top] = date
            continue
        try:
            content_hash = item.content_hash()
        except (ExportError, OSError):
            pending.setdefault(top, 0)
            continue
        if known_outcome(engine, content_hash) is None:
            pending[top] = pending.get(top, 0) + item.size
    close_archives()
    if later:
        dates = sorted(set(later.values()))
        shown = ", ".join(dates[:5]) + (f" and {len(dates) - 5} more" if len(dates) > 5 else "")
        log.info("plan: left for a later run: %d files in partitions dated after %s (%s)", len(later), run_date, shown)
    if not pending:
        return []
    groups_n = min(len(pending), max_groups)
    groups: list[list[str]] = [[] for _ in range(groups_n)]
    sizes = [0] * groups_n
    for path, size in sorted(pending.items(), key=lambda kv: (-kv[1], kv[0])):
        i = sizes.index(min(sizes))  # largest first into the lightest group
        groups[i].append(path)
        sizes[i] += size
    log.info("plan: %s files with new content in %s groups (%s bytes)", len(pending), groups_n, sum(sizes))
    # A backfill that at least doubles the store is stored without the dedupe lookup indexes, as
    # `promptmill ingest` does: dropped here, before the mapped tasks start, and built again by the dedupe task.
    # Should it not run (a failed ingest task), they stay dropped until the next dedupe (task or command) or
    # `promptmill ingest`; ingest never needs them, only the incremental dedupe does.
    if is_bulk_load(engine, sum(sizes), settings.bulk_load_min_bytes) and drop_lookup_indexes(engine):
        log.info("plan: a bulk load; the dedupe task builds the lookup indexes again")
    return [sorted(g) for g in groups]


def ingest_group(settings: Settings, paths: list[str], *, recompute: bool = False) -> dict:
    """Ingest one group of files (a mapped task); dedupe runs once afterwards, in its own task."""
    from promptmill.ingest import ingest_paths

    engine = _engine(settings)
    # Mapped tasks are the parallelism here; a worker pool inside a (possibly daemonic) task process is not.
    settings = _store_options(engine, settings, recompute).with_overrides(ingest_workers=1)
    # mapped tasks run side by side: none may drop the lookup indexes the others are writing to
    report = ingest_paths(engine, paths, settings, run_dedupe=False, defer_indexes=False)
    return report.as_dict()


def dedupe(settings: Settings, *, recompute: bool = False) -> dict:
    """Dedupe what changed with the store's options; with ``recompute``, apply the run's options to the whole store
    instead (every message re-derived, every verdict recomputed, as `promptmill reprocess`) and record them."""
    from dataclasses import asdict

    from promptmill.dedupe import run_dedupe
    from promptmill.status import store_status
    from promptmill.store import options

    engine = _engine(settings)
    if recompute:
        from promptmill.reprocess import reprocess

        settings = options.settle(engine, settings, may_change=options.OPTIONS, dag=True)
        result = {"reprocessed": reprocess(engine, settings)}
        options.record(engine, options.StoreOptions.of(settings))
    else:
        result = {"dedupe": asdict(run_dedupe(engine, _store_options(engine, settings, False)))}
    result["status"] = store_status(engine, settings)
    return result


def plan_labeling(settings: Settings, label_settings, client_config, max_batches: int = 1024) -> list[dict]:
    """Batch descriptors for the mapped labeling task, or [] when labeling cannot or need not run."""
    from promptmill.labeling import plan_batches
    from promptmill.labeling.estimate import estimate

    engine = _engine(settings)
    if not (client_config.api_key or client_config.base_url):
        est = estimate(engine, label_settings)
        log.warning(
            "labeling skipped: no OpenAI connection (openai_default) or OPENAI_API_KEY. Labeling the %s pending "
            "prompts would cost about $%.4f with %s. %s",
            est.get("pending"),
            est.get("cost_usd", 0.0) or 0.0,
            label_settings.model,
            "Define the openai_default connection (password = API key, host = base URL) to label.",
        )
        return []
    return plan_batches(engine, label_settings, max_batches=max_batches)


# A run whose logical date is older than this is catching up (a backfill of past days, a scheduler that was off).
CATCHING_UP_AFTER = timedelta(hours=36)


def is_catching_up(logical_date: datetime | None, now: datetime | None = None) -> bool:
    """True for a run of a past day: it ingests and labels (in batch mode it submits its jobs without waiting for
    them) but leaves waiting for batches and publishing to the newest run, so that a backfill of N days costs
    one batch turnaround and publishes once instead of N times. A run without a logical date, or one for today
    or yesterday (a scheduled run, a trigger from the UI), is the newest."""
    if logical_date is None:
        return False
    now = now or datetime.now(UTC)
    return now - logical_date > CATCHING_UP_AFTER


def publish(settings: Settings, publish_settings, label_settings=None, run_id: str | None = None) -> dict:
    """Publish the labeled rows; returns the asset event extra (version, counts, uri; never secrets)."""
    from promptmill.publishing import publish as publish_rows

    result = publish_rows(_engine(settings), publish_settings, run_id=run_id, label_settings=label_settings)
    for warning in result.warnings:
        log.warning("publish: %s", warning)
    log.info("publish: %s %s -> %s %s", result.status, result.version, result.uri, result.counts)
    return result.as_event_extra()
