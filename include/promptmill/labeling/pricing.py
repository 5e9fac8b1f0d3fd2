"""Prices come from a TOML table in configuration (prices.toml or PROMPTMILL_LABEL_PRICES_FILE), never code."""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PER_TOKENS = 1_000_000


log = logging.getLogger("promptmill.labeling")


class PriceError(Exception):
    """The price table is unreadable or has no entry for a model. Names the file."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input: float
    output: float
    cached_input: float | None = None  # None -> cached tokens billed as input
    cache_write: float | None = None  # None -> cache writes billed as input


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0  # includes reasoning tokens, as the API reports them
    cached_tokens: int = 0  # part of prompt_tokens
    cache_write_tokens: int = 0  # part of prompt_tokens
    reasoning_tokens: int = 0  # part of completion_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def astuple(self) -> tuple[int, ...]:
        return (
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
        )

    @classmethod
    def from_api(cls, usage: Any) -> Usage:
        """From an SDK usage object or its dict form (batch output lines); absent parts count as 0."""
        if usage is None:
            return cls()
        get = usage.get if isinstance(usage, dict) else lambda k, d=None: getattr(usage, k, d)
        prompt_details = get("prompt_tokens_details") or {}
        completion_details = get("completion_tokens_details") or {}

        def detail(obj: Any, key: str) -> int:
            value = obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
            return int(value or 0)

        return cls(
            prompt_tokens=int(get("prompt_tokens") or 0),
            completion_tokens=int(get("completion_tokens") or 0),
            cached_tokens=detail(prompt_details, "cached_tokens"),
            cache_write_tokens=int(get("cache_write_tokens") or 0) or detail(prompt_details, "cache_write_tokens"),
            reasoning_tokens=detail(completion_details, "reasoning_tokens"),
        )


@dataclass(frozen=True, slots=True)
class PriceTable:
    models: dict[str, ModelPrice]
    tiers: dict[str, float]
    source: str

    def price(self, model: str) -> ModelPrice:
        try:
            return self.models[model]
        except KeyError:
            raise PriceError(
                f"no price for model {model!r} in {self.source}; add a [models.\"{model}\"] entry "
                "(input, output, optional cached_input and cache_write; USD per 1M tokens)"
            ) from None

    def tier_factor(self, tier: str) -> float:
        try:
            return self.tiers[tier]
        except KeyError:
            raise PriceError(f"no price tier {tier!r} in {self.source} (known: {', '.join(self.tiers)})") from None

    def cost(self, model: str, usage: Usage, tier: str = "default") -> float:
        """USD for one request's usage at ``tier`` (default | batch | flex)."""
        p = self.price(model)
        cached = usage.cached_tokens
        written = usage.cache_write_tokens
        uncached = max(usage.prompt_tokens - cached - written, 0)
        total = (
            uncached * p.input
            + cached * (p.cached_input if p.cached_input is not None else p.input)
            + written * (p.cache_write if p.cache_write is not None else p.input)
            + usage.completion_tokens * p.output
        )
        return total * self.tier_factor(tier) / PER_TOKENS


@lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> PriceTable:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceError(f"cannot read the price table {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PriceError(f"the price table {path} is not valid TOML: {exc}") from None
    models: dict[str, ModelPrice] = {}
    for name, entry in (data.get("models") or {}).items():
        try:
            models[name] = ModelPrice(
                input=float(entry["input"]),
                output=float(entry["output"]),
                cached_input=float(entry["cached_input"]) if "cached_input" in entry else None,
                cache_write=float(entry["cache_write"]) if "cache_write" in entry else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PriceError(f"the price table {path}: model {name!r} needs numeric input and output ({exc})") from None
    tiers = {"default": 1.0, **{k: float(v) for k, v in (data.get("tiers") or {}).items()}}
    return PriceTable(models=models, tiers=tiers, source=str(path))


_warned_free: set[str] = set()


def prices_for(settings: Any) -> PriceTable:
    """The price table of a run: the file's (settings.effective_prices_file), with the model's prices from the
    settings (--price-input / --price-output, USD per 1M tokens) when given. A model the table does not know
    and no prices given (a local model under vLLM, Ollama, llama.cpp, LM Studio) costs $0, with one warning."""
    table = load_prices(settings.effective_prices_file)
    model = settings.model
    given = (settings.price_input, settings.price_output)
    if given != (None, None):
        known = table.models.get(model)
        price = ModelPrice(
            input=given[0] if given[0] is not None else (known.input if known else 0.0),
            output=given[1] if given[1] is not None else (known.output if known else 0.0),
        )
    elif model in table.models:
        return table
    else:
        if model not in _warned_free:
            _warned_free.add(model)
            log.warning("no price for model %r in %s: its tokens are counted at $0 (give --price-input and "
                        "--price-output, USD per 1M tokens, to count them)", model, table.source)
        price = ModelPrice(input=0.0, output=0.0)
    return PriceTable(models={**table.models, model: price}, tiers=table.tiers, source=table.source)


def load_prices(path: Path) -> PriceTable:
    path = Path(path).resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise PriceError(f"cannot read the price table {path}: {exc.strerror or exc}") from None
    return _load(path, mtime)
