"""Database side of labeling: label versions, the pending set, and the atomic commit of one answered request.

Every answered request is committed as one transaction: its ledger row and its labels together, so a crash
leaves either both or neither. Labels are inserted with ON CONFLICT DO NOTHING: a prompt keeps its first label.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from promptmill.bots import MAX_PROMPT_CHARS
from promptmill.labeling.contract import Instructions, label_version, load_instructions
from promptmill.labeling.holders import release_dead_claims
from promptmill.labeling.pricing import Usage
from promptmill.labeling.settings import LabelSettings
from promptmill.labeling.tables import (
    ACTIVE_JOB_STATES,
    label_attempts,
    label_batch_items,
    label_batch_jobs,
    label_claims,
    label_requests,
    label_versions,
    labels,
)
from promptmill.store.schema import prompts


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: str
    model: str
    instructions: Instructions


def resolve_version(settings: LabelSettings) -> VersionInfo:
    instructions = load_instructions(settings)
    return VersionInfo(label_version(settings.model, instructions), settings.model, instructions)


def ensure_version(engine: Engine, settings: LabelSettings) -> VersionInfo:
    info = resolve_version(settings)
    with engine.begin() as conn:
        insert_ignore(
            conn,
            label_versions,
            [
                {
                    "version": info.version,
                    "model": info.model,
                    "instructions_sha256": info.instructions.sha256,
                    "created_at": utcnow(),
                }
            ],
        )
    return info


def insert_ignore(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on either backend."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), list(rows))


def pending_condition(version: str, run_key: str | None = None) -> sa.ColumnElement[bool]:
    """Kept prompts with no label of ``version`` that no live batch job of ``version`` holds; with ``run_key``, also
    none that another run holds a live claim on (see label_claims).

    A prompt longer than bots.MAX_PROMPT_CHARS is never pending: ingest rejects such prompts (``too_long``), so
    one can only be in a store ingested by an older version until ``promptmill reprocess``; this bounds what a
    request can ever carry (pack size x the cap)."""
    labeled = sa.exists().where(labels.c.prompt_id == prompts.c.id, labels.c.version == version)
    in_batch = (
        sa.exists()
        .where(label_batch_items.c.prompt_id == prompts.c.id)
        .where(label_batch_items.c.job_id == label_batch_jobs.c.id)
        .where(label_batch_jobs.c.version == version)
        .where(label_batch_jobs.c.state.in_(ACTIVE_JOB_STATES))
    )
    not_too_long = sa.func.length(prompts.c.text) <= MAX_PROMPT_CHARS
    pending = sa.and_(prompts.c.kept.is_(True), not_too_long, ~labeled, ~in_batch)
    if run_key is None:
        return pending
    claimed_by_another_run = (
        sa.exists()
        .where(label_claims.c.prompt_id == prompts.c.id, label_claims.c.version == version)
        .where(label_claims.c.run_key != run_key, label_claims.c.expires_at > utcnow())
    )
    return sa.and_(pending, ~claimed_by_another_run)


def fetch_pending(
    conn: Connection,
    version: str,
    *,
    after_id: int | None = None,
    last_id: int | None = None,
    limit: int | None = None,
    with_text: bool = True,
    run_key: str | None = None,
) -> list[tuple]:
    """Pending prompts in id order; with ``run_key``, without those another run holds a live claim on."""
    cols = [prompts.c.id, prompts.c.text] if with_text else [prompts.c.id]
    query = sa.select(*cols).where(pending_condition(version, run_key)).order_by(prompts.c.id)
    if after_id is not None:
        query = query.where(prompts.c.id > after_id)
    if last_id is not None:
        query = query.where(prompts.c.id <= last_id)
    if limit is not None:
        query = query.limit(limit)
    return [tuple(row) for row in conn.execute(query)]


def claim_prompts(
    conn: Connection, version: str, run_key: str, prompt_ids: Iterable[int], *, lease_s: float,
    holder: str | None = None,
) -> set[int]:
    """Claim prompts for ``run_key`` before sending them; returns the ids this run may send.

    A prompt is claimed when it is still pending (no label of ``version``, in no live batch job) and no other run
    holds a live claim on it; this run's own claims are renewed. Concurrent claims of one prompt are serialised
    by its claim row (PostgreSQL: the upsert waits for the other transaction, then sees its claim; SQLite: one
    writer), so exactly one run gets it. Call it in a transaction that commits before the request is sent.
    ``holder`` (holders.ClaimHolder.token) names the process, so that the claim dies with it.
    """
    ids = sorted({int(pid) for pid in prompt_ids})
    if not ids:
        return set()
    now = utcnow()
    expires = now + dt.timedelta(seconds=lease_s)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    ts = label_claims.c.expires_at.type
    candidates = sa.select(
        prompts.c.id, sa.literal(version, sa.String), sa.literal(run_key, sa.String), sa.literal(expires, ts),
        sa.literal(holder, sa.String),
    ).where(prompts.c.id.in_(ids), pending_condition(version))
    insert = dialect.insert(label_claims).from_select(
        ["prompt_id", "version", "run_key", "expires_at", "holder"], candidates
    )
    claim = insert.on_conflict_do_update(
        index_elements=[label_claims.c.prompt_id, label_claims.c.version],
        set_={"run_key": insert.excluded.run_key, "expires_at": insert.excluded.expires_at,
              "holder": insert.excluded.holder},
        where=sa.or_(label_claims.c.run_key == run_key, label_claims.c.expires_at <= now),
    ).returning(label_claims.c.prompt_id)
    return {int(pid) for pid in conn.execute(claim).scalars()}


def release_claims(conn: Connection, version: str, prompt_ids: Iterable[int] | sa.Select) -> None:
    """Give up the claims on prompts that are pending again (a failed request, a batch job that gave them back).

    Only ever for prompts this transaction leaves pending: a claim released in the transaction that labels its
    prompt could be taken by a run whose statement started before that commit (and so still saw it pending).
    """
    if not isinstance(prompt_ids, sa.Select):
        prompt_ids = sorted({int(pid) for pid in prompt_ids})
        if not prompt_ids:
            return
    conn.execute(
        sa.delete(label_claims).where(label_claims.c.version == version, label_claims.c.prompt_id.in_(prompt_ids))
    )


def release_unlabeled_claims(conn: Connection, version: str, holder: str) -> None:
    """A run that ends gives up its claims on the prompts it did not label (those it labeled keep theirs until
    they run out: see release_claims)."""
    labeled = sa.exists().where(labels.c.prompt_id == label_claims.c.prompt_id, labels.c.version == version)
    conn.execute(
        sa.delete(label_claims).where(label_claims.c.version == version, label_claims.c.holder == holder, ~labeled)
    )


def renew_claims(conn: Connection, version: str, run_key: str, *, lease_s: float) -> None:
    """Extend the live claims of a running run by another lease."""
    now = utcnow()
    conn.execute(
        sa.update(label_claims)
        .where(label_claims.c.version == version, label_claims.c.run_key == run_key, label_claims.c.expires_at > now)
        .values(expires_at=now + dt.timedelta(seconds=lease_s))
    )


def purge_expired_claims(conn: Connection) -> int:
    """Delete the claims that ran out, and those whose holder died (holders.py): their prompts are labeled (the
    label keeps them from being sent again) or free. Safe because a claim only runs out long after the commit of
    its label, and a dead holder sends nothing more. Returns how many claims of dead holders were released."""
    now = utcnow()
    conn.execute(sa.delete(label_claims).where(label_claims.c.expires_at <= now))
    return release_dead_claims(conn, now)


def count_pending(
    conn: Connection,
    version: str,
    *,
    first_id: int | None = None,
    last_id: int | None = None,
    run_key: str | None = None,
) -> int:
    """How many prompts fetch_pending would give (with ``run_key``: those no other run holds a live claim on)."""
    query = sa.select(sa.func.count()).select_from(prompts).where(pending_condition(version, run_key))
    if first_id is not None:
        query = query.where(prompts.c.id >= first_id)
    if last_id is not None:
        query = query.where(prompts.c.id <= last_id)
    return conn.execute(query).scalar_one()


@dataclass(slots=True)
class RequestRecord:
    """One ledger row."""

    request_key: str
    mode: str
    model: str
    version: str
    item_count: int
    status: str
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    labeled_count: int = 0
    run_key: str | None = None
    service_tier: str | None = None
    provider_request_id: str | None = None
    batch_job_id: int | None = None
    latency_s: float | None = None
    retries: int = 0
    error: str | None = None

    def row(self) -> dict[str, Any]:
        data = asdict(self)
        usage = data.pop("usage")
        data.update(usage)
        data["created_at"] = utcnow()
        return data


@dataclass(frozen=True, slots=True)
class LabelOutcome:
    prompt_id: int
    description: str | None  # None for a failed item
    no_object: bool = False
    error: str | None = None


def commit_request(conn: Connection, record: RequestRecord, outcomes: Iterable[LabelOutcome]) -> int:
    """Write the ledger row and the labels of one request (caller owns the transaction); returns the row id."""
    outcomes = list(outcomes)
    record.labeled_count = sum(1 for o in outcomes if o.description is not None)
    request_id = conn.execute(sa.insert(label_requests).values(record.row())).inserted_primary_key[0]
    if outcomes:
        share_tokens = round(record.usage.total_tokens / max(record.item_count, 1))
        share_cost = record.cost_usd / max(record.item_count, 1)
        now = utcnow()
        insert_ignore(
            conn,
            labels,
            [
                {
                    "prompt_id": o.prompt_id,
                    "version": record.version,
                    "status": "ok" if o.description is not None else "failed",
                    "description": o.description,
                    "no_object": o.no_object,
                    "error": o.error,
                    "model": record.model,
                    "tokens": share_tokens,
                    "cost_usd": share_cost,
                    "request_id": request_id,
                    "labeled_at": now,
                }
                for o in outcomes
            ],
        )
    return int(request_id)


def count_attempts(conn: Connection, version: str, failures: dict[int, str]) -> dict[int, int]:
    """Count one more unusable answer against each prompt of ``failures`` (prompt id -> why), across runs and
    modes; returns each prompt's attempts so far. Caller owns the transaction."""
    if not failures:
        return {}
    ids = sorted(failures)
    insert_ignore(conn, label_attempts, [{"prompt_id": pid, "version": version, "attempts": 0} for pid in ids])
    for pid in ids:
        conn.execute(
            sa.update(label_attempts)
            .where(label_attempts.c.prompt_id == pid, label_attempts.c.version == version)
            .values(attempts=label_attempts.c.attempts + 1, last_error=failures[pid][:1000])
        )
    rows = conn.execute(
        sa.select(label_attempts.c.prompt_id, label_attempts.c.attempts)
        .where(label_attempts.c.version == version, label_attempts.c.prompt_id.in_(ids))
    ).all()
    return {int(pid): int(attempts) for pid, attempts in rows}


def forget_failures(conn: Connection, version: str, *, first_id: int | None = None, last_id: int | None = None) -> int:
    """``--retry-failed``: the failed labels of ``version`` (in the id range) are deleted and their attempts
    forgotten, so that the prompts are pending again; returns how many."""
    scope = [labels.c.version == version, labels.c.status == "failed"]
    attempts_scope = [label_attempts.c.version == version]
    if first_id is not None:
        scope.append(labels.c.prompt_id >= first_id)
        attempts_scope.append(label_attempts.c.prompt_id >= first_id)
    if last_id is not None:
        scope.append(labels.c.prompt_id <= last_id)
        attempts_scope.append(label_attempts.c.prompt_id <= last_id)
    failed = sa.select(labels.c.prompt_id).where(*scope)
    # the claims of the runs that gave up on them go too: those runs are done with these prompts
    conn.execute(sa.delete(label_claims).where(label_claims.c.version == version, label_claims.c.prompt_id.in_(failed)))
    deleted = conn.execute(sa.delete(labels).where(*scope)).rowcount or 0
    conn.execute(sa.delete(label_attempts).where(*attempts_scope))
    return int(deleted)


def request_key_exists(conn: Connection, request_key: str) -> bool:
    query = sa.select(label_requests.c.id).where(label_requests.c.request_key == request_key)
    return conn.execute(query).first() is not None


def run_spend(conn: Connection, run_key: str) -> float:
    query = sa.select(sa.func.coalesce(sa.func.sum(label_requests.c.cost_usd), 0.0)).where(
        label_requests.c.run_key == run_key
    )
    return float(conn.execute(query).scalar_one())


def measured_output_tokens_per_item(conn: Connection, model: str) -> float | None:
    """Average completion tokens per labeled item over this model's answered requests, if any."""
    query = sa.select(
        sa.func.sum(label_requests.c.completion_tokens), sa.func.sum(label_requests.c.labeled_count)
    ).where(label_requests.c.model == model, label_requests.c.labeled_count > 0)
    tokens, items = conn.execute(query).one()
    if not items:
        return None
    return float(tokens) / float(items)


def label_status(engine: Engine, settings: LabelSettings) -> dict[str, Any]:
    """For ``promptmill status``: labeled, no_object, pending (for the current version) and spend_usd (all time)."""
    info = resolve_version(settings)
    with engine.connect() as conn:
        counts = dict(
            conn.execute(
                sa.select(labels.c.status, sa.func.count())
                .where(labels.c.version == info.version)
                .group_by(labels.c.status)
            ).all()
        )
        no_object = conn.execute(
            sa.select(sa.func.count())
            .select_from(labels)
            .where(labels.c.version == info.version, labels.c.status == "ok", labels.c.no_object.is_(True))
        ).scalar_one()
        pending = count_pending(conn, info.version)
        spend = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(label_requests.c.cost_usd), 0.0))).scalar_one()
    return {
        "labeled": int(counts.get("ok", 0)),
        "no_object": int(no_object),
        "pending": int(pending),
        "spend_usd": round(float(spend), 6),
        "failed": int(counts.get("failed", 0)),
        "label_version": info.version,
        "label_model": info.model,
    }
