"""Plain data records passed between the pipeline stages.

They carry no behaviour and import nothing heavy, so every stage (export readers, the bot parser,
cleaning, the store) can share them without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class RawMessage:
    """One message of a DiscordChatExporter export, format-independent.

    ``key`` is the Discord snowflake for JSON exports. CSV exports carry no message id, so the CSV reader
    derives a stable key from (channel, author id, timestamp, content, occurrence) - see exports.csv_reader.
    ``posted_at`` and ``edited_at`` are timezone-aware and normalised to UTC.
    """

    key: str
    channel_id: str
    author_id: str
    author: str
    posted_at: datetime
    content: str
    attachments: tuple[str, ...] = ()
    edited_at: datetime | None = None
    is_bot: bool | None = None
    message_type: str | None = None
    # Rank among rows of the same timestamp in the file, for exports whose Date has minute precision (old CSV
    # formats): file order is the only order such ties have, and the original notebook relied on it.
    seq: int = 0


@dataclass(slots=True)
class ExportHeader:
    """What an export says about itself (JSON header, or the CSV file name for CSV)."""

    format: str  # "json" | "csv"
    channel_id: str
    channel_name: str | None = None
    guild_id: str | None = None
    guild_name: str | None = None
    exported_at: datetime | None = None
    declared_count: int | None = None  # JSON messageCount, when present


@dataclass(slots=True)
class Generation:
    """What the bot parser makes of one message (see bots.extract).

    ``reject`` is None for a usable generation; otherwise the reason it is not one (rules 1-5 of the
    original cleaning, or the text-era equivalents). ``raw_prompt`` is the prompt after rules 6-10
    (slash era) or the quoted prompt (text era): the text the exact-dedupe (rule 12) and near-duplicate
    (rule 13) steps compare.
    """

    era: str | None  # "slash" | "text" | None
    username: str | None = None
    raw_prompt: str | None = None
    args: dict = field(default_factory=dict)
    nsfw: bool = False
    reject: str | None = None


@dataclass(slots=True)
class Cleaned:
    """Result of the per-prompt clean-up (rules 14-33): a cleaned prompt, or the rule that rejected it."""

    text: str | None
    reject: str | None = None
