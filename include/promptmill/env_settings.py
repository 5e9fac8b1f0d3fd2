"""What the three settings objects (store and ingest, labeling, publishing) share: values from the environment and
from overrides (CLI flags, DAG params), converted to each field's declared type.

Precedence everywhere: defaults < environment (``<prefix><FIELD>``) < explicit overrides. An empty environment
variable counts as unset.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_NONE = {"", "none", "null"}


def load(base: Any, environ: Mapping[str, str] | None, overrides: Mapping[str, Any]) -> Any:
    """``base`` with its ``<ENV_PREFIX><FIELD>`` values from ``environ`` (default: the process environment), then
    with ``overrides``: what every settings object's ``from_env`` does."""
    env = os.environ if environ is None else environ
    found = from_environment(type(base), env, base.ENV_PREFIX)
    return base.with_overrides(**found).with_overrides(**overrides)


def from_environment(cls: type, environ: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The fields of dataclass ``cls`` set in ``environ`` as ``<prefix><FIELD NAME>`` (non-empty), as strings."""
    found = {}
    for field in dataclasses.fields(cls):
        value = environ.get(prefix + field.name.upper(), "")
        if value != "":
            found[field.name] = value
    return found


def with_overrides(
    settings: Any,
    overrides: Mapping[str, Any],
    *,
    what: str,
    convert: Callable[[str, Any], Any] | None = None,
    raw: frozenset[str] = frozenset(),
) -> Any:
    """A copy of ``settings`` with the non-None ``overrides``, strings converted to the fields' types.

    ``what`` names the settings in errors ("label setting pack_size: ..."); ``convert(name, value)`` may handle a
    field first (return ``NotImplemented`` to leave it to the type); the fields in ``raw`` keep their strings as
    given (a secret's spaces are part of it).
    """
    hints = typing.get_type_hints(type(settings))
    names = {field.name for field in dataclasses.fields(settings)}
    clean: dict[str, Any] = {}
    for name, value in overrides.items():
        if value is None:
            continue
        if name not in names:
            raise ValueError(f"unknown {what} {name!r}")
        converted = convert(name, value) if convert is not None else NotImplemented
        if converted is NotImplemented:
            converted = value if name in raw else coerce(hints[name], value, f"{what} {name}")
        clean[name] = converted
    return dataclasses.replace(settings, **clean)


def coerce(hint: Any, value: Any, label: str) -> Any:
    """``value`` as the type ``hint`` declares, when it is a string (or a list, for a tuple of strings).

    Optional fields take "", "none" and "null" as None; booleans take 1/0, true/false, yes/no, on/off; paths are
    expanded (~); a tuple of strings takes a comma-separated list. Other values are returned as they are.
    """
    optional = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)] if optional else []
    target = args[0] if args else hint
    if typing.get_origin(target) is tuple:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)):
            return tuple(str(item).strip() for item in value if str(item).strip())
        return value
    if target is Path and isinstance(value, Path):
        return value.expanduser()
    if not isinstance(value, str):
        return value
    text = value.strip()
    if optional and text.lower() in _NONE:
        return None
    try:
        if target is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError("expected a boolean (true/false)")
        if target is int:
            return int(text)
        if target is float:
            return float(text)
        if target is Path:
            return Path(text).expanduser()
    except ValueError as exc:
        raise ValueError(f"{label}: cannot use {value!r}: {exc}") from None
    return text
