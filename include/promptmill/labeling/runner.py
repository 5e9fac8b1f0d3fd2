"""Sync mode: label pending prompts through Chat Completions, several per request, committing each answer.

Flow per request: take a pack from the queue (re-queued items first), send it, join the answer back on ids,
commit the ledger row and the labels in one transaction, then re-queue what came back missing (in smaller
packs, finally alone) or invalid (re-asked alone once). Budget and limit are checked before each new request.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from promptmill.labeling.client import ClientConfig, LabelClient
from promptmill.labeling.contract import NO_OBJECT, RequestShape, check_answer
from promptmill.labeling.errors import FatalAPIError, LabelingError, RetriesExhausted
from promptmill.labeling.holders import ClaimHolder
from promptmill.labeling.ledger import (
    LabelOutcome,
    RequestRecord,
    VersionInfo,
    claim_prompts,
    commit_request,
    count_attempts,
    count_pending,
    ensure_version,
    fetch_pending,
    purge_expired_claims,
    release_claims,
    release_unlabeled_claims,
    renew_claims,
    run_spend,
)
from promptmill.labeling.pricing import PriceTable, Usage, prices_for
from promptmill.labeling.settings import LabelSettings
from promptmill.labeling.tokens import chat_prompt_tokens
from promptmill.progress import Progress

log = logging.getLogger("promptmill.labeling")

FETCH_CHUNK = 2000
PROGRESS_EVERY_S = 5.0


@dataclass(slots=True)
class WorkItem:
    prompt_id: int
    text: str
    level: int = 0  # how many times it came back missing (pack size halves each time)
    alone: bool = False  # sent alone from now on (its last answer was unusable for it alone)


@dataclass(slots=True)
class LabelSummary:
    run_key: str
    version: str
    model: str
    labeled: int = 0  # ok labels written (no_object included)
    no_object: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    spend_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    requeued_missing: int = 0
    reasked_invalid: int = 0  # answers unusable for one prompt, sent again alone (bounded by max_attempts)
    unusable_answers: int = 0  # answers unusable as a whole (not JSON, no labels array, an HTML page)
    unknown_ids: int = 0
    duplicate_ids: int = 0
    claimed_elsewhere: int = 0  # left to another run that claimed them first (never sent by this one)
    taken_from_dead_runs: int = 0  # claims of runs that died (kill -9, a lost machine) released at the start
    pending_left: int = 0  # still pending in scope when the run ended (what is left, whatever the reason)
    held_by_live_runs: int = 0  # of those, claimed by another run that is still running
    total: int = 0  # pending prompts in scope at the start (after the limit)
    stopped_by: str = "done"  # done | budget | limit | error
    budget_note: str | None = None  # why the budget stopped the run, in figures
    fallbacks: list[str] = field(default_factory=list)  # request fields the server rejected, and what was sent
    error: str | None = None
    elapsed_s: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens"] = self.tokens
        data["spend_usd"] = round(self.spend_usd, 8)
        return data


ProgressCallback = Callable[[Progress], None]  # called with each progress line's Progress


class PackQueue:
    """Fresh pending prompts (read from the database in id order) plus the re-queued ones."""

    def __init__(
        self,
        engine: Engine,
        version: str,
        pack_size: int,
        *,
        first_id: int | None,
        last_id: int | None,
        limit: int | None,
        run_key: str,
    ) -> None:
        self._engine = engine
        self._version = version
        self._run_key = run_key
        self._pack_size = pack_size
        self._cursor = first_id - 1 if first_id is not None else None
        self._last_id = last_id
        self._limit = limit
        self._taken = 0
        self._fresh: deque[WorkItem] = deque()
        self._fresh_done = False
        self.retry: deque[WorkItem] = deque()
        self.limit_reached = False

    def pack_size_for(self, item: WorkItem) -> int:
        return 1 if item.alone else max(1, self._pack_size >> item.level)

    def next_pack(self) -> list[WorkItem] | None:
        if self.retry:
            size = self.pack_size_for(self.retry[0])
            pack = [self.retry.popleft()]
            while self.retry and len(pack) < size and self.pack_size_for(self.retry[0]) == size:
                pack.append(self.retry.popleft())
            return pack
        self._refill()
        if not self._fresh:
            return None
        pack = [self._fresh.popleft() for _ in range(min(self._pack_size, len(self._fresh)))]
        return pack

    def _refill(self) -> None:
        if len(self._fresh) >= self._pack_size or self._fresh_done:
            return
        want = FETCH_CHUNK
        if self._limit is not None:
            want = min(want, self._limit - self._taken)
            if want <= 0:
                self._fresh_done = True
                self.limit_reached = True
                return
        with self._engine.connect() as conn:
            rows = fetch_pending(
                conn, self._version, after_id=self._cursor, last_id=self._last_id, limit=want, run_key=self._run_key
            )
        if len(rows) < want:
            self._fresh_done = True
        if rows:
            self._cursor = rows[-1][0]
            self._taken += len(rows)
            self._fresh.extend(WorkItem(int(pid), text) for pid, text in rows)
        if self._limit is not None and self._taken >= self._limit:
            self._fresh_done = True
            self.limit_reached = True


class SyncLabeler:
    def __init__(
        self,
        engine: Engine,
        settings: LabelSettings,
        client_config: ClientConfig,
        *,
        progress: ProgressCallback | None = None,
        client: LabelClient | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.client_config = client_config
        self.prices: PriceTable = prices_for(settings)  # a bad price table fails here, before any request
        self.run_key = settings.run_key or f"run-{uuid.uuid4().hex}"
        self.progress = progress
        self._client = client
        self.info: VersionInfo | None = None
        self.summary: LabelSummary | None = None
        self._reserved_usd = 0.0
        self._started = 0.0
        self._meter: Progress | None = None
        self._done = 0
        self._proven = False  # a usable answer came back: fan out to `concurrency` requests only then
        self._unusable_streak = 0

    async def run(self, *, first_id: int | None = None, last_id: int | None = None) -> LabelSummary:
        settings = self.settings
        self.info = ensure_version(self.engine, settings)
        self._shape = RequestShape(settings, self.info.instructions)
        self.holder = ClaimHolder(self.engine)
        try:
            return await self._run(first_id, last_id)
        finally:
            try:
                # Nothing of this run is in flight any more: what it claimed and did not label is free at once.
                with self.engine.begin() as conn:
                    release_unlabeled_claims(conn, self.info.version, self.holder.token)
            finally:
                self.holder.close()

    async def _run(self, first_id: int | None, last_id: int | None) -> LabelSummary:
        settings = self.settings
        assert self.info is not None
        with self.engine.begin() as conn:
            taken_over = purge_expired_claims(conn)
        summary = self.summary = LabelSummary(run_key=self.run_key, version=self.info.version, model=settings.model)
        summary.taken_from_dead_runs = taken_over
        self._started = time.monotonic()
        with self.engine.connect() as conn:
            in_scope = count_pending(conn, self.info.version, first_id=first_id, last_id=last_id, run_key=self.run_key)
        summary.total = min(in_scope, settings.limit) if settings.limit is not None else in_scope
        self._meter = Progress("labeled", total=summary.total, unit="prompts", every_s=PROGRESS_EVERY_S, logger=log,
                               on_report=self.progress, separator=" ")
        queue = PackQueue(self.engine, self.info.version, settings.pack_size, first_id=first_id, last_id=last_id,
                          limit=settings.limit, run_key=self.run_key)
        client = self._client or LabelClient(self.client_config, settings)
        first_error: BaseException | None = None
        in_flight: set[asyncio.Task] = set()
        renewer = asyncio.create_task(self._renew_claims())
        try:
            async with client:
                budget_hit = False
                while True:
                    # The first request goes alone: a wrong key, an unknown model or a request the server does
                    # not support costs one request and one clear line, not `concurrency` of them.
                    while first_error is None and len(in_flight) < (settings.concurrency if self._proven else 1):
                        pack = queue.next_pack()
                        if pack is None:
                            break
                        # Reserve the worst case now, before the next budget check, not when the task first runs.
                        reserved = self._worst_case_cost(pack) if settings.max_usd is not None else 0.0
                        budget_hit = self._over_budget(reserved)
                        if budget_hit:
                            queue.retry.extendleft(reversed(pack))  # not sent
                            break
                        self._reserved_usd += reserved
                        in_flight.add(asyncio.create_task(self._send(client, queue, pack, reserved)))
                    if not in_flight:
                        break
                    # Let in-flight requests finish (and commit) even after an error: their answers are paid for.
                    done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        exc = task.exception()
                        if exc is not None and first_error is None:
                            first_error = exc
                if budget_hit:
                    summary.stopped_by = "budget"
                summary.retries = client.stats.retries
                summary.rate_limited = client.stats.rate_limited
        finally:
            renewer.cancel()
        summary.elapsed_s = time.monotonic() - self._started
        self._count_what_is_left(first_id, last_id)
        if summary.stopped_by == "done" and queue.limit_reached:
            summary.stopped_by = "limit"
        self._report(force=True)
        if first_error is not None:
            summary.stopped_by = "error"
            summary.error = str(first_error)
            if isinstance(first_error, LabelingError):
                raise first_error
            raise LabelingError(f"labeling stopped: {first_error!r}") from first_error
        return summary

    def _count_what_is_left(self, first_id: int | None, last_id: int | None) -> None:
        """The summary says what it leaves pending, and how much of that another live run holds."""
        summary, info = self.summary, self.info
        assert summary is not None and info is not None
        with self.engine.connect() as conn:
            left = count_pending(conn, info.version, first_id=first_id, last_id=last_id)
            free = count_pending(conn, info.version, first_id=first_id, last_id=last_id, run_key=self.run_key)
        summary.pending_left = left
        summary.held_by_live_runs = left - free

    async def _renew_claims(self) -> None:
        """Keep this run's claims live while it runs (see LabelSettings.claim_lease_s)."""
        assert self.info is not None
        lease = self.settings.claim_lease_s
        while True:
            await asyncio.sleep(lease / 4)
            try:
                with self.engine.begin() as conn:
                    renew_claims(conn, self.info.version, self.run_key, lease_s=lease)
            except Exception as exc:  # the next renewal may get through; the requests' own commits report outages
                log.warning("renewing the labeling claims failed: %s", exc)

    def _over_budget(self, next_request_usd: float) -> bool:
        """True when the next request could take the run's spend over the budget (committed spend, requests in
        flight and this one at their worst case); the summary says so in figures."""
        max_usd = self.settings.max_usd
        if max_usd is None:
            return False
        with self.engine.connect() as conn:
            committed = run_spend(conn, self.run_key)
        if committed + self._reserved_usd + next_request_usd <= max_usd:
            return False
        assert self.summary is not None
        self.summary.budget_note = (
            f"${committed:.6f} spent of ${max_usd:.6f}; the next request could cost up to ${next_request_usd:.6f}"
        )
        return True

    def _worst_case_cost(self, pack: list[WorkItem]) -> float:
        """What a request of ``pack`` can cost at most: its input tokens counted offline, and every output
        token it allows (max_completion_tokens) priced."""
        assert self.info is not None
        body = self._shape.body([(i, w.text) for i, w in enumerate(pack, 1)])
        usage = Usage(prompt_tokens=chat_prompt_tokens(body["messages"]),
                      completion_tokens=int(body["max_completion_tokens"]))
        return self.prices.cost(self.settings.model, usage, self.settings.price_tier)

    async def _send(self, client: LabelClient, queue: PackQueue, pack: list[WorkItem], reserved: float) -> None:
        settings, info, summary = self.settings, self.info, self.summary
        assert info is not None and summary is not None
        # Claimed (and committed) before it is sent: a prompt another run is sending, or has labeled since this one
        # read it, is left out, so that no prompt is paid for twice.
        with self.engine.begin() as conn:
            mine = claim_prompts(
                conn, info.version, self.run_key, [item.prompt_id for item in pack], lease_s=settings.claim_lease_s,
                holder=self.holder.token,
            )
        if len(mine) < len(pack):
            summary.claimed_elsewhere += len(pack) - len(mine)
            pack = [item for item in pack if item.prompt_id in mine]
            if not pack:
                self._reserved_usd -= reserved
                return
        local = {i: item for i, item in enumerate(pack, start=1)}
        items = [(i, item.text) for i, item in local.items()]
        record = RequestRecord(
            request_key=uuid.uuid4().hex,
            mode="sync",
            model=settings.model,
            version=info.version,
            item_count=len(pack),
            status="error",
            run_key=self.run_key,
            service_tier=settings.service_tier,
        )
        try:
            try:
                result = await self._shape.chat(client, items, self._fall_back)
            except (FatalAPIError, RetriesExhausted) as exc:
                record.error = str(exc)
                record.retries = getattr(exc, "retries", 0)
                with self.engine.begin() as conn:
                    commit_request(conn, record, [])
                    # no answer: the prompts stay pending, and another run may take them at once
                    release_claims(conn, info.version, [item.prompt_id for item in pack])
                raise
            outcomes, retry, against, unusable = self._judge(result.value, record, local)
            record.provider_request_id = result.request_id
            record.latency_s = round(result.latency_s, 4)
            record.retries = result.retries
            with self.engine.begin() as conn:
                attempts = count_attempts(conn, info.version, against)
                for item in [item for item in retry if item.prompt_id in attempts]:
                    if attempts[item.prompt_id] >= settings.max_attempts:
                        retry.remove(item)
                        reason = against[item.prompt_id]
                        outcomes.append(LabelOutcome(item.prompt_id, None, error=f"{reason} ({attempts[item.prompt_id]} "
                                                                                 "answers, over all runs)"))
                commit_request(conn, record, outcomes)
        finally:
            self._reserved_usd -= reserved
        # Only after the commit: what is re-queued is still pending in the database if we die now.
        for item in retry:
            queue.retry.append(item)
        self._count(record, outcomes)
        if unusable:
            summary.unusable_answers += 1
            self._unusable_streak += 1
            if self._unusable_streak >= settings.max_unusable_answers:
                raise LabelingError(
                    f"{self.client_config.server} sent {self._unusable_streak} unusable answers in a row (last: "
                    f"{unusable}); their prompts stay pending. Check the server (a proxy's error page, a server "
                    "that does not speak Chat Completions?)"
                )
        else:
            self._proven = True
            self._unusable_streak = 0

    def _fall_back(self, note: str) -> None:
        """The server rejected a field it does not support: the request goes again without it (RequestShape)."""
        log.warning("%s", note)
        assert self.summary is not None
        self.summary.fallbacks.append(note)

    def _judge(self, completion: Any, record: RequestRecord, local: dict[int, WorkItem]):
        """Ledger fields and label outcomes from one answer.

        Returns (outcomes, items to send again, prompt id -> why the answer was unusable for that prompt,
        why the answer was unusable as a whole or None). An answer unusable as a whole (not JSON, no labels array,
        not a chat completion at all) is the server's fault: its prompts are sent again and nothing counts
        against them. A well-formed answer unusable for one prompt (an invalid description; no answer, a
        truncated one or a refusal when it was asked alone) counts against that prompt (max_attempts)."""
        settings, summary = self.settings, self.summary
        assert summary is not None
        usage = Usage.from_api(getattr(completion, "usage", None))
        record.usage = usage
        record.cost_usd = self.prices.cost(settings.model, usage, settings.price_tier)
        choices = getattr(completion, "choices", None) or []
        message = choices[0].message if choices else None
        finish = choices[0].finish_reason if choices else None
        content = getattr(message, "content", None)
        refusal = getattr(message, "refusal", None)
        check = check_answer(content, list(local), max_chars=settings.max_description_chars)
        unusable = None
        if not choices:
            unusable = check.malformed = "not a chat completion (no choices: an error page or another API?)"
        elif refusal and not content:
            check.malformed = f"model refused: {refusal}"
        elif check.malformed and finish != "length":
            unusable = check.malformed
        if finish == "length":
            record.status = "truncated"
        elif check.malformed:
            record.status = "malformed"
        else:
            record.status = "ok" if check.complete else "partial"
        problems = []
        if check.malformed:
            problems.append(check.malformed)
        if check.missing and not check.malformed:
            problems.append(f"{len(check.missing)} ids missing")
        if check.invalid:
            problems.append(f"{len(check.invalid)} invalid descriptions")
        if check.unknown_ids or check.duplicate_ids:
            problems.append(f"{check.unknown_ids} unknown and {check.duplicate_ids} duplicate ids ignored")
        record.error = "; ".join(problems) or None
        summary.unknown_ids += check.unknown_ids
        summary.duplicate_ids += check.duplicate_ids

        outcomes: list[LabelOutcome] = []
        retry: list[WorkItem] = []
        against: dict[int, str] = {}
        alone = len(local) == 1
        if unusable and alone and self._proven:
            # The server has answered this run well: garbage for one prompt alone is that prompt's doing (a local
            # model writing prose for it in JSON mode). It counts against the prompt, not the server's streak.
            unusable = None
        for local_id, item in local.items():
            if local_id in check.accepted:
                description = check.accepted[local_id]
                outcomes.append(LabelOutcome(item.prompt_id, description, no_object=description == NO_OBJECT))
            elif local_id in check.invalid:
                against[item.prompt_id] = f"invalid answer: {check.invalid[local_id]}"
                summary.reasked_invalid += 1
                retry.append(WorkItem(item.prompt_id, item.text, item.level, alone=True))
            elif unusable or not alone:
                summary.requeued_missing += 1
                retry.append(WorkItem(item.prompt_id, item.text, item.level + (not alone), item.alone))
            else:
                why = check.malformed or ("answer truncated" if finish == "length" else "id missing from the answer")
                against[item.prompt_id] = f"no usable answer alone: {why}"
                retry.append(WorkItem(item.prompt_id, item.text, item.level, alone=True))
        return outcomes, retry, against, unusable

    def _count(self, record: RequestRecord, outcomes: list[LabelOutcome]) -> None:
        summary = self.summary
        assert summary is not None
        summary.requests += 1
        summary.spend_usd += record.cost_usd
        summary.prompt_tokens += record.usage.prompt_tokens
        summary.completion_tokens += record.usage.completion_tokens
        summary.reasoning_tokens += record.usage.reasoning_tokens
        summary.cached_tokens += record.usage.cached_tokens
        for outcome in outcomes:
            if outcome.description is None:
                summary.failed += 1
            else:
                summary.labeled += 1
                summary.no_object += outcome.no_object
        self._done = summary.labeled + summary.failed + summary.claimed_elsewhere
        self._report()

    def _report(self, *, force: bool = False) -> None:
        if self._meter is not None and self.summary is not None:
            self._meter.update(self._done, force=force, spend_usd=self.summary.spend_usd)


async def alabel_pending(
    engine: Engine,
    settings: LabelSettings,
    client_config: ClientConfig,
    *,
    first_id: int | None = None,
    last_id: int | None = None,
    progress: ProgressCallback | None = None,
) -> LabelSummary:
    labeler = SyncLabeler(engine, settings, client_config, progress=progress)
    return await labeler.run(first_id=first_id, last_id=last_id)


def label_pending(
    engine: Engine,
    settings: LabelSettings,
    client_config: ClientConfig,
    *,
    first_id: int | None = None,
    last_id: int | None = None,
    progress: ProgressCallback | None = None,
) -> LabelSummary:
    """Label pending prompts (optionally only ids in [first_id, last_id]) in sync mode; blocking."""
    return asyncio.run(
        alabel_pending(engine, settings, client_config, first_id=first_id, last_id=last_id, progress=progress)
    )
