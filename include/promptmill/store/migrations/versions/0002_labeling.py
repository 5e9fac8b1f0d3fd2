"""Labeling: label versions, labels, the cost ledger, Batch API jobs.

Revision ID: 0002_labeling
Revises: 0001_ingest
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_labeling"
down_revision = "0001_ingest"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "label_versions",
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("instructions_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "label_requests",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("request_key", sa.String(64), nullable=False, unique=True),
        sa.Column("provider_request_id", sa.Text),
        sa.Column("run_key", sa.String(128)),
        sa.Column("mode", sa.String(8), nullable=False),
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
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_label_requests_run", "label_requests", ["run_key"])
    op.create_index("ix_label_requests_version", "label_requests", ["version"])
    op.create_table(
        "labels",
        sa.Column("prompt_id", sa.BigInteger, primary_key=True),
        sa.Column("version", sa.String(32), primary_key=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("no_object", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        sa.Column("request_id", sa.BigInteger),
        sa.Column("labeled_at", TS, nullable=False),
    )
    op.create_index("ix_labels_version_status", "labels", ["version", "status"])
    op.create_table(
        "label_batch_jobs",
        sa.Column("id", PK, primary_key=True, autoincrement=True),
        sa.Column("job_key", sa.String(64), nullable=False, unique=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("first_id", sa.BigInteger),
        sa.Column("last_id", sa.BigInteger),
        sa.Column("request_count", sa.Integer, nullable=False),
        sa.Column("item_count", sa.Integer, nullable=False),
        sa.Column("input_file_id", sa.Text),
        sa.Column("batch_id", sa.Text),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_label_batch_jobs_state", "label_batch_jobs", ["version", "state"])
    op.create_table(
        "label_batch_items",
        sa.Column("job_id", sa.BigInteger, primary_key=True),
        sa.Column("prompt_id", sa.BigInteger, primary_key=True),
        sa.Column("custom_id", sa.String(64), nullable=False),
        sa.Column("local_id", sa.Integer, nullable=False),
    )
    op.create_index("ix_label_batch_items_prompt", "label_batch_items", ["prompt_id"])
    op.create_index("ix_label_batch_items_custom", "label_batch_items", ["custom_id"])


def downgrade() -> None:
    for table in ("label_batch_items", "label_batch_jobs", "labels", "label_requests", "label_versions"):
        op.drop_table(table)
