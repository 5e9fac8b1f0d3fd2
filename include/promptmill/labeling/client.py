"""The OpenAI client for labeling: AsyncOpenAI with our own retries, a global cool-down and bounded concurrency.

The SDK's retries are off (max_retries=0): retrying here makes the cool-down global (one 429 pauses every worker,
so a burst does not become a storm) and lets the ledger count retries.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import openai

from promptmill.labeling.errors import FatalAPIError, RetriesExhausted
from promptmill.labeling.pacing import Pacer
from promptmill.labeling.settings import LabelSettings
from promptmill.labeling.tokens import chat_prompt_tokens

log = logging.getLogger("promptmill.labeling")

T = TypeVar("T")
CONNECT_TIMEOUT_S = 10.0
_RETRYABLE_STATUS = {408, 409}


NO_KEY = "no-key"


@dataclass(frozen=True, slots=True, repr=False)
class ClientConfig:
    """Where and as whom to call. The API key never appears in repr/str/logs."""

    api_key: str | None = None
    base_url: str | None = None
    organization: str | None = None
    project: str | None = None
    timeout: float | None = None  # None -> LabelSettings.request_timeout_s
    default_headers: tuple[tuple[str, str], ...] = field(default=())

    def __repr__(self) -> str:
        key = "<redacted>" if self.api_key else "<missing>"
        return (
            f"ClientConfig(api_key={key}, base_url={self.base_url!r}, organization={self.organization!r}, "
            f"project={self.project!r}, timeout={self.timeout!r})"
        )

    __str__ = __repr__

    def __reduce__(self):  # pickling would carry the key into XCom/logs; build it where it is used instead
        raise TypeError("ClientConfig holds a secret and is not picklable; rebuild it from its source")

    @property
    def server(self) -> str:
        return self.base_url or "https://api.openai.com/v1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, base_url: str | None = None) -> ClientConfig:
        """From OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_ORG_ID / OPENAI_PROJECT_ID; ``base_url`` (--base-url) wins."""
        env = os.environ if environ is None else environ
        timeout = env.get("OPENAI_TIMEOUT") or None
        return cls(
            api_key=env.get("OPENAI_API_KEY") or None,
            base_url=base_url or env.get("OPENAI_BASE_URL") or None,
            organization=env.get("OPENAI_ORG_ID") or None,
            project=env.get("OPENAI_PROJECT_ID") or None,
            timeout=float(timeout) if timeout else None,
        )

    @classmethod
    def from_connection(
        cls, *, password: str | None, host: str | None, extra: Mapping[str, Any] | None = None
    ) -> ClientConfig:
        """From the fields of an Airflow ``openai`` connection (password = key, host = base URL, extras)."""
        extra = dict(extra or {})
        kwargs = dict(extra.get("openai_client_kwargs") or {})
        for key in ("organization", "project", "timeout", "base_url", "api_key"):
            if key in extra and key not in kwargs:
                kwargs[key] = extra[key]
        timeout = kwargs.get("timeout")
        headers = kwargs.get("default_headers") or {}
        return cls(
            api_key=kwargs.get("api_key") or password or None,
            base_url=kwargs.get("base_url") or host or None,
            organization=kwargs.get("organization") or None,
            project=kwargs.get("project") or None,
            timeout=float(timeout) if timeout not in (None, "") else None,
            default_headers=tuple(sorted((str(k), str(v)) for k, v in headers.items())),
        )


@dataclass(slots=True)
class CallResult:
    value: Any
    request_id: str | None
    latency_s: float
    retries: int


@dataclass(slots=True)
class ClientStats:
    calls: int = 0
    retries: int = 0
    rate_limited: int = 0
    cooldown_s: float = 0.0
    paced_s: float = 0.0  # time spent waiting for the rate limits' refill before sending (see pacing.py)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """The server's requested wait: ``retry-after-ms`` first, then ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(float(raw_ms) / 1000.0, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw:
        try:
            return max(float(raw), 0.0)
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(raw) if raw else None
            if parsed is not None:
                return max(parsed.timestamp() - time.time(), 0.0)
    return None


def _error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict):
        code = body.get("code") or body.get("type")
        return str(code) if code else None
    return exc.code


def _error_text(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return exc.message


class LabelClient:
    """Use as ``async with LabelClient(config, settings) as client: await client.call(...)``."""

    def __init__(
        self,
        config: ClientConfig,
        settings: LabelSettings,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.settings = settings
        self.stats = ClientStats()
        self._sleep = sleep
        self._rng = rng
        self._cooldown_until = 0.0
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        self._openai: openai.AsyncOpenAI | None = None
        self.pacer = Pacer(settings.rpm_limit, settings.tpm_limit, sleep=sleep)
        self._output_tokens = 0  # answered so far, and for how many items: the output estimate of the next ones
        self._output_items = 0

    async def __aenter__(self) -> LabelClient:
        if not self.config.api_key and not self.config.base_url:
            raise FatalAPIError(
                f"no API key for {self.config.server}: set OPENAI_API_KEY or the password of the "
                "'openai_default' connection (a local server given by OPENAI_BASE_URL or --base-url needs none)"
            )
        import httpx2

        timeout = self.config.timeout or self.settings.request_timeout_s
        self._openai = openai.AsyncOpenAI(
            # A local OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio) usually takes no key; the
            # client library insists on one, and such servers ignore the header.
            api_key=self.config.api_key or NO_KEY,
            base_url=self.config.base_url,
            organization=self.config.organization,
            project=self.config.project,
            timeout=httpx2.Timeout(timeout, connect=min(CONNECT_TIMEOUT_S, timeout)),
            max_retries=0,
            default_headers=dict(self.config.default_headers) or None,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._openai is not None:
            await self._openai.close()
            self._openai = None

    @property
    def openai(self) -> openai.AsyncOpenAI:
        if self._openai is None:
            raise RuntimeError("LabelClient used outside 'async with'")
        return self._openai

    async def chat(self, body: dict[str, Any], *, items: int) -> CallResult:
        """One Chat Completions request carrying ``items`` prompts, paced to the rate limits, retried on transient
        errors; ``value`` is the parsed ChatCompletion."""
        estimate = self._estimate_tokens(body, items)

        async def send():
            sent_at = None
            if self.pacer.active:
                before = self.pacer.waited_s
                sent_at = await self.pacer.reserve(estimate)
                self.stats.paced_s += self.pacer.waited_s - before
            raw = await self.openai.chat.completions.with_raw_response.create(**body)
            self.pacer.follow(raw.headers, sent_at)
            value = raw.parse()
            usage = getattr(value, "usage", None)
            if usage is not None and items:
                self._output_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
                self._output_items += items
            return value, raw.headers.get("x-request-id")

        return await self.call("chat completion", send)

    def _estimate_tokens(self, body: dict[str, Any], items: int) -> float:
        """What a request counts against the token limit: its input counted offline, its output at the average
        measured so far (max_completion_tokens before the first answer)."""
        prompt = chat_prompt_tokens(body.get("messages") or [])
        if self._output_items:
            return prompt + self._output_tokens / self._output_items * max(items, 1)
        return prompt + int(body.get("max_completion_tokens") or 0)

    async def call(self, what: str, send: Callable[[], Awaitable[tuple[T, str | None]]]) -> CallResult:
        """Run ``send`` (returning (value, request id)) under the concurrency bound with retries and cool-down."""
        retries = 0
        failures = 0  # errors other than a rate limit the server told us how long to wait for
        waited_for_rate_limit = 0.0
        async with self._semaphore:
            while True:
                await self._wait_for_cooldown()
                started = time.monotonic()
                self.stats.calls += 1
                paced = False
                try:
                    value, request_id = await send()
                    return CallResult(value, request_id, time.monotonic() - started, retries)
                except openai.APIStatusError as exc:
                    self.pacer.follow(exc.response.headers)
                    delay, reason = self._classify(what, exc, retries)
                    paced = exc.status_code == 429 and delay is not None
                except openai.APIConnectionError as exc:  # includes APITimeoutError
                    kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "could not connect"
                    reason = f"{what} {kind} ({self.config.server})"
                    delay = None
                # A rate limit with a server-given wait is pacing, not failure: it is bounded by total wait
                # time rather than by the retry count, so a saturated limit does not abort the run.
                if paced:
                    waited_for_rate_limit += delay
                    if waited_for_rate_limit > self.settings.max_rate_limit_wait_s:
                        raise RetriesExhausted(
                            f"{reason}; still rate limited after waiting {waited_for_rate_limit:.0f} s",
                            retries=retries,
                        )
                else:
                    if failures >= self.settings.max_retries:
                        raise RetriesExhausted(f"{reason}; gave up after {failures} retries", retries=retries)
                    failures += 1
                if delay is None:
                    delay = self._backoff(failures)
                retries += 1
                self.stats.retries += 1
                log.log(logging.INFO if paced else logging.WARNING, "%s; retry %d in %.2f s", reason, retries, delay)
                await self._sleep(delay)

    def _classify(self, what: str, exc: openai.APIStatusError, retries: int) -> tuple[float | None, str]:
        """(delay or None for backoff, reason) for a retryable error; raises FatalAPIError otherwise."""
        status = exc.status_code
        code = _error_code(exc)
        text = _error_text(exc)
        server = self.config.server
        if status in (401, 403):
            raise FatalAPIError(
                f"{server} refused the credentials ({status} {code or ''}): {text}. Check the API key, "
                "organization and project", status=status, code=code,
            )
        if status == 429 and code == "insufficient_quota":
            raise FatalAPIError(f"{server}: insufficient quota (429): {text}", status=status, code=code)
        if status == 404:
            raise FatalAPIError(
                f"{server}: unknown model {self.settings.model!r} or endpoint (404 {code or ''}): {text}",
                status=status, code=code,
            )
        retry_after = retry_after_seconds(exc.response.headers)
        if status == 429:
            self.stats.rate_limited += 1
            wait = retry_after if retry_after is not None else self._backoff(retries)
            # Jitter spreads the restart; the cool-down makes every worker wait, not only this one.
            if wait > self.settings.max_retry_after_s:
                raise FatalAPIError(
                    f"{server}: rate limit asks to wait {wait:.0f} s (over max_retry_after_s="
                    f"{self.settings.max_retry_after_s:.0f}): {text}", status=status, code=code,
                )
            # Jitter spreads the restart; the cool-down makes every worker wait, not only this one.
            wait *= 1.0 + 0.1 * self._rng()
            self._start_cooldown(wait)
            return wait, f"{what} rate limited (429 {code or ''})"
        if status >= 500 or status in _RETRYABLE_STATUS:
            return retry_after, f"{what} failed with {status} at {server}: {text}"
        raise FatalAPIError(f"{server} rejected the {what} ({status} {code or ''}): {text}", status=status, code=code)

    def _backoff(self, retries: int) -> float:
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_base_s * (2**retries))
        return ceiling * (0.5 + 0.5 * self._rng())

    def _start_cooldown(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        if until > self._cooldown_until:
            self._cooldown_until = until
            self.stats.cooldown_s += seconds

    async def _wait_for_cooldown(self) -> None:
        waited = False
        while (remaining := self._cooldown_until - time.monotonic()) > 0:
            waited = True
            await self._sleep(remaining)
        if waited:  # do not all restart in the same millisecond
            await self._sleep(self._rng() * 0.1)
