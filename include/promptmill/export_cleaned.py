"""`promptmill export-cleaned`: the original notebook's `cleaned_discord_prompts.tsv`.

Tab-separated, an unnamed index column then ``content`` (the cleaned prompt), ``attachments`` (the CSV
export's comma-joined URLs) and ``username``, one row per kept prompt, ordered by date - the same dialect
pandas' ``DataFrame.to_csv(sep="\\t")`` writes, so downstream readers of the original file keep working.
"""

from __future__ import annotations

import csv
import errno
import os
from pathlib import Path

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine


def export_cleaned(engine: Engine, out_path: str | os.PathLike) -> int:
    """Write the file (complete or not at all: written beside it, then renamed); returns the number of rows.

    The folder must exist: a mistyped path is an error (FileNotFoundError), never new folders."""
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder", str(out_path.parent))
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        rows = _write(engine, tmp)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def _write(engine: Engine, tmp: Path) -> int:
    rows = 0
    # Ties on the date keep the notebook's order before its stable sort: (username, date) descending.
    collate = 'COLLATE "C"' if engine.dialect.name == "postgresql" else ""
    with engine.connect() as conn, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(["", "content", "attachments", "username"])
        result = conn.execute(
            sa.text(
                "SELECT m.clean_text, m.attachments, m.username FROM message_verdicts v "
                "JOIN messages m ON m.key = v.key WHERE v.status = 'kept' "
                f"ORDER BY v.posted_at, COALESCE(v.username, '') {collate} DESC, v.posted_seq, v.key"
            ),
            execution_options={"stream_results": True, "yield_per": 10_000},
        )
        for clean_text, attachments, username in result:
            urls = ",".join(orjson.loads(attachments)) if attachments else ""
            writer.writerow([rows, clean_text, urls, username or ""])
            rows += 1
    return rows
