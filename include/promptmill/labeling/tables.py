"""Labeling tables (SQLAlchemy Core, on the store's shared ``metadata``).

Migrations ``0002_labeling``, ``0007_label_claims``, ``0012_label_holders_and_attempts`` and ``0013_label_evaluations`` create exactly these; keep them in step.
"""

from __future__ import annotations

import sqlalchemy as sa

from promptmill.store.schema import TS, metadata

PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# One row per label version: the pair (model, instructions) identified by a short hash.
label_versions = sa.Table(
    "label_versions",
    metadata,
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("instructions_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", TS, nullable=False),
)

# The cost ledger: one row per request (a pack in sync mode, a JSONL line in batch mode).
label_requests = sa.Table(
    "label_requests",
    metadata,
    sa.Column("id", PK, primary_key=True, autoincrement=True),
    sa.Column("request_key", sa.String(64), nullable=False, unique=True),  # ours; the batch custom_id
    sa.Column("provider_request_id", sa.Text),  # x-request-id / batch response request_id
    sa.Column("run_key", sa.String(128)),  # the budget scope (one CLI invocation or one DAG run)
    sa.Column("mode", sa.String(8), nullable=False),  # sync | batch
    sa.Column("service_tier", sa.String(16)),
    sa.Column("batch_job_id", sa.BigInteger),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("labeled_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("prompt_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cached_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cache_write_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("completion_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reasoning_tokens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    sa.Column("latency_s", sa.Float),
    sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
    # ok | partial (some ids missing/invalid) | malformed | truncated | error
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Index("ix_label_requests_run", "run_key"),
    sa.Index("ix_label_requests_version", "version"),
)

# One row per (prompt, version). status ok: description set (or no_object); failed: error says why.
labels = sa.Table(
    "labels",
    metadata,
    sa.Column("prompt_id", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("no_object", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("error", sa.Text),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("tokens", sa.Integer, nullable=False, server_default="0"),  # the request's tokens / its items
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),  # the request's cost / its items
    sa.Column("request_id", sa.BigInteger),  # label_requests.id
    sa.Column("labeled_at", TS, nullable=False),
    sa.Index("ix_labels_version_status", "version", "status"),
)

# Batch API jobs. The row (and its items) is committed before the upload; the batch id right after
# the create call, so a retried task re-attaches instead of submitting (and paying) again.
label_batch_jobs = sa.Table(
    "label_batch_jobs",
    metadata,
    sa.Column("id", PK, primary_key=True, autoincrement=True),
    sa.Column("job_key", sa.String(64), nullable=False, unique=True),  # also the batch metadata value
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("first_id", sa.BigInteger),
    sa.Column("last_id", sa.BigInteger),
    sa.Column("request_count", sa.Integer, nullable=False),
    sa.Column("item_count", sa.Integer, nullable=False),
    sa.Column("input_file_id", sa.Text),
    sa.Column("batch_id", sa.Text),
    # preparing | submitted | validating | in_progress | finalizing | completed | failed | expired |
    # cancelling | cancelled, then reconciled once its output and error files are in the database
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Index("ix_label_batch_jobs_state", "version", "state"),
)

# Which prompt went into which request of a batch job (custom_id -> local id -> prompt id).
label_batch_items = sa.Table(
    "label_batch_items",
    metadata,
    sa.Column("job_id", sa.BigInteger, primary_key=True),
    sa.Column("prompt_id", sa.BigInteger, primary_key=True),
    sa.Column("custom_id", sa.String(64), nullable=False),
    sa.Column("local_id", sa.Integer, nullable=False),
    sa.Index("ix_label_batch_items_prompt", "prompt_id"),
    sa.Index("ix_label_batch_items_custom", "custom_id"),
)

# Job states in which the job's prompts are owned by the Batch API (not pending for anyone else).
ACTIVE_JOB_STATES = (
    "preparing",
    "submitted",
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)

# A prompt about to be sent is claimed by its run (sync: each request's prompts just before it is sent; batch: a
# job's prompts as it is created) until ``expires_at``: another run's claim of it waits for the expiry, so two runs
# at once (the DAG and a `promptmill label`, two commands) never send, and pay for, the same prompt. Expired
# claims are only history: the label, or the live batch job, is what keeps a prompt from being sent again.
label_claims = sa.Table(
    "label_claims",
    metadata,
    sa.Column("prompt_id", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("run_key", sa.String(128), nullable=False),
    sa.Column("expires_at", TS, nullable=False),
    sa.Column("holder", sa.String(128), nullable=True),  # labeling/holders.py: the process, to tell a dead one
)

# Well-formed answers that were unusable for a prompt (migration 0012): after LabelSettings.max_attempts the
# prompt is labeled ``failed`` with the last reason; ``promptmill label --retry-failed`` starts it over.
label_attempts = sa.Table(
    "label_attempts",
    metadata,
    sa.Column("prompt_id", sa.BigInteger, primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
)

# ``promptmill evaluate-labels`` results (migration 0013): one row per evaluation of a label version on a gold set.
label_evaluations = sa.Table(
    "label_evaluations",
    metadata,
    sa.Column("id", PK, primary_key=True, autoincrement=True),
    sa.Column("version", sa.String(32), nullable=False, index=True),
    sa.Column("model", sa.String(128), nullable=False),
    sa.Column("gold_name", sa.Text, nullable=False),
    sa.Column("gold_sha256", sa.String(64), nullable=False),
    sa.Column("prompts", sa.Integer, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("created_at", TS, nullable=False),
)
