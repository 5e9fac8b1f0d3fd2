"""Store-wide counts for `promptmill status`, `promptmill demo` and the dataset page, and their text form."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from promptmill.settings import Settings


def rejection_counts(conn: sa.Connection) -> dict[str, int]:
    """Rejected messages per reason, in reason order."""
    return dict(conn.execute(sa.text(
        "SELECT reason, COUNT(*) FROM message_verdicts WHERE status = 'rejected' GROUP BY reason ORDER BY reason"
    )).all())  # fmt: skip


def store_status(engine: Engine, settings: Settings | None = None) -> dict:
    with engine.connect() as conn:
        q = conn.execute
        by_status = dict(q(sa.text("SELECT status, COUNT(*) FROM message_verdicts GROUP BY status")).all())
        rejected = rejection_counts(conn)
        files = dict(q(sa.text("SELECT outcome, COUNT(*) FROM source_files GROUP BY outcome")).all())
        status = {
            "messages": sum(by_status.values()),
            "generations": q(sa.text("SELECT COUNT(*) FROM message_verdicts WHERE pre_reason IS NULL")).scalar(),
            "kept": by_status.get("kept", 0),
            "near_duplicates": rejected.get("near_duplicate", 0),
            "rejected": rejected,
            "pending_dedupe": by_status.get("pending", 0),
            "unique_prompts": q(sa.text("SELECT COUNT(*) FROM prompts WHERE kept")).scalar(),
            "channels": q(sa.text("SELECT COUNT(DISTINCT channel_id) FROM message_verdicts")).scalar(),
            "files_ingested": files.get("ingested", 0),
            "files_quarantined": files.get("quarantined", 0),
        }
        from promptmill.store.options import read

        stored = read(conn)  # the options the verdicts were computed with (None: not recorded yet)
        status["options"] = stored.as_dict() if stored is not None else None
        from promptmill.dedupe import has_deferred_verdicts

        if has_deferred_verdicts(conn):
            # a bulk load stored messages whose verdict rows the next dedupe writes: count them from the messages
            status["messages"] = q(sa.text("SELECT COUNT(*) FROM messages")).scalar()
            status["generations"] = q(sa.text("SELECT COUNT(*) FROM messages WHERE pre_reason IS NULL")).scalar()
            status["channels"] = q(sa.text("SELECT COUNT(DISTINCT channel_id) FROM messages")).scalar()
            status["pending_dedupe"] = status["messages"] - sum(
                count for verdict, count in by_status.items() if verdict != "pending"
            )
    from promptmill.labeling.ledger import label_status
    from promptmill.labeling.settings import LabelSettings

    status.update(label_status(engine, LabelSettings.from_env()))
    return status


def format_status(status: dict) -> str:
    """The counts of ``store_status`` as the lines `promptmill status` prints (no trailing newline)."""
    lines = [
        f"messages:        {status['messages']:,} in {status['channels']:,} channel"
        + ("" if status["channels"] == 1 else "s"),
        f"generations:     {status['generations']:,}",
        f"kept:            {status['kept']:,} ({status['unique_prompts']:,} unique prompts)",
        f"near-duplicates: {status['near_duplicates']:,}",
    ]
    if status["rejected"]:
        width = max(len(k) for k in status["rejected"])
        lines.append("rejected:")
        for reason, count in sorted(status["rejected"].items(), key=lambda kv: -kv[1]):
            lines.append(f"  {reason:<{width}}  {count:,}")
    if status.get("pending_dedupe"):
        lines.append(f"pending dedupe:  {status['pending_dedupe']:,} (run `promptmill dedupe`)")
    lines.append(f"files:           {status['files_ingested']:,} ingested, {status['files_quarantined']:,} quarantined")
    if status.get("options"):
        from promptmill.store.options import describe

        lines.append(f"options:         {describe(status['options'])}")
    if "labeled" in status:
        lines.append(
            f"labels:          {status['labeled']:,} labeled ({status['no_object']:,} _no_object), "
            f"{status['pending']:,} pending, ${status['spend_usd']:.4f} spent"
        )
    return "\n".join(lines)
