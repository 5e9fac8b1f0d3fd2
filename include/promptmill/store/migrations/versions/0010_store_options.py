"""The options a store's verdicts were computed with (store/options.py): one row, none until a command records it.

A store migrated from an earlier revision gets no row: its verdicts were computed with options nobody recorded, so
the first command that stores or dedupes anything records the ones it runs with (those given, else the defaults),
as a new store does.

Revision ID: 0010_store_options
Revises: 0009_hostile_input
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_store_options"
down_revision = "0009_hostile_input"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_options",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("cleaning_profile", sa.Text, nullable=False),
        sa.Column("near_dup_metric", sa.Text, nullable=False),
        sa.Column("near_dup_threshold", sa.Float, nullable=False),
        sa.Column("near_dup_window_s", sa.Integer, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_store_options_one_row"),
    )


def downgrade() -> None:
    op.drop_table("store_options")
