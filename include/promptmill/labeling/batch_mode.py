"""Batch mode: the same requests as JSONL lines through the OpenAI Batch API (half price, up to 24 h).

Crash safety, step by step:
1. the job row and its items (custom_id -> local id -> prompt) are committed before anything is uploaded,
   so the prompts stop being pending for every other run;
2. the input file is rebuilt from those rows (deterministic), uploaded, and its id committed;
3. the batch is created with ``metadata.promptmill_job = job_key`` and its id committed at once. If the task
   dies between the create call and that commit, the retry finds the batch by that metadata instead of
   submitting (and paying) again;
4. waiting is only polling batch ids (``apoll``, no database), so a deferrable Airflow wait can do it;
5. ``reconcile`` joins the output and error files on ``custom_id``; each line is committed with its ledger row
   (request_key = custom_id, so a re-run skips it). Then the job is marked reconciled, and whatever it did not
   label (errors, expiry, failure, missing or invalid answers) is pending again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from promptmill.labeling.client import ClientConfig, LabelClient
from promptmill.labeling.contract import NO_OBJECT, check_answer, request_body
from promptmill.labeling.errors import LabelingError
from promptmill.labeling.ledger import (
    LabelOutcome,
    RequestRecord,
    VersionInfo,
    claim_prompts,
    commit_request,
    count_attempts,
    ensure_version,
    fetch_pending,
    purge_expired_claims,
    release_claims,
    request_key_exists,
    resolve_version,
    run_spend,
    utcnow,
)
from promptmill.labeling.pricing import Usage, prices_for
from promptmill.labeling.settings import LabelSettings
from promptmill.labeling.tables import label_batch_items, label_batch_jobs
from promptmill.labeling.tokens import chat_prompt_tokens
from promptmill.store.schema import prompts

log = logging.getLogger("promptmill.labeling")

ENDPOINT = "/v1/chat/completions"
TERMINAL_STATES = ("completed", "failed", "expired", "cancelled")
OPEN_STATES = ("preparing", "submitted", "validating", "in_progress", "finalizing", "cancelling")


# --- submit ---------------------------------------------------------------------------------------------


def _plan_jobs(settings: LabelSettings, info: VersionInfo, rows: list[tuple[int, str]], budget_usd: float | None):
    """Split pending rows into packs and packs into files within the Batch API limits (and the budget)."""
    prices = prices_for(settings)
    files: list[list[list[tuple[int, str]]]] = [[]]
    file_bytes = 0
    spent = 0.0
    for start in range(0, len(rows), settings.pack_size):
        pack = rows[start : start + settings.pack_size]
        body = request_body(settings, info.instructions, [(i, t) for i, (_, t) in enumerate(pack, 1)], for_batch=True)
        line_bytes = len(json.dumps({"custom_id": "x" * 48, "method": "POST", "url": ENDPOINT, "body": body})) + 1
        if budget_usd is not None:
            estimate = prices.cost(
                settings.model,
                Usage(chat_prompt_tokens(body["messages"]), round(settings.output_tokens_per_item * len(pack))),
                "batch",
            )
            if spent + estimate > budget_usd:
                break
            spent += estimate
        if files[-1] and (len(files[-1]) >= settings.batch_max_requests or file_bytes + line_bytes > settings.batch_max_bytes):
            files.append([])
            file_bytes = 0
        files[-1].append(pack)
        file_bytes += line_bytes
    return [f for f in files if f]


def _job_lines(conn: Connection, settings: LabelSettings, info: VersionInfo, job_id: int) -> bytes:
    """The JSONL input of a job, rebuilt from its committed items (the same bytes every time)."""
    rows = conn.execute(
        sa.select(label_batch_items.c.custom_id, label_batch_items.c.local_id, prompts.c.text)
        .join(prompts, prompts.c.id == label_batch_items.c.prompt_id)
        .where(label_batch_items.c.job_id == job_id)
        .order_by(label_batch_items.c.custom_id, label_batch_items.c.local_id)
    ).all()
    requests: dict[str, list[tuple[int, str]]] = {}
    for custom_id, local_id, text in rows:
        requests.setdefault(custom_id, []).append((local_id, text))
    out = []
    for custom_id, items in requests.items():
        body = request_body(settings, info.instructions, items, for_batch=True)
        out.append(json.dumps({"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode("utf-8")


def _open_jobs(conn: Connection, version: str, descriptor: dict[str, Any] | None) -> list[dict]:
    query = sa.select(label_batch_jobs).where(
        label_batch_jobs.c.version == version, label_batch_jobs.c.state != "reconciled"
    )
    if descriptor is not None:
        query = query.where(
            label_batch_jobs.c.first_id == int(descriptor["first_id"]),
            label_batch_jobs.c.last_id == int(descriptor["last_id"]),
        )
    return [dict(r) for r in conn.execute(query.order_by(label_batch_jobs.c.id)).mappings()]


def submitted_jobs(engine: Engine, settings: LabelSettings) -> dict[str, list]:
    """The submitted, not yet reconciled jobs of the current label version, from any run: ``{"job_ids": [...],
    "batch_ids": [...]}`` (JSON-able). What a run collects before it publishes."""
    info = resolve_version(settings)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(label_batch_jobs.c.id, label_batch_jobs.c.batch_id)
            .where(label_batch_jobs.c.version == info.version, label_batch_jobs.c.state != "reconciled",
                   label_batch_jobs.c.batch_id.is_not(None))
            .order_by(label_batch_jobs.c.id)
        ).all()
    return {"job_ids": [int(job_id) for job_id, _ in rows], "batch_ids": [batch_id for _, batch_id in rows]}


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """A stored time as UTC (SQLite gives it back without its zone)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def _update_job(engine: Engine, job_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(label_batch_jobs).where(label_batch_jobs.c.id == job_id).values(updated_at=utcnow(), **values)
        )


# How much earlier than its job row a batch may look created (the server's clock against the store's).
LOOKUP_CLOCK_SLACK_S = 3600


async def _find_batch_by_key(client: LabelClient, job_key: str, created_at: dt.datetime | None) -> str | None:
    """The batch a previous try created for ``job_key``, if any. The account's batches come newest first; the
    search stops at the first one created before the job row (less a margin for clocks): an account can hold
    thousands of batches."""
    oldest = created_at.timestamp() - LOOKUP_CLOCK_SLACK_S if created_at is not None else None

    async def send():
        found = None
        async for batch in client.openai.batches.list(limit=100):
            if (batch.metadata or {}).get("promptmill_job") == job_key:
                found = batch.id
                break
            if oldest is not None and batch.created_at < oldest:
                break
        return found, None

    return (await client.call("batch lookup", send)).value


async def _submit(engine: Engine, settings: LabelSettings, info: VersionInfo, client: LabelClient, job: dict) -> dict:
    if job["batch_id"]:
        return job
    existing = await _find_batch_by_key(client, job["job_key"], _aware(job["created_at"]))
    if existing is None:
        if not job["input_file_id"]:
            with engine.connect() as conn:
                data = _job_lines(conn, settings, info, job["id"])

            async def upload():
                created = await client.openai.files.create(
                    file=(f"promptmill-{job['job_key']}.jsonl", data, "application/jsonl"), purpose="batch"
                )
                return created.id, None

            job["input_file_id"] = (await client.call("batch file upload", upload)).value
            _update_job(engine, job["id"], input_file_id=job["input_file_id"])

        async def create():
            batch = await client.openai.batches.create(
                input_file_id=job["input_file_id"],
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={"promptmill_job": job["job_key"], "promptmill_version": info.version},
            )
            return batch.id, None

        existing = (await client.call("batch create", create)).value
    job["batch_id"], job["state"] = existing, "submitted"
    _update_job(engine, job["id"], batch_id=existing, state="submitted")
    log.info("batch job %s: batch %s holds %d prompts", job["job_key"], existing, job["item_count"])
    return job


async def asubmit_or_attach(
    engine: Engine, settings: LabelSettings, client_config: ClientConfig, descriptor: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Submit the pending prompts of ``descriptor`` (all pending when None) as Batch API jobs, or re-attach to
    the jobs a previous try already made. Returns ``{"job_ids": [...], "batch_ids": [...]}`` (JSON-able)."""
    info = ensure_version(engine, settings)
    with engine.connect() as conn:
        jobs = _open_jobs(conn, info.version, descriptor)
    if not jobs:
        jobs = _create_jobs(engine, settings, info, descriptor)
    async with LabelClient(client_config, settings) as client:
        for job in jobs:
            if job["state"] == "preparing":
                await _submit(engine, settings, info, client, job)
    return {"job_ids": [j["id"] for j in jobs], "batch_ids": [j["batch_id"] for j in jobs if j["batch_id"]]}


def _create_jobs(engine: Engine, settings: LabelSettings, info: VersionInfo, descriptor: dict | None) -> list[dict]:
    first_id = int(descriptor["first_id"]) if descriptor else None
    last_id = int(descriptor["last_id"]) if descriptor else None
    run_key = settings.run_key
    # The jobs' prompts are claimed (as a sync request's are) until the jobs hold them: another run never sends
    # a prompt that went into a job here, nor does a job take one a sync run is sending.
    claim_key = run_key or f"batch-{uuid.uuid4().hex}"
    with engine.begin() as conn:
        purge_expired_claims(conn)
        rows = fetch_pending(
            conn,
            info.version,
            after_id=None if first_id is None else first_id - 1,
            last_id=last_id,
            limit=settings.limit,
            run_key=claim_key,
        )
        mine = claim_prompts(conn, info.version, claim_key, [pid for pid, _ in rows], lease_s=settings.claim_lease_s)
        rows = [row for row in rows if row[0] in mine]
        budget = None
        if settings.max_usd is not None:
            budget = settings.max_usd - (run_spend(conn, run_key) if run_key else 0.0)
    jobs = []
    for packs in _plan_jobs(settings, info, rows, budget):
        job_key = uuid.uuid4().hex
        now = utcnow()
        with engine.begin() as conn:
            job_id = conn.execute(
                sa.insert(label_batch_jobs).values(
                    job_key=job_key,
                    version=info.version,
                    model=settings.model,
                    first_id=first_id,
                    last_id=last_id,
                    request_count=len(packs),
                    item_count=sum(len(p) for p in packs),
                    state="preparing",
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]
            conn.execute(
                sa.insert(label_batch_items),
                [
                    {"job_id": job_id, "prompt_id": pid, "custom_id": f"{job_key}-{n}", "local_id": local_id}
                    for n, pack in enumerate(packs)
                    for local_id, (pid, _) in enumerate(pack, start=1)
                ],
            )
            jobs.append(dict(conn.execute(sa.select(label_batch_jobs).where(label_batch_jobs.c.id == job_id)).mappings().one()))
    return jobs


# --- wait -----------------------------------------------------------------------------------------------


async def apoll(client_config: ClientConfig, batch_ids: list[str], settings: LabelSettings | None = None) -> dict[str, Any]:
    """Batch states without touching the database: ``{"done": bool, "states": {batch_id: state}, "counts": ...}``."""
    settings = settings or LabelSettings()
    states: dict[str, str] = {}
    counts: dict[str, dict] = {}
    async with LabelClient(client_config, settings) as client:
        for batch_id in batch_ids:

            async def retrieve(batch_id=batch_id):
                return await client.openai.batches.retrieve(batch_id), None

            batch = (await client.call("batch poll", retrieve)).value
            states[batch_id] = batch.status
            rc = batch.request_counts
            counts[batch_id] = {"total": rc.total, "completed": rc.completed, "failed": rc.failed} if rc else {}
    return {"done": all(s in TERMINAL_STATES for s in states.values()), "states": states, "counts": counts}


def poll(client_config: ClientConfig, batch_ids: list[str], settings: LabelSettings | None = None) -> dict[str, Any]:
    return asyncio.run(apoll(client_config, batch_ids, settings))


# --- reconcile ------------------------------------------------------------------------------------------


async def areconcile(
    engine: Engine, settings: LabelSettings, client_config: ClientConfig, job_ids: list[int]
) -> dict[str, Any]:
    """Fold the results of finished jobs into labels and the ledger; jobs not finished yet are left alone.

    Returns counts (labeled, no_object, requests, spend_usd, tokens, released, open_jobs)."""
    info = ensure_version(engine, settings)
    prices = prices_for(settings)
    totals = {"labeled": 0, "no_object": 0, "failed": 0, "requests": 0, "spend_usd": 0.0, "tokens": 0,
              "released": 0, "open_jobs": 0}
    with engine.connect() as conn:
        jobs = [dict(r) for r in conn.execute(sa.select(label_batch_jobs).where(label_batch_jobs.c.id.in_(job_ids))).mappings()]
    async with LabelClient(client_config, settings) as client:
        for job in jobs:
            if job["state"] == "reconciled":
                continue
            if not job["batch_id"]:
                totals["open_jobs"] += 1
                continue

            async def retrieve(batch_id=job["batch_id"]):
                return await client.openai.batches.retrieve(batch_id), None

            batch = (await client.call("batch poll", retrieve)).value
            if batch.status not in TERMINAL_STATES:
                _update_job(engine, job["id"], state=batch.status)
                totals["open_jobs"] += 1
                continue
            for file_id in (batch.output_file_id, batch.error_file_id):
                if not file_id:
                    continue

                async def download(file_id=file_id):
                    return (await client.openai.files.content(file_id)).text, None

                text = (await client.call("batch result download", download)).value
                for line in text.splitlines():
                    if line.strip():
                        _reconcile_line(engine, settings, info, prices, job, json.loads(line), totals)
            error = None
            if batch.status != "completed":
                errors = getattr(getattr(batch, "errors", None), "data", None) or []
                error = f"batch {batch.status}" + (f": {errors[0].message}" if errors else "")
            with engine.begin() as conn:
                released = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(label_batch_items)
                    .where(label_batch_items.c.job_id == job["id"])
                    .where(~_labeled_in(info.version))
                ).scalar_one()
                conn.execute(
                    sa.update(label_batch_jobs)
                    .where(label_batch_jobs.c.id == job["id"])
                    .values(state="reconciled", error=error, updated_at=utcnow())
                )
                # The prompts the job gives back unlabeled are pending again from this commit on, for any run:
                # their claims go with the job that held them.
                release_claims(
                    conn,
                    info.version,
                    sa.select(label_batch_items.c.prompt_id)
                    .where(label_batch_items.c.job_id == job["id"])
                    .where(~_labeled_in(info.version)),
                )
            totals["released"] += released
            if error:
                log.warning("batch job %s (%s): %s; %d prompts are pending again", job["job_key"], job["batch_id"], error, released)
    totals["spend_usd"] = round(totals["spend_usd"], 8)
    return totals


def _labeled_in(version: str):
    from promptmill.labeling.tables import labels

    return sa.exists().where(labels.c.prompt_id == label_batch_items.c.prompt_id, labels.c.version == version)


def _reconcile_line(engine, settings, info, prices, job, line: dict, totals: dict) -> None:
    custom_id = line.get("custom_id")
    if not custom_id:
        return
    with engine.connect() as conn:
        if request_key_exists(conn, custom_id):
            return  # committed by an earlier (interrupted) reconcile
        items = conn.execute(
            sa.select(label_batch_items.c.local_id, label_batch_items.c.prompt_id).where(
                label_batch_items.c.job_id == job["id"], label_batch_items.c.custom_id == custom_id
            )
        ).all()
    if not items:
        log.warning("batch job %s: unknown custom_id %s ignored", job["job_key"], custom_id)
        return
    local = {int(local_id): int(pid) for local_id, pid in items}
    response = line.get("response") or {}
    body = response.get("body") if isinstance(response, dict) else None
    record = RequestRecord(
        request_key=custom_id,
        mode="batch",
        model=settings.model,
        version=info.version,
        item_count=len(local),
        status="error",
        run_key=settings.run_key,
        provider_request_id=response.get("request_id") if isinstance(response, dict) else None,
        batch_job_id=job["id"],
    )
    outcomes: list[LabelOutcome] = []
    against: dict[int, str] = {}
    if line.get("error") or response.get("status_code") != 200 or not isinstance(body, dict):
        err = line.get("error") or (body or {}).get("error") or {}
        record.error = f"{err.get('code') or response.get('status_code')}: {err.get('message') or 'no answer'}"
    else:
        record.usage = Usage.from_api(body.get("usage"))
        record.cost_usd = prices.cost(settings.model, record.usage, "batch")
        choice = (body.get("choices") or [{}])[0]
        content = (choice.get("message") or {}).get("content")
        check = check_answer(content, list(local), max_chars=settings.max_description_chars)
        for local_id, description in check.accepted.items():
            outcomes.append(LabelOutcome(local[local_id], description, no_object=description == NO_OBJECT))
        # As in sync mode: a well-formed answer unusable for one prompt counts against it (bounded, over all runs):
        # an invalid description, or no answer when it was asked alone; a cut or malformed answer, or an id
        # missing from a pack, is not the prompt's doing.
        if not check.malformed and choice.get("finish_reason") != "length":
            against = {local[i]: f"invalid answer: {why}" for i, why in check.invalid.items()}
            if len(local) == 1:
                against |= {local[i]: "no answer for it alone" for i in check.missing}
        if choice.get("finish_reason") == "length":
            record.status = "truncated"
        elif check.malformed:
            record.status = "malformed"
        else:
            record.status = "ok" if check.complete else "partial"
        if not check.complete:
            # Missing and invalid items simply stay pending: the next run asks for them again.
            record.error = check.malformed or f"{len(check.missing)} missing, {len(check.invalid)} invalid: pending again"
    try:
        with engine.begin() as conn:
            attempts = count_attempts(conn, info.version, against)
            for pid, count in attempts.items():
                if count >= settings.max_attempts:
                    outcomes.append(LabelOutcome(pid, None, error=f"{against[pid]} ({count} answers, over all runs)"))
                    totals["failed"] += 1
            commit_request(conn, record, outcomes)
    except sa.exc.IntegrityError:
        return  # another run reconciling the same job committed this line first (request_key is unique)
    totals["requests"] += 1
    totals["spend_usd"] += record.cost_usd
    totals["tokens"] += record.usage.total_tokens
    totals["labeled"] += sum(1 for o in outcomes if o.description is not None)
    totals["no_object"] += sum(1 for o in outcomes if o.no_object)


def reconcile(engine: Engine, settings: LabelSettings, client_config: ClientConfig, job_ids: list[int]) -> dict[str, Any]:
    return asyncio.run(areconcile(engine, settings, client_config, job_ids))


def submit_or_attach(
    engine: Engine, settings: LabelSettings, client_config: ClientConfig, descriptor: dict[str, Any] | None = None
) -> dict[str, Any]:
    return asyncio.run(asubmit_or_attach(engine, settings, client_config, descriptor))


def waiting_line(status: dict[str, Any], elapsed_s: float) -> str:
    """One progress line while batch jobs run: their states and requests done, e.g. "waiting for 2 batch jobs
    (1 in_progress, 1 validating): 120/500 requests done, 0 failed | elapsed 3m05s"."""
    states: dict[str, int] = {}
    for state in status["states"].values():
        states[state] = states.get(state, 0) + 1
    counts = [c for c in (status.get("counts") or {}).values() if c]
    total = sum(c.get("total") or 0 for c in counts)
    done = sum(c.get("completed") or 0 for c in counts)
    failed = sum(c.get("failed") or 0 for c in counts)
    minutes, seconds = divmod(int(elapsed_s), 60)
    jobs = len(status["states"])
    return (f"waiting for {jobs} batch job{'s' if jobs != 1 else ''} "
            f"({', '.join(f'{n} {state}' for state, n in sorted(states.items()))}): {done:,}/{total:,} requests done, "
            f"{failed:,} failed | elapsed {minutes}m{seconds:02d}s")


def run_batch_mode(
    engine: Engine,
    settings: LabelSettings,
    client_config: ClientConfig,
    descriptor: dict[str, Any] | None = None,
    *,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Submit (or re-attach), wait by polling every ``settings.batch_poll_s``, reconcile: the blocking CLI path."""
    handle = submit_or_attach(engine, settings, client_config, descriptor)
    started = time.monotonic()
    while handle["batch_ids"]:
        status = poll(client_config, handle["batch_ids"], settings)
        if status["done"]:
            break
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise LabelingError(
                f"batch jobs {handle['batch_ids']} not finished after {timeout_s:.0f} s; run again to re-attach"
            )
        log.info("%s", waiting_line(status, time.monotonic() - started))
        time.sleep(settings.batch_poll_s)
    result = reconcile(engine, settings, client_config, handle["job_ids"])
    result.update(handle)
    return result
