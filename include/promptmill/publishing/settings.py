"""Publishing settings (``PROMPTMILL_PUBLISH_*``): one frozen, validated object for the CLI, the DAG and the tests.

Precedence and errors: see :mod:`promptmill.settings`. The username salt is a secret (``SecretStr``): it is never
printed, dumped, written to a manifest or put in an event or an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from promptmill.choices import SplitKey
from promptmill.settings import SettingsBase, default_data_dir


def default_out_uri(data_dir: Path | str | None = None) -> str:
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return (Path(root).expanduser().resolve() / "published").as_uri()


class PublishSettings(SettingsBase):
    model_config = SettingsConfigDict(env_prefix="PROMPTMILL_PUBLISH_")
    WHAT = "publish setting"

    # where: any fsspec URL (file://, a plain path, memory://, s3:// with s3fs installed); a Path -> its file:// URL
    out_uri: str = Field(default_factory=default_out_uri, min_length=1)
    # what
    test_ratio: float = Field(0.2, gt=0, lt=1)
    split_key: SplitKey = "prompt"  # group-aware: rows sharing the key never straddle the splits
    include_no_object: bool = False  # the original -r flag, inverted: publish `_no_object` rows too
    one_per_cluster: bool = False  # keep only the earliest posted row of each cluster of near-identical prompts
    label_version: str | None = None  # None -> the current version of the labeling settings
    # how many complete publications to keep at the destination (0 = keep all)
    retention: int = Field(10, ge=0)
    # publishers to one destination take turns: how long one waits for another before it gives up (exit 1)
    lock_timeout_s: float = Field(900.0, ge=0)
    # keys the username hash; empty -> unsalted SHA-256 (guessable from a list of names; a warning says so)
    username_salt: SecretStr = SecretStr("")

    @field_validator("out_uri", mode="before")
    @classmethod
    def _path_to_uri(cls, value: Any) -> Any:
        return value.expanduser().resolve().as_uri() if isinstance(value, Path) else value

    def public_dict(self) -> dict[str, Any]:
        """What a manifest or a log may show: every setting except the salt (only whether one is set)."""
        return {
            "test_ratio": self.test_ratio,
            "split_key": self.split_key,
            "include_no_object": self.include_no_object,
            "one_per_cluster": self.one_per_cluster,
            "username_hash": "hmac-sha256" if self.username_salt.get_secret_value() else "sha256-unsalted",
        }

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        data_dir: Path | str | None = None,
        **overrides: Any,
    ) -> Self:
        """Settings from ``PROMPTMILL_PUBLISH_*``; ``data_dir`` (the main settings' folder) sets the default out_uri."""
        settings = super().from_env(environ, **overrides)
        if data_dir is None or "out_uri" in settings.explicit():
            return settings
        return settings.with_overrides(out_uri=default_out_uri(data_dir))
