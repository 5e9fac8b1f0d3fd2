"""What the dataset page shows, read from the store in one pass of small aggregate queries.

Everything returned is plain JSON data (str, int, float, None, lists, dicts): the HTML page and the JSON endpoint
render the very same object. Nothing secret is read: no API keys live in the store, publication destinations are
stored without credentials (and are redacted again here, in case an older row kept some), and the store URL itself
is never part of the summary.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from promptmill.audit import HIDDEN_REASONS
from promptmill.labeling.evaluate import latest_evaluations
from promptmill.labeling.ledger import count_pending
from promptmill.labeling.tables import label_batch_jobs, label_requests, label_versions, labels
from promptmill.publishing.destination import redact_uri
from promptmill.publishing.tables import publications
from promptmill.store.schema import channels, message_verdicts, prompts, source_files

log = logging.getLogger("promptmill.dashboard")

DEFAULT_PUBLICATIONS_LIMIT = 10
DEFAULT_SPEND_DAYS = 60


def current_label_version() -> str | None:
    """The label version the environment's labeling settings produce, or None when they cannot be resolved."""
    from promptmill.labeling.contract import ContractError
    from promptmill.labeling.ledger import resolve_version
    from promptmill.labeling.settings import LabelSettings

    try:
        return resolve_version(LabelSettings.from_env()).version
    except (ContractError, ValueError, OSError) as exc:
        log.warning("dataset page: cannot resolve the current label version: %s", exc)
        return None


def collect_summary(
    engine: Engine,
    *,
    label_version: str | None = None,
    publications_limit: int = DEFAULT_PUBLICATIONS_LIMIT,
    spend_days: int = DEFAULT_SPEND_DAYS,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The whole page's data. ``label_version`` marks the version labeling currently works on (None: unknown)."""
    generated_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    with engine.connect() as conn:
        summary = {
            "generated_at": generated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "backend": conn.dialect.name,
            "messages": message_counts(conn),
            "files": file_counts(conn),
            "channels": channel_counts(conn),
            "labeling": {
                "current_version": label_version,
                "versions": label_version_progress(conn, label_version),
                "requests_by_status": request_status_counts(conn),
                "batch_jobs_by_state": batch_job_counts(conn),
                "per_day": labeling_per_day(conn, spend_days),
            },
            "publications": latest_publications(conn, publications_limit),
            "quality": latest_quality(conn),
        }
    summary["labeling"]["spend_usd_total"] = round(sum(v["spend_usd"] for v in summary["labeling"]["versions"]), 6)
    return summary


def message_counts(conn: Connection) -> dict[str, Any]:
    by_status = {row[0]: int(row[1]) for row in conn.execute(
        sa.select(message_verdicts.c.status, sa.func.count()).group_by(message_verdicts.c.status)
    )}
    rejected = {row[0] or "unknown": int(row[1]) for row in conn.execute(
        sa.select(message_verdicts.c.reason, sa.func.count())
        .where(message_verdicts.c.status == "rejected")
        .group_by(message_verdicts.c.reason)
    )}
    generations = conn.execute(
        sa.select(sa.func.count()).select_from(message_verdicts).where(message_verdicts.c.pre_reason.is_(None))
    ).scalar_one()
    unique_prompts = conn.execute(
        sa.select(sa.func.count()).select_from(prompts).where(prompts.c.kept.is_(True))
    ).scalar_one()
    return {
        "total": sum(by_status.values()),
        "by_status": dict(sorted(by_status.items())),
        "kept": by_status.get("kept", 0),
        "rejected": by_status.get("rejected", 0),
        "pending_dedupe": by_status.get("pending", 0),
        "generations": int(generations),
        "unique_prompts": int(unique_prompts),
        # largest first: the reasons that cost the most data lead the table
        "rejected_by_reason": dict(sorted(rejected.items(), key=lambda item: (-item[1], item[0]))),
    }


def file_counts(conn: Connection) -> dict[str, Any]:
    by_outcome = {row[0]: int(row[1]) for row in conn.execute(
        sa.select(source_files.c.outcome, sa.func.count()).group_by(source_files.c.outcome)
    )}
    quarantined = [
        {"path": row.path, "reason": row.reason}
        for row in conn.execute(
            sa.select(source_files.c.path, source_files.c.reason)
            .where(source_files.c.outcome == "quarantined")
            .order_by(source_files.c.ingested_at.desc(), source_files.c.id.desc())
            .limit(10)
        )
    ]
    return {
        "ingested": by_outcome.get("ingested", 0),
        "quarantined": by_outcome.get("quarantined", 0),
        "latest_quarantined": quarantined,
    }


def channel_counts(conn: Connection) -> list[dict[str, Any]]:
    """Kept / rejected / pending messages per channel, the largest channels first."""
    query = (
        sa.select(message_verdicts.c.channel_id, channels.c.name, message_verdicts.c.status, sa.func.count())
        .select_from(message_verdicts.outerjoin(channels, channels.c.channel_id == message_verdicts.c.channel_id))
        .group_by(message_verdicts.c.channel_id, channels.c.name, message_verdicts.c.status)
    )
    per_channel: dict[str, dict[str, Any]] = {}
    for channel_id, name, status, count in conn.execute(query):
        entry = per_channel.setdefault(
            channel_id, {"channel_id": channel_id, "name": name or channel_id, "kept": 0, "rejected": 0, "pending": 0}
        )
        entry[status if status in ("kept", "rejected") else "pending"] += int(count)
    rows = list(per_channel.values())
    for row in rows:
        row["total"] = row["kept"] + row["rejected"] + row["pending"]
    return sorted(rows, key=lambda row: (-row["total"], row["name"]))


def label_version_progress(conn: Connection, current: str | None) -> list[dict[str, Any]]:
    """Per label version: labels ok / no-object / failed, prompts still pending, requests and spend; newest first."""
    label_counts: dict[str, dict[str, int]] = {}
    # Labels count against the prompts kept now; those of prompts a later dedupe dropped are counted apart.
    for version, status, no_object, kept, count in conn.execute(
        sa.select(labels.c.version, labels.c.status, labels.c.no_object, prompts.c.kept, sa.func.count())
        .join(prompts, prompts.c.id == labels.c.prompt_id)
        .group_by(labels.c.version, labels.c.status, labels.c.no_object, prompts.c.kept)
    ):
        entry = label_counts.setdefault(version, {"labeled": 0, "no_object": 0, "failed": 0, "labeled_not_kept": 0})
        if not kept:
            entry["labeled_not_kept"] += int(count) if status == "ok" else 0
        elif status == "ok":
            entry["labeled"] += int(count)
            if no_object:
                entry["no_object"] += int(count)
        else:
            entry["failed"] += int(count)
    spend: dict[str, dict[str, Any]] = {
        row.version: {"requests": int(row.requests), "spend_usd": float(row.spend or 0.0), "tokens": int(row.tokens or 0)}
        for row in conn.execute(
            sa.select(
                label_requests.c.version,
                sa.func.count().label("requests"),
                sa.func.sum(label_requests.c.cost_usd).label("spend"),
                sa.func.sum(label_requests.c.prompt_tokens + label_requests.c.completion_tokens).label("tokens"),
            ).group_by(label_requests.c.version)
        )
    }
    known = {
        row.version: row
        for row in conn.execute(
            sa.select(label_versions.c.version, label_versions.c.model, label_versions.c.created_at)
        )
    }
    versions = set(known) | set(label_counts) | set(spend) | ({current} if current else set())
    kept_prompts = int(
        conn.execute(sa.select(sa.func.count()).select_from(prompts).where(prompts.c.kept.is_(True))).scalar_one()
    )
    evaluations = latest_evaluations(conn)
    versions |= set(evaluations)
    result = []
    for version in versions:
        counts = label_counts.get(version, {"labeled": 0, "no_object": 0, "failed": 0, "labeled_not_kept": 0})
        money = spend.get(version, {"requests": 0, "spend_usd": 0.0, "tokens": 0})
        info = known.get(version)
        created_at = _as_utc(info.created_at) if info is not None else None
        result.append({
            "version": version,
            "model": info.model if info is not None else None,
            "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if created_at else None,
            "current": version == current,
            "kept_prompts": kept_prompts,
            "labeled": counts["labeled"],
            "no_object": counts["no_object"],
            "failed": counts["failed"],
            "labeled_not_kept": counts["labeled_not_kept"],  # labels of prompts no longer kept
            "pending": int(count_pending(conn, version)),
            "requests": money["requests"],
            "tokens": money["tokens"],
            "spend_usd": round(money["spend_usd"], 6),
            "usd_per_1k_labels": round(1000 * money["spend_usd"] / counts["labeled"], 4) if counts["labeled"] else None,
            "evaluation": evaluations.get(version),  # promptmill evaluate-labels: the newest, or None
        })
    # the current version first, then the newest (stable sorts, applied from the weakest key)
    result.sort(key=lambda row: row["version"])
    result.sort(key=lambda row: row["created_at"] or "", reverse=True)
    result.sort(key=lambda row: not row["current"])
    return result


def request_status_counts(conn: Connection) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in conn.execute(
        sa.select(label_requests.c.status, sa.func.count())
        .group_by(label_requests.c.status)
        .order_by(label_requests.c.status)
    )}


def batch_job_counts(conn: Connection) -> dict[str, int]:
    return {row[0]: int(row[1]) for row in conn.execute(
        sa.select(label_batch_jobs.c.state, sa.func.count())
        .group_by(label_batch_jobs.c.state)
        .order_by(label_batch_jobs.c.state)
    )}


def _day_of(conn: Connection, column: sa.ColumnElement) -> sa.ColumnElement[str]:
    """The UTC calendar day of a timestamp column as 'YYYY-MM-DD' (SQLite stores UTC text without an offset)."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.substr(sa.cast(column, sa.Text), 1, 10)


def labeling_per_day(conn: Connection, days: int) -> list[dict[str, Any]]:
    """Ledger totals per UTC day and label version, for the last ``days`` days that had any request; oldest first."""
    day = _day_of(conn, label_requests.c.created_at).label("day")
    query = (
        sa.select(
            day,
            label_requests.c.version,
            sa.func.count().label("requests"),
            sa.func.sum(label_requests.c.labeled_count).label("labeled"),
            sa.func.sum(label_requests.c.prompt_tokens + label_requests.c.completion_tokens).label("tokens"),
            sa.func.sum(label_requests.c.cost_usd).label("spend"),
        )
        .group_by(day, label_requests.c.version)
        .order_by(day, label_requests.c.version)
    )
    rows = [
        {
            "day": row.day,
            "version": row.version,
            "requests": int(row.requests),
            "labeled": int(row.labeled or 0),
            "tokens": int(row.tokens or 0),
            "spend_usd": round(float(row.spend or 0.0), 6),
        }
        for row in conn.execute(query)
    ]
    kept_days = sorted({row["day"] for row in rows})[-days:] if days > 0 else []
    return [row for row in rows if row["day"] in set(kept_days)]


def latest_publications(conn: Connection, limit: int) -> list[dict[str, Any]]:
    query = (
        sa.select(
            publications.c.id,
            publications.c.destination,
            publications.c.version,
            publications.c.content_sha256,
            publications.c.label_version,
            publications.c.train_rows,
            publications.c.test_rows,
            publications.c.run_id,
            publications.c.created_at,
            publications.c.manifest,
        )
        .order_by(publications.c.created_at.desc(), publications.c.id.desc())
        .limit(limit)
    )
    result = []
    for row in conn.execute(query):
        created_at = _as_utc(row.created_at)
        result.append({
            "id": int(row.id),
            "version": row.version,
            "destination": redact_uri(row.destination),
            "label_version": row.label_version,
            "train_rows": int(row.train_rows),
            "test_rows": int(row.test_rows),
            "run_id": row.run_id,
            "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if created_at else None,
            "content_sha256": row.content_sha256,
            "files": sorted(_manifest_files(row.manifest)),
        })
    return result


def latest_quality(conn: Connection) -> dict[str, Any] | None:
    """The quality report of the newest publication (its manifest's ``quality`` and split figures); None when
    nothing is published. ``report`` is None for a publication made before reports existed."""
    row = conn.execute(
        sa.select(publications.c.version, publications.c.created_at, publications.c.manifest)
        .order_by(publications.c.created_at.desc(), publications.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    try:
        manifest = orjson.loads(row.manifest or "{}")
    except orjson.JSONDecodeError:
        manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    counts = manifest.get("counts") or {}
    clusters = counts.get("clusters") or {}
    leakage = counts.get("leakage") or {}
    created_at = _as_utc(row.created_at)
    report = manifest.get("quality")
    if isinstance(report, dict):
        rejections = {
            str(reason): {"count": int(entry.get("count", 0)),
                          # never NSFW text, even from a manifest written by another version
                          "examples": [] if reason in HIDDEN_REASONS else list(entry.get("examples") or [])}
            for reason, entry in (report.get("rejections") or {}).items()
        }
        report = {
            "rejections": dict(sorted(rejections.items(), key=lambda item: (-item[1]["count"], item[0]))),
            "near_duplicate_merges": list(report.get("near_duplicate_merges") or []),
            "labels": report.get("labels") or {},
        }
    else:
        report = None
    return {
        "version": row.version,
        "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if created_at else None,
        "split": {
            "train": int(counts.get("train", 0)),
            "test": int(counts.get("test", 0)),
            "held_out": int(counts.get("held_out", 0)),
            "one_per_cluster_removed": int(counts.get("one_per_cluster_removed", 0)),
            "clusters": {key: int(clusters.get(key, 0)) for key in ("clusters", "cross_user", "rows", "largest")},
            "leakage": {
                "test_rows_with_near_identical_train_row":
                    int(leakage.get("test_rows_with_near_identical_train_row", 0)),
                "share": float(leakage.get("share", 0.0)),
            },
        },
        "report": report,
    }


def publication_manifest(engine: Engine, publication_id: int) -> dict[str, Any] | None:
    """The stored manifest.json of one publication (None when there is no such publication)."""
    with engine.connect() as conn:
        text = conn.execute(
            sa.select(publications.c.manifest).where(publications.c.id == publication_id)
        ).scalar()
    if text is None:
        return None
    try:
        manifest = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"unreadable_manifest": True}
    return manifest if isinstance(manifest, dict) else {"manifest": manifest}


def _manifest_files(text: str | None) -> list[str]:
    try:
        files = orjson.loads(text or "{}").get("files") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return []
    return list(files) if isinstance(files, dict) else []


def _as_utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite aggregates hand back text
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)
