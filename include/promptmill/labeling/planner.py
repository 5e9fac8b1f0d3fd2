"""Split the pending prompts into at most ``max_batches`` small descriptors (id ranges, never payloads),
and label one descriptor: the two Airflow-free halves of the DAG's plan task and mapped label task."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.engine import Engine

from promptmill.labeling.client import ClientConfig
from promptmill.labeling.ledger import ensure_version, fetch_pending
from promptmill.labeling.runner import ProgressCallback, label_pending
from promptmill.labeling.settings import LabelSettings

MAX_MAPPED_BATCHES = 1024  # Airflow's [core] max_map_length


def plan_batches(engine: Engine, settings: LabelSettings, max_batches: int = MAX_MAPPED_BATCHES) -> list[dict[str, Any]]:
    """Descriptors ``{"batch_no", "of", "first_id", "last_id", "count", "version", "label"}`` covering the
    pending prompts (at most ``settings.limit`` of them), whole packs per batch, at most ``max_batches``."""
    if max_batches < 1:
        raise ValueError(f"max_batches must be at least 1, got {max_batches}")
    info = ensure_version(engine, settings)
    with engine.connect() as conn:
        ids = [row[0] for row in fetch_pending(conn, info.version, limit=settings.limit, with_text=False)]
    if not ids:
        return []
    size = max(settings.batch_prompts, math.ceil(len(ids) / max_batches))
    size = math.ceil(size / settings.pack_size) * settings.pack_size
    chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
    return [
        {
            "batch_no": n,
            "of": len(chunks),
            "first_id": int(chunk[0]),
            "last_id": int(chunk[-1]),
            "count": len(chunk),
            "version": info.version,
            "label": f"batch {n} of {len(chunks)}: {len(chunk):,} prompt{'s' if len(chunk) != 1 else ''}",
        }
        for n, chunk in enumerate(chunks, start=1)
    ]


def label_batch(
    engine: Engine,
    settings: LabelSettings,
    client_config: ClientConfig,
    descriptor: dict[str, Any],
    *,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Label the pending prompts of one descriptor; idempotent (what is labeled is skipped on a re-run).

    In batch mode this submits (or re-attaches to) the descriptor's Batch API jobs and blocks until they are
    reconciled; the DAG instead calls batch_mode.submit_or_attach / apoll / reconcile around a deferral.
    """
    scoped = settings.with_overrides(limit=int(descriptor["count"]))
    if settings.mode == "batch":
        from promptmill.labeling.batch_mode import run_batch_mode

        return run_batch_mode(engine, scoped, client_config, descriptor)
    summary = label_pending(
        engine,
        scoped,
        client_config,
        first_id=int(descriptor["first_id"]),
        last_id=int(descriptor["last_id"]),
        progress=progress,
    )
    return summary.as_dict()
