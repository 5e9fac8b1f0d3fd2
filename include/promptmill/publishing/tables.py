"""Publishing tables (SQLAlchemy Core, on the store's shared ``metadata``).

Migration ``0003_publishing`` creates exactly these; keep the two in step. The destination is the truth about
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
