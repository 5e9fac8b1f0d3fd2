"""Unique publication versions per destination, and warnings recorded for an ingested file.

Revision ID: 0009_hostile_input
Revises: 0008_deferred_verdicts
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_hostile_input"
down_revision = "0008_deferred_verdicts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Concurrent publishers before the publish lock could record one version twice: keep the first record.
    op.execute(
        "DELETE FROM publications WHERE id NOT IN "
        "(SELECT min(id) FROM publications GROUP BY destination, version)"
    )
    op.create_index("uq_publications_destination_version", "publications", ["destination", "version"], unique=True)
    op.add_column("source_files", sa.Column("warnings", sa.Text))


def downgrade() -> None:
    op.drop_column("source_files", "warnings")
    op.drop_index("uq_publications_destination_version", table_name="publications")
