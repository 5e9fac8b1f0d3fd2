"""Labeling settings: one frozen object for the CLI, the DAG and the tests.

Precedence: defaults < environment (``PROMPTMILL_LABEL_<FIELD>``) < explicit overrides (CLI flags, DAG params).
Secrets never live here: the API key is on :class:`promptmill.labeling.client.ClientConfig`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptmill import env_settings

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_INSTRUCTIONS_FILE = PACKAGE_DIR / "instructions.md"
DEFAULT_PRICES_FILE = PACKAGE_DIR / "prices.toml"

MODES = ("sync", "batch")
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True, slots=True)
class LabelSettings:
    # what is asked (model + instructions file = the label version)
    model: str = "gpt-6-luna"
    instructions_file: Path | None = None  # None -> the packaged instructions.md
    temperature: float | None = None  # None -> the model's default (reasoning models reject others)
    reasoning_effort: str | None = "none"  # "" / None -> not sent (servers that do not know the field)
    max_tokens: int | None = None  # max_completion_tokens per request; None -> sized from the pack
    max_description_chars: int = 200

    # how it is sent
    mode: str = "sync"  # sync | batch
    service_tier: str | None = None  # e.g. "flex" (half price, slower) in sync mode
    pack_size: int = 25
    concurrency: int = 8
    request_timeout_s: float = 120.0
    max_retries: int = 8  # per request, for 429 / 5xx / timeouts / connection errors
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 300.0  # a longer retry-after stops the run instead of sleeping
    max_rate_limit_wait_s: float = 900.0  # per request: total time spent waiting out 429s before giving up

    # how much
    max_usd: float | None = None  # stop taking new requests once the run's spend reaches this
    limit: int | None = None  # label at most this many prompts in one run
    run_key: str | None = None  # the budget scope; None -> a fresh one per run (CLI); the DAG passes its run id
    # How long a run's claim on the prompts it is sending keeps other runs off them. A live run renews its claims
    # every quarter of this; those of a run that died run out after it, and its unanswered prompts are free again.
    claim_lease_s: float = 300.0

    # pricing and estimates
    prices_file: Path | None = None  # None -> the packaged prices.toml
    output_tokens_per_item: float = 12.0  # estimate fallback until the ledger has a measured average

    # planning (DAG) and batch mode
    batch_prompts: int = 500  # prompts per mapped batch descriptor (raised to stay under max_batches)
    batch_poll_s: float = 60.0
    batch_max_requests: int = 50_000  # Batch API: requests per input file
    batch_max_bytes: int = 190 * 1024 * 1024  # Batch API: 200 MB per input file, with headroom

    ENV_PREFIX = "PROMPTMILL_LABEL_"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"label mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.service_tier is not None and self.service_tier not in SERVICE_TIERS:
            raise ValueError(f"service_tier must be one of {', '.join(SERVICE_TIERS)}, got {self.service_tier!r}")
        if self.reasoning_effort and self.reasoning_effort not in REASONING_EFFORTS:
            raise ValueError(
                f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}, got {self.reasoning_effort!r}"
            )
        for name in ("pack_size", "concurrency", "batch_prompts", "batch_max_requests"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit must not be negative, got {self.limit}")
        if self.max_usd is not None and self.max_usd < 0:
            raise ValueError(f"max_usd must not be negative, got {self.max_usd}")

    @property
    def effective_instructions_file(self) -> Path:
        return Path(self.instructions_file) if self.instructions_file else DEFAULT_INSTRUCTIONS_FILE

    @property
    def effective_prices_file(self) -> Path:
        return Path(self.prices_file) if self.prices_file else DEFAULT_PRICES_FILE

    @property
    def price_tier(self) -> str:
        """Which price multiplier applies to this run's requests."""
        if self.mode == "batch":
            return "batch"
        return self.service_tier if self.service_tier == "flex" else "default"

    def with_overrides(self, **overrides: Any) -> LabelSettings:
        """Apply non-None overrides (CLI flags / DAG params), converting strings to the field types."""
        return env_settings.with_overrides(self, overrides, what="label setting")

    @classmethod
    def from_env(cls, environ: typing.Mapping[str, str] | None = None, **overrides: Any) -> LabelSettings:
        return env_settings.load(cls(), environ, overrides)
