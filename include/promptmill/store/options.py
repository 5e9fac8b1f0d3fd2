"""The options a store's verdicts were computed with: the cleaning profile and the near-duplicate metric, threshold
and window, recorded in the store (``store_options``, one row) so that one store never mixes two rule sets.

- A new store (no row yet) takes the options of the first command that stores or dedupes anything: those it was
  given, else the defaults.
- A command given no options uses the store's; options equal to the store's are fine.
- Other options are applied to the whole store, and then recorded, only by the commands that recompute it:
  ``promptmill reprocess`` (every option), ``promptmill dedupe --full`` (the near-duplicate options: the profile
  is applied when messages are derived, which only ingest and reprocess do), and a DAG run with ``recompute`` on.
  Any other command stops before it changes anything, with :class:`OptionsConflict`: one line saying which
  options the store uses and how to change them.

"Given" means given explicitly: a flag, a DAG param, or a ``PROMPTMILL_*`` variable (settings.explicit()).
The front doors (the CLI's commands, pipeline.py's task bodies) call :func:`settle` before the work and
:func:`record` after a recompute has committed (one stopped halfway leaves the old options with the old verdicts);
ingest_paths, run_dedupe and reprocess compute with the settings they are given. Not covered: an ingest that read
the old options just before a recompute recorded new ones, and dedupes just after it, uses the old ones; change
the options while nothing else writes to the store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from promptmill.settings import PROFILE_NEAR_DUP, Settings
from promptmill.store.schema import store_options

OPTIONS = ("cleaning_profile", "near_dup_metric", "near_dup_threshold", "near_dup_window_s")
NEAR_DUP_OPTIONS = OPTIONS[1:]
FLAGS = {"cleaning_profile": "--profile", "near_dup_metric": "--near-dup-metric",
         "near_dup_threshold": "--near-dup-threshold", "near_dup_window_s": "--near-dup-window"}


@dataclasses.dataclass(frozen=True)
class StoreOptions:
    cleaning_profile: str
    near_dup_metric: str
    near_dup_threshold: float
    near_dup_window_s: int

    @classmethod
    def of(cls, settings: Settings) -> StoreOptions:
        return cls(*(getattr(settings, name) for name in OPTIONS))

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flags(self) -> str:
        return describe(self.as_dict())


class OptionsConflict(ValueError):
    """Options that differ from the store's, asked of a command that does not recompute the whole store."""


def describe(values: Mapping[str, Any], *, dag: bool = False, sources: Mapping[str, str | None] | None = None) -> str:
    """``--profile parity --near-dup-metric jaro`` (or ``cleaning_profile=parity ...`` for the DAG), each value
    followed by the variable it came from, if any."""
    parts = []
    for name in OPTIONS:
        if name in values:
            source = (sources or {}).get(name)
            word = f"{name}={values[name]}" if dag else f"{FLAGS[name]} {values[name]}"
            parts.append(f"{word} ({source})" if source else word)
    return " ".join(parts)


def read(conn: Connection | Engine) -> StoreOptions | None:
    """The store's options, or None when none were recorded yet."""
    if isinstance(conn, Engine):
        with conn.connect() as connection:
            return read(connection)
    row = conn.execute(sa.select(*(store_options.c[name] for name in OPTIONS))).first()
    return StoreOptions(*row) if row is not None else None


def record(conn: Connection | Engine, chosen: StoreOptions, *, replace: bool = True) -> StoreOptions:
    """Record ``chosen`` (with ``replace=False`` only if the store has no options yet); returns the store's."""
    if isinstance(conn, Engine):
        with conn.begin() as connection:
            return record(connection, chosen, replace=replace)
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    values = {**chosen.as_dict(), "recorded_at": datetime.now(UTC)}
    statement = insert(store_options).values(id=1, **values)
    if replace:
        statement = statement.on_conflict_do_update(index_elements=["id"], set_=values)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=["id"])
    conn.execute(statement)
    return read(conn)


def resolve(
    requested: Mapping[str, Any],
    stored: StoreOptions,
    *,
    may_change: Collection[str] = (),
    dag: bool = False,
    sources: Mapping[str, str | None] | None = None,
) -> StoreOptions:
    """The options to compute with: ``stored``, with the ``requested`` ones that differ when ``may_change`` names
    them all (the caller then applies them to the whole store and records them); else OptionsConflict."""
    differ = {name: value for name, value in requested.items() if value != getattr(stored, name)}
    if not differ:
        return stored
    if set(differ) <= set(may_change):
        if "cleaning_profile" in differ:
            # a new profile brings its own near-duplicate rule, unless one was asked for
            metric, threshold = PROFILE_NEAR_DUP[differ["cleaning_profile"]]
            differ = {"near_dup_metric": metric, "near_dup_threshold": threshold, **differ}
            if not set(differ) <= set(may_change):
                differ = {name: value for name, value in differ.items() if name in may_change}
        return dataclasses.replace(stored, **differ)
    asked = describe(differ, dag=dag, sources=sources)
    if dag:
        how = "trigger a run with the param recompute on, or leave the params empty to use the store's"
    else:
        command = "reprocess" if "cleaning_profile" in differ else "dedupe --full"
        option = "option" if len(differ) == 1 else "options"
        how = f"run `promptmill {command} {describe(differ)}`, or leave the {option} out to use the store's"
    raise OptionsConflict(
        f"this store's verdicts use {describe(stored.as_dict(), dag=dag)}, not {asked}; "
        f"to apply {'that' if len(differ) == 1 else 'those'} to the whole store {how}"
    )


def settle(
    engine: Engine,
    settings: Settings,
    *,
    may_change: Collection[str] = (),
    requested: Mapping[str, Any] | None = None,
    dag: bool = False,
) -> Settings:
    """``settings`` with the options to compute with (see the module docstring); on a new store they are recorded
    now. ``requested``: the options asked for (default: the ones ``settings`` was given explicitly)."""
    if requested is None:
        given = settings.explicit()
        requested = {name: getattr(settings, name) for name in OPTIONS if name in given}
    stored = read(engine) or record(engine, StoreOptions.of(settings), replace=False)
    sources = {name: settings.source_of(name) for name in requested}
    chosen = resolve(requested, stored, may_change=may_change, dag=dag, sources=sources)
    return settings.with_overrides(**chosen.as_dict())
