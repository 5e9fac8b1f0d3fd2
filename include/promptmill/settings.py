"""One typed settings object for every front door (CLI, DAG, tests).

Precedence: defaults < environment (``PROMPTMILL_*``) < explicit overrides (CLI flags, DAG params).
Only plain values live here; secrets (API keys) are read where they are used and never stored on this object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

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

    def with_overrides(self, **overrides: Any) -> Settings:
        """Apply non-None overrides (CLI flags / DAG params), converting strings to the field types."""
        known = {f.name: f for f in fields(self)}
        clean: dict[str, Any] = {}
        for name, value in overrides.items():
            if value is None:
                continue
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            clean[name] = _coerce(getattr(self, name), value, name)
        return replace(self, **clean)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        base = cls()
        from_env = {}
        for f in fields(cls):
            key = cls.ENV_PREFIX + f.name.upper()
            if key in env and env[key] != "":
                from_env[f.name] = env[key]
        # The documented name of the store URL has no underscore doubling.
        if "PROMPTMILL_DATABASE_URL" in env and env["PROMPTMILL_DATABASE_URL"]:
            from_env["database_url"] = env["PROMPTMILL_DATABASE_URL"]
        return base.with_overrides(**from_env).with_overrides(**overrides)


def _coerce(current: Any, value: Any, name: str) -> Any:
    if isinstance(current, tuple) and isinstance(value, (str, list, tuple)):
        items = value.split(",") if isinstance(value, str) else value
        return tuple(str(v).strip() for v in items if str(v).strip())
    if isinstance(value, str):
        if isinstance(current, bool):
            low = value.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"setting {name}: expected a boolean, got {value!r}")
        if isinstance(current, int) and not isinstance(current, bool):
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, Path) or name.endswith("_dir"):
            return Path(value).expanduser()
    if name.endswith("_dir") and value is not None and not isinstance(value, Path):
        return Path(value).expanduser()
    return value
