"""One typed settings object for every front door (CLI, DAG, tests).

Precedence: defaults < environment (``PROMPTMILL_*``) < explicit overrides (CLI flags, DAG params).
Only plain values live here; secrets (API keys) are read where they are used and never stored on this object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptmill import env_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLES_DIR = PACKAGE_DIR / "samples" / "landing"


def default_data_dir() -> Path:
    """Where the embedded store and default outputs live: ``<repo>/data`` for a checkout, else ``~/.promptmill``."""
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "data"
    return Path.home() / ".promptmill"


@dataclass(frozen=True, slots=True)
class Settings:
    # where things are
    database_url: str | None = None  # None -> embedded SQLite file under data_dir
    data_dir: Path = field(default_factory=default_data_dir)
    landing_dir: Path | None = None  # None -> <data_dir>/landing

    # cleaning and dedupe
    cleaning_profile: str = "parity"  # "parity" reproduces the original notebook; "improved" fixes its known defects
    near_dup_metric: str = "jaro"  # "jaro" (original) | "token_set" | "off"
    near_dup_threshold: float = 0.6  # similarity strictly above this drops the older attempt
    near_dup_window_s: int = 3600  # the original "within 1 hour"

    # only ingest these channels (ids or names); empty = all
    channels: tuple[str, ...] = ()

    # zip safety caps
    zip_max_member_bytes: int = 8 * 1024**3
    zip_max_ratio: float = 200.0

    # processes parsing and deriving export files in parallel (the store load stays in the calling process)
    ingest_workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))

    # a load of at least this many bytes that also at least doubles the store is a bulk load on PostgreSQL:
    # the dedupe lookup indexes are dropped while it is stored and built again afterwards (store/lookup_indexes.py)
    bulk_load_min_bytes: int = 64 * 1024**2
    # a dedupe of the whole store (a first load, a large backfill, --full) on PostgreSQL computes the verdicts in
    # the client, holding ~0.9 KB per message, up to this many stored messages; above, with server-side passes
    dedupe_client_max_messages: int = 2_000_000

    # ingest progress/log cadence
    progress_every_s: float = 5.0

    ENV_PREFIX = "PROMPTMILL_"

    @property
    def effective_landing_dir(self) -> Path:
        return Path(self.landing_dir) if self.landing_dir else Path(self.data_dir) / "landing"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir) / 'promptmill.sqlite'}"

    def connect_store(self):
        """The store's engine, migrated. The default embedded store's folder is created; the folder of a SQLite
        URL given explicitly must exist (a mistyped path is an error, not a new empty store)."""
        from promptmill.store.db import connect

        if not self.database_url:
            Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        return connect(self.effective_database_url)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Apply non-None overrides (CLI flags / DAG params), converting strings to the field types."""
        return env_settings.with_overrides(self, overrides, what="setting")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        return env_settings.load(cls(), environ, overrides)  # PROMPTMILL_DATABASE_URL among them
