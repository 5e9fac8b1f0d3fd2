"""Labeling settings (``PROMPTMILL_LABEL_*``): one frozen, validated object for the CLI, the DAG and the tests.

Precedence and errors: see :mod:`promptmill.settings`. Secrets never live here: the API key is on
:class:`promptmill.labeling.client.ClientConfig`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from promptmill.choices import LabelMode, ReasoningEffort, ServiceTier
from promptmill.settings import SettingsBase, UserPath

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_INSTRUCTIONS_FILE = PACKAGE_DIR / "instructions.md"
DEFAULT_PRICES_FILE = PACKAGE_DIR / "prices.toml"


class LabelSettings(SettingsBase):
    model_config = SettingsConfigDict(env_prefix="PROMPTMILL_LABEL_")
    WHAT = "label setting"

    # what is asked (model + instructions file = the label version)
    model: str = Field("gpt-6-luna", min_length=1)
    instructions_file: UserPath | None = None  # None -> the packaged instructions.md
    temperature: float | None = Field(None, ge=0, le=2)  # None -> the model's default (reasoning models reject others)
    reasoning_effort: ReasoningEffort | None = "none"  # "" / None -> not sent (servers that do not know the field)
    max_tokens: int | None = Field(None, ge=1)  # max_completion_tokens per request; None -> sized from the pack
    max_description_chars: int = Field(200, ge=1)

    # how it is sent
    mode: LabelMode = "sync"
    service_tier: ServiceTier | None = None  # e.g. "flex" (half price, slower) in sync mode
    pack_size: int = Field(25, ge=1)
    concurrency: int = Field(8, ge=1)
    request_timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(8, ge=0)  # per request, for 429 / 5xx / timeouts / connection errors
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    max_retry_after_s: float = Field(300.0, ge=0)  # a longer retry-after stops the run instead of sleeping
    max_rate_limit_wait_s: float = Field(900.0, ge=0)  # per request: total time spent waiting out 429s before giving up
    # the account's limits per minute, for a server that sends no x-ratelimit-* headers (with them, they win)
    rpm_limit: float | None = Field(None, gt=0)
    tpm_limit: float | None = Field(None, gt=0)

    # answers that do not work: a prompt whose well-formed answers were unusable this many times (an invalid
    # description, no answer for it alone), over all runs, is labeled `failed`; a server that sends this many
    # unusable answers in a row (not JSON, no labels array, an HTML page) stops the run, its prompts still pending
    max_attempts: int = Field(3, ge=1)
    max_unusable_answers: int = Field(3, ge=1)

    # how much
    max_usd: float | None = Field(None, ge=0)  # stop taking new requests once the run's spend reaches this
    limit: int | None = Field(None, ge=0)  # label at most this many prompts in one run
    run_key: str | None = None  # the budget scope; None -> a fresh one per run (CLI); the DAG passes its run id
    # How long a run's claim on the prompts it is sending keeps other runs off them. A live run renews its claims
    # every quarter of this; those of a run that died run out after it, and its unanswered prompts are free again.
    claim_lease_s: float = Field(300.0, gt=0)

    # pricing and estimates
    prices_file: UserPath | None = None  # None -> the packaged prices.toml
    # the model's prices (USD per 1M tokens) over the file's; a model in neither costs $0 (a local model)
    price_input: float | None = Field(None, ge=0)
    price_output: float | None = Field(None, ge=0)
    output_tokens_per_item: float = Field(12.0, ge=0)  # estimate fallback until the ledger has a measured average

    # planning (DAG) and batch mode
    batch_prompts: int = Field(500, ge=1)  # prompts per mapped batch descriptor (raised to stay under max_batches)
    batch_poll_s: float = Field(60.0, gt=0)
    batch_max_requests: int = Field(50_000, ge=1)  # Batch API: requests per input file
    batch_max_bytes: int = Field(190 * 1024 * 1024, ge=1)  # Batch API: 200 MB per input file, with headroom

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
