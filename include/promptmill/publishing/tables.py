"""Publishing tables (SQLAlchemy Core, on the store's shared ``metadata``).

Migrations ``0003_publishing`` and ``0011_published_splits`` create exactly these; keep them in step. The destination is the truth about
what is published (its LATEST and manifests); this table is the store's history of it, for status and audits.
"""

from __future__ import annotations

import sqlalchemy as sa

from promptmill.store.schema import TS, metadata

PK = sa.BigInteger().with_variant(sa.Integer, "sqlite")

publications = sa.Table(
    "publications",
    metadata,
    sa.Column("id", PK, primary_key=True, autoincrement=True),
    sa.Column("destination", sa.Text, nullable=False),  # the root URI, credentials removed
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("label_version", sa.String(32)),
    sa.Column("train_rows", sa.Integer, nullable=False),
    sa.Column("test_rows", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("manifest", sa.Text, nullable=False),  # manifest.json as written
    sa.Index("ix_publications_destination", "destination", "created_at"),
    sa.Index("uq_publications_destination_version", "destination", "version", unique=True),
)

# The side of every row ever published at a destination: a published row never changes side (split.py). The
# prompt is kept so that a row no longer publishable (relabeled, unkept) still holds its side against the rows
# near-identical to it.
published_splits = sa.Table(
    "published_splits",
    metadata,
    sa.Column("destination", sa.Text, primary_key=True),  # as in publications
    sa.Column("row_id", sa.String(16), primary_key=True),  # the published id (rows.row_id_of)
    sa.Column("split", sa.String(8), nullable=False),  # train | test
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("version", sa.String(64), nullable=False),  # the first publication that held it
)
