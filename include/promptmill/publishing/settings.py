"""Publishing settings: one frozen object for the CLI, the DAG and the tests.

Precedence: defaults < environment (``PROMPTMILL_PUBLISH_<FIELD>``) < explicit overrides (CLI flags, DAG params).
The username salt is a secret: it is never printed (``repr=False``), written to a manifest or put in an event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptmill import env_settings
from promptmill.settings import default_data_dir

SPLIT_KEYS = ("prompt", "description")


def default_out_uri(data_dir: Path | str | None = None) -> str:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return (Path(root).expanduser().resolve() / "published").as_uri()


@dataclass(frozen=True, slots=True)
class PublishSettings:
    # where: any fsspec URL (file://, a plain path, memory://, s3:// with s3fs installed)
    out_uri: str = field(default_factory=default_out_uri)
    # what
    test_ratio: float = 0.2
    split_key: str = "prompt"  # "prompt" | "description" (group-aware: a description never straddles splits)
    include_no_object: bool = False  # the original -r flag, inverted: publish `_no_object` rows too
    label_version: str | None = None  # None -> the current version of the labeling settings
    # how many complete publications to keep at the destination (0 = keep all)
    retention: int = 10
    # publishers to one destination take turns: how long one waits for another before it gives up (exit 1)
    lock_timeout_s: float = 900.0
    # keys the username hash; empty -> unsalted SHA-256 (guessable from a list of names; a warning says so)
    username_salt: str = field(default="", repr=False)

    ENV_PREFIX = "PROMPTMILL_PUBLISH_"

    def __post_init__(self) -> None:
        if not 0.0 < self.test_ratio < 1.0:
            raise ValueError(f"test_ratio must be between 0 and 1 (exclusive), got {self.test_ratio}")
        if self.split_key not in SPLIT_KEYS:
            raise ValueError(f"split_key must be one of {', '.join(SPLIT_KEYS)}, got {self.split_key!r}")
        if self.retention < 0:
            raise ValueError(f"retention must not be negative, got {self.retention}")
        if self.lock_timeout_s < 0:
            raise ValueError(f"lock_timeout_s must not be negative, got {self.lock_timeout_s}")
        if not str(self.out_uri).strip():
            raise ValueError("out_uri must not be empty")

    def public_dict(self) -> dict[str, Any]:
        """What a manifest or a log may show: every setting except the salt (only whether one is set)."""
        return {
            "test_ratio": self.test_ratio,
            "split_key": self.split_key,
            "include_no_object": self.include_no_object,
            "username_hash": "hmac-sha256" if self.username_salt else "sha256-unsalted",
        }

    def with_overrides(self, **overrides: Any) -> PublishSettings:
        """Apply non-None overrides (CLI flags / DAG params), converting strings to the field types."""
        return env_settings.with_overrides(
            self, overrides, what="publish setting", convert=_convert, raw=frozenset({"username_salt"})
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        data_dir: Path | str | None = None,
        **overrides: Any,
    ) -> PublishSettings:
        """Settings from ``PROMPTMILL_PUBLISH_*``; ``data_dir`` (the main settings' folder) sets the default out_uri."""
        base = cls(out_uri=default_out_uri(data_dir)) if data_dir is not None else cls()
        return env_settings.load(base, environ, overrides)


def _convert(name: str, value: Any) -> Any:
    """A destination given as a local path becomes its file:// URL."""
    if name == "out_uri" and isinstance(value, Path):
        return value.expanduser().resolve().as_uri()
    return NotImplemented
