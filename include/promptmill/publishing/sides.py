"""The sides recorded per destination (table ``published_splits``): read before a split, written after a publication.

Publishers to one destination take turns (publish.publish_lock), so nothing else writes a destination's rows
between the read and the write.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from promptmill.publishing.rows import PublishRow
from promptmill.publishing.split import SplitPlan, SplitRow
from promptmill.publishing.tables import published_splits

_INSERT_CHUNK = 5_000


def recorded_sides(engine: Engine, destination: str) -> dict[str, tuple[str, str]]:
    """row_id -> (side, prompt) of every row published at ``destination``."""
    query = sa.select(published_splits.c.row_id, published_splits.c.split, published_splits.c.prompt).where(
        published_splits.c.destination == destination
    )
    with engine.connect() as conn:
        return {row_id: (side, prompt) for row_id, side, prompt in conn.execute(query)}


def split_rows_of(rows: Sequence[PublishRow], recorded: dict[str, tuple[str, str]]) -> list[SplitRow]:
    """What the split sees: the publishable rows with their recorded sides, and the rows published before that are
    not publishable now (they still hold their side)."""
    current = {row.row_id for row in rows}
    split_rows = [
        SplitRow(
            row_id=row.row_id,
            prompt=row.prompt,
            description=row.description,
            posted_at=row.posted_at,
            user=row.username_hash,
            recorded=recorded[row.row_id][0] if row.row_id in recorded else None,
        )
        for row in rows
    ]
    split_rows += [
        SplitRow(row_id=row_id, prompt=prompt, recorded=side, current=False)
        for row_id, (side, prompt) in recorded.items()
        if row_id not in current
    ]
    return split_rows


def record_sides(engine: Engine, destination: str, version: str, rows: Sequence[PublishRow], plan: SplitPlan) -> int:
    """Record the side of each row of ``plan`` not yet recorded at ``destination``; returns how many."""
    with engine.begin() as conn:
        known = set(
            conn.scalars(sa.select(published_splits.c.row_id).where(published_splits.c.destination == destination))
        )
        new = [
            {"destination": destination, "row_id": row.row_id, "split": plan.sides[row.row_id], "prompt": row.prompt,
             "version": version}
            for row in rows
            if row.row_id in plan.sides and row.row_id not in known
        ]
        for start in range(0, len(new), _INSERT_CHUNK):
            conn.execute(sa.insert(published_splits), new[start : start + _INSERT_CHUNK])
    return len(new)
