"""The settings of every front door (CLI, DAG, tests): pydantic-settings models, validated when they are made.

Precedence: defaults < environment (``PROMPTMILL_*``, read by ``from_env`` only: a plain ``Settings(...)`` takes
the values given and the defaults) < explicit overrides (CLI flags, DAG params; None = not given). An empty
environment variable counts as unset. A bad value raises :class:`SettingsError` (a ValueError), one line naming
each bad setting (and the variable it came from), never repeating a secret.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, Field, PrivateAttr, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from promptmill.choices import CleaningProfile, NearDupMetric

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLES_DIR = PACKAGE_DIR / "samples" / "landing"

# A path setting: "~" expanded. A list setting: a comma-separated string from a flag or the environment.
UserPath = Annotated[Path, AfterValidator(Path.expanduser)]
Names = Annotated[tuple[str, ...], NoDecode]


class SettingsError(ValueError):
    """A bad setting: one line naming it."""


class _Environment(EnvSettingsSource):
    """The ``<prefix><FIELD>`` variables of ``environ`` (names not case-sensitive; empty ones unset)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]):
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str]:
        return {name.lower(): value for name, value in self._environ.items() if value != ""}


class SettingsBase(BaseSettings):
    """What the three settings classes share: reading the environment, overrides, one-line errors."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", case_sensitive=False, env_ignore_empty=True)
    WHAT: ClassVar[str] = "setting"  # how errors name this class's settings ("label setting pack_size: ...")

    _from_environment: frozenset[str] = PrivateAttr(default_factory=frozenset)

    def __init__(self, _from_environment: frozenset[str] = frozenset(), **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(type(self)._one_line(exc, _from_environment)) from None
        self._from_environment = _from_environment

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_sources):
        return (init_settings,)  # the environment is read by from_env, explicitly

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        """Text from a flag or the environment: surrounding spaces dropped (never from a secret); "", "none" or
        "null" is None for an optional setting; a list setting splits a string at commas and drops empty items."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if field is None or field.annotation is SecretStr:
                continue
            target, optional = _unwrap(field.annotation)
            if typing.get_origin(target) is tuple:
                if isinstance(value, str):
                    value = value.split(",")
                if isinstance(value, (list, tuple)):
                    data[name] = tuple(str(item).strip() for item in value if str(item).strip())
            elif isinstance(value, str):
                text = value.strip()
                data[name] = None if optional and text.lower() in ("", "none", "null") else text
        return data

    @classmethod
    def env_name(cls, field: str) -> str:
        return f"{cls.model_config['env_prefix']}{field.upper()}"

    @classmethod
    def option_help(cls, field: str, text: str, *, default: str | None = None) -> str:
        """A command-line option's help, from the one source of its default and variable: what it does, then
        ``(default: <the setting's default>; env <its variable>)``; ``default`` words a derived default."""
        if default is None:
            value = cls.model_fields[field].get_default(call_default_factory=True)
            if isinstance(value, bool):
                default = "on" if value else "off"
            elif value is None:
                default = "none"
            else:
                default = f"{value:,}" if isinstance(value, int) else str(value)
        return f"{text} (default: {default}; env {cls.env_name(field)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Defaults < ``environ`` (default: the process environment) < the non-None ``overrides``."""
        found = _Environment(cls, os.environ if environ is None else environ)()
        return cls._build(found, overrides, frozenset(found))

    def with_overrides(self, **overrides: Any) -> Self:
        """A copy with the non-None ``overrides`` (CLI flags, DAG params), validated like the rest."""
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return self._build(given, overrides, self._from_environment)

    @classmethod
    def _build(cls, values: Mapping[str, Any], overrides: Mapping[str, Any], from_env: frozenset[str]) -> Self:
        given = {name: value for name, value in overrides.items() if value is not None}
        return cls(_from_environment=from_env - set(given), **{**values, **given})

    def explicit(self) -> frozenset[str]:
        """The settings given explicitly (environment, flags, params, arguments) rather than left at the default."""
        return frozenset(self.model_fields_set)

    def source_of(self, field: str) -> str | None:
        """The environment variable ``field`` came from, if it did."""
        return self.env_name(field) if field in self._from_environment else None

    @classmethod
    def _one_line(cls, exc: ValidationError, from_env: frozenset[str]) -> str:
        problems = []
        for error in exc.errors(include_url=False):
            name = ".".join(str(part) for part in error["loc"][:1]) or "settings"
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown {cls.WHAT} {name!r}")
                continue
            field = cls.model_fields.get(name)
            source = f" ({cls.env_name(name)})" if name in from_env else ""
            got = "" if field is not None and field.annotation is SecretStr else f" (got {error['input']!r})"
            problems.append(f"{cls.WHAT} {name}{source}: {error['msg']}{got}")
        return "; ".join(problems)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X`` and whether None is allowed, for ``X | None`` (and ``Annotated[X, ...]``)."""
    optional = False
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional, annotation = True, args[0]
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation, optional


# The near-duplicate metric and threshold of each cleaning profile when none is given: the original notebook's rule
# for parity; for quality the metric that merged retries, not different pictures, in the hand-judged development
# set (the README's "Which profile" table, benchmarks/quality.py).
PROFILE_NEAR_DUP: dict[str, tuple[str, float]] = {"parity": ("jaro", 0.6), "quality": ("content_words", 0.8)}


def default_data_dir() -> Path:
    """Where the embedded store and default outputs live: ``<repo>/data`` for a checkout, else ``~/.promptmill``."""
    if (PROJECT_ROOT / "pyproject.toml").exists():
        return PROJECT_ROOT / "data"
    return Path.home() / ".promptmill"


class Settings(SettingsBase):
    """The store, ingest, cleaning and dedupe settings (``PROMPTMILL_*``)."""

    model_config = SettingsConfigDict(env_prefix="PROMPTMILL_")

    # where things are
    database_url: str | None = None  # None -> embedded SQLite file under data_dir
    data_dir: UserPath = Field(default_factory=default_data_dir)
    landing_dir: UserPath | None = None  # None -> <data_dir>/landing

    # cleaning and dedupe: the options a store records with its verdicts (store/options.py). The near-duplicate
    # metric and threshold not given take the profile's (PROFILE_NEAR_DUP): quality's, or the original rule's.
    cleaning_profile: CleaningProfile = "quality"
    near_dup_metric: NearDupMetric = PROFILE_NEAR_DUP["quality"][0]
    near_dup_threshold: float = Field(PROFILE_NEAR_DUP["quality"][1], ge=0, le=1)  # strictly above: dropped
    near_dup_window_s: int = Field(3600, gt=0)  # the original "within 1 hour"

    # only ingest these channels (ids or names); empty = all
    channels: Names = ()

    # zip safety caps
    zip_max_member_bytes: int = Field(8 * 1024**3, gt=0)
    zip_max_ratio: float = Field(200.0, gt=0)

    # processes parsing and deriving export files in parallel (the store load stays in the calling process)
    ingest_workers: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1), ge=1)

    # a load of at least this many bytes that also at least doubles the store is a bulk load on PostgreSQL:
    # the dedupe lookup indexes are dropped while it is stored and built again afterwards (store/lookup_indexes.py)
    bulk_load_min_bytes: int = Field(64 * 1024**2, ge=0)
    # a dedupe of the whole store (a first load, a large backfill, --full) on PostgreSQL computes the verdicts in
    # the client, holding every message's inputs in memory, up to this many stored messages; above, the dedupe
    # driver of increments runs over every message
    dedupe_client_max_messages: int = Field(2_000_000, ge=0)

    # ingest progress/log cadence
    progress_every_s: float = Field(5.0, ge=0)

    @model_validator(mode="after")
    def _near_dup_of_the_profile(self) -> Self:
        metric, threshold = PROFILE_NEAR_DUP[self.cleaning_profile]
        for name, value in (("near_dup_metric", metric), ("near_dup_threshold", threshold)):
            if name not in self.model_fields_set:
                object.__setattr__(self, name, value)  # (a default, so not in explicit())
        return self

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
