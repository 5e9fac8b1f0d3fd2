"""Pacing requests to the server's rate limits before sending them, instead of learning them from 429s.

OpenAI's limits are token buckets per minute (requests and tokens), refilled continuously; every answer reports
the account's state in ``x-ratelimit-limit-*`` (per minute), ``x-ratelimit-remaining-*`` and
``x-ratelimit-reset-*`` (the time until the bucket is full again) headers. The pacer keeps a copy of both buckets:
a request first reserves one request and its estimated tokens (input counted offline, output at the measured
average, or at max_completion_tokens until there is one), waiting for the refill when they do not fit. Each
answer's headers bring the copy down to what the server says remains, so several processes labeling for one
account (mapped tasks on several workers) follow the account's state instead of each assuming it owns the whole
limit. Without headers (many local servers) and without configured limits, nothing is paced: the client's
retry-after handling and global cool-down remain, as they do when a 429 happens anyway.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "120ms", "1h2m3.5s", or plain seconds) -> seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text:
        return None
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


class Bucket:
    """One limit (requests or tokens): per-minute rate, capacity and the level as last known, refilled
    continuously."""

    def __init__(self, per_minute: float | None = None) -> None:
        self.rate: float | None = per_minute / 60.0 if per_minute else None
        self.capacity = float(per_minute) if per_minute else 0.0
        self.level = self.capacity
        self.stamp = time.monotonic()
        # What other processes on the account spend per second, as the headers show it (smoothed): this process
        # refills only with the rest, so that several share the limit instead of each assuming it owns it all.
        self.others_rate = 0.0
        self._previous: tuple[float, float] | None = None  # (sent_at, server's level) of the last answer followed

    def refill(self, now: float) -> None:
        if self.rate is not None:
            own = max(self.rate - self.others_rate, self.rate * 0.1)
            self.level = min(self.capacity, self.level + (now - self.stamp) * own)
        self.stamp = now

    def _learn_others(self, left: float, sent_at: float, own_between) -> None:
        """What the server's level did between two answered requests, less this process's own reservations in
        between, is what the others spent (smoothed). Only while the bucket was not full (a full one refills
        nothing, so the arithmetic would not hold)."""
        previous, self._previous = self._previous, (sent_at, left)
        if previous is None or sent_at <= previous[0]:
            return
        elapsed = sent_at - previous[0]
        refilled = previous[1] + elapsed * self.rate
        if refilled >= self.capacity:
            self.others_rate *= 0.8
            return
        others = max(0.0, refilled - left - own_between(previous[0], sent_at)) / elapsed
        if others < 0.2 * self.rate:  # within what this process's own estimates and the timing get wrong
            others = 0.0
        self.others_rate = 0.7 * self.others_rate + 0.3 * min(others, self.rate * 0.9)

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` fits (0: it fits now); an amount over the capacity waits for a full bucket."""
        if self.rate is None:
            return 0.0
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        if self.rate is not None:
            self.level -= min(amount, self.capacity)

    def follow(self, limit: str | None, remaining: str | None, reset: str | None, now: float,
               since: float = 0.0, sent_at: float | None = None, own_between=None) -> None:
        """The server's view: its per-minute limit, what remains and how long until full, as of the request sent
        at ``sent_at``; ``since``: what this process reserved after that request (not counted by the server yet);
        ``own_between(t0, t1)``: what this process reserved between two times (to tell its own spending from the
        other processes')."""
        try:
            per_minute = float(limit) if limit else None
            left = float(remaining) if remaining is not None and remaining != "" else None
        except ValueError:
            return
        if not per_minute or per_minute <= 0:
            return
        self.refill(now)
        first = self.rate is None
        self.rate = per_minute / 60.0
        until_full = parse_duration(reset)
        if left is not None and until_full is not None:
            self.capacity = min(per_minute, left + until_full * self.rate) or per_minute
        elif first:
            self.capacity = per_minute
        if left is not None:
            # Lower only: another process may have spent what this one did not; what this one reserved after the
            # answered request is not in the server's figure yet.
            if sent_at is not None and own_between is not None:
                self._learn_others(left, sent_at, own_between)
            # the server's figure is as of the answered request's arrival: refilled since, less what this process
            # reserved after it
            refilled = left if sent_at is None else min(self.capacity, left + (now - sent_at) * self.rate)
            observed = refilled - since
            self.level = observed if first else min(self.level, observed)


class Pacer:
    """Reserve before sending; follow every answer's headers. ``rpm`` / ``tpm`` (settings) start the buckets for
    a server that sends no headers."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.requests = Bucket(rpm)
        self.tokens = Bucket(tpm)
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self.waited_s = 0.0
        self._reserved: deque[tuple[float, float]] = deque()  # (when, tokens) of the last minute's reservations

    @property
    def active(self) -> bool:
        return self.requests.rate is not None or self.tokens.rate is not None

    async def reserve(self, tokens: float) -> float:
        """Wait until one request and ``tokens`` fit the buckets, then take them; returns when (pass it to
        :meth:`follow` with the answer). In order: one waiter at a time, so a large request is not starved."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self.requests.refill(now)
                self.tokens.refill(now)
                wait = max(self.requests.wait_for(1), self.tokens.wait_for(tokens))
                if wait <= 0:
                    self.requests.take(1)
                    self.tokens.take(tokens)
                    self._reserved.append((now, tokens))
                    while self._reserved and self._reserved[0][0] < now - 60:
                        self._reserved.popleft()
                    return now
                self.waited_s += wait
                await self._sleep(wait)

    def follow(self, headers: Mapping[str, str] | None, sent_at: float | None = None) -> None:
        """An answer's headers, for the request reserved at ``sent_at`` (None: only lower the buckets)."""
        if not headers:
            return
        now = time.monotonic()
        later = [tokens for when, tokens in self._reserved if sent_at is not None and when > sent_at]

        def own_requests(t0: float, t1: float) -> float:
            return float(sum(1 for when, _ in self._reserved if t0 < when <= t1))

        def own_tokens(t0: float, t1: float) -> float:
            return float(sum(tokens for when, tokens in self._reserved if t0 < when <= t1))

        for bucket, kind, since, own in ((self.requests, "requests", float(len(later)), own_requests),
                                         (self.tokens, "tokens", float(sum(later)), own_tokens)):
            bucket.follow(headers.get(f"x-ratelimit-limit-{kind}"), headers.get(f"x-ratelimit-remaining-{kind}"),
                          headers.get(f"x-ratelimit-reset-{kind}"), now, since if sent_at is not None else 0.0,
                          sent_at=sent_at, own_between=own)
