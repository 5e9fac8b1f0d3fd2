"""What to generate (``SynthConfig``) and the seeded random streams everything is drawn from."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

ERAS = ("slash", "text", "mixed")
FORMATS = ("json", "csv")
CSV_DATE_FORMATS = ("iso", "legacy", "us")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. All fields have defaults; ``SynthConfig(messages=..., seed=...)`` is the usual call.

    ``era="mixed"`` alternates the channels' eras (slash, text, slash, ...): real bots never mixed eras within a
    channel, so a single "mixed" channel is a slash-era one.
    ``start`` None means the era's own start (slash: 2022-11-01, text: 2022-08-08); a given ``start`` applies
    to every channel. ``first_channel`` numbers the channels (``dreambot-<n>`` / ``dream-<n>``); a channel's
    id depends only on its era and number, so exports made with different configs can describe the same channel.
    ``exported_at`` None derives the export time from the channel's last message (JSON ``exportedAt`` and the
    CDN signature parameters of attachment URLs).
    """

    messages: int = 1000
    seed: int = 0
    channels: int = 2
    users: int = 50
    era: str = "slash"
    formats: tuple[str, ...] = ("json",)
    start: datetime | None = None
    mean_gap_s: float = 2.0
    partition_size: int | None = None
    date_partitioned: bool = False
    near_dup_rate: float = 0.3
    junk_rate: float = 0.08
    first_channel: int = 1
    csv_date_format: str = "iso"
    csv_line_terminator: str = "\n"
    cdn_signatures: bool = True
    exported_at: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.formats, str):
            object.__setattr__(self, "formats", tuple(f for f in self.formats.split(",") if f))
        problems = []
        if self.messages < 0:
            problems.append(f"messages must be >= 0, got {self.messages}")
        if self.channels < 1:
            problems.append(f"channels must be >= 1, got {self.channels}")
        if self.users < 1:
            problems.append(f"users must be >= 1, got {self.users}")
        if self.era not in ERAS:
            problems.append(f"era must be one of {ERAS}, got {self.era!r}")
        if not self.formats or any(f not in FORMATS for f in self.formats) or len(set(self.formats)) != len(
            self.formats
        ):
            problems.append(f"formats must be distinct values among {FORMATS}, got {self.formats!r}")
        if self.mean_gap_s <= 0:
            problems.append(f"mean_gap_s must be > 0, got {self.mean_gap_s}")
        if self.partition_size is not None and self.partition_size < 1:
            problems.append(f"partition_size must be >= 1 or None, got {self.partition_size}")
        for name in ("near_dup_rate", "junk_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.first_channel < 1:
            problems.append(f"first_channel must be >= 1, got {self.first_channel}")
        if self.csv_date_format not in CSV_DATE_FORMATS:
            problems.append(f"csv_date_format must be one of {CSV_DATE_FORMATS}, got {self.csv_date_format!r}")
        if self.csv_line_terminator not in ("\n", "\r\n"):
            problems.append(f"csv_line_terminator must be '\\n' or '\\r\\n', got {self.csv_line_terminator!r}")
        for name in ("start", "exported_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                problems.append(f"{name} must be timezone-aware, got {value!r}")
        if problems:
            raise ValueError("invalid SynthConfig: " + "; ".join(problems))


def seeded_random(seed: int, purpose: str, ordinal: int) -> random.Random:
    """The random stream of one purpose ("users", "content", "timeline") of one channel (``ordinal``)."""
    # String seeds go through SHA-512 in random.Random, so they are stable across runs and PYTHONHASHSEED.
    return random.Random(f"promptmill-synth:{seed}:{purpose}:{ordinal}")
