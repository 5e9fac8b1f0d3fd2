"""Evaluate labeling settings before paying for the store: label a gold set, score it against its descriptions.

A gold set is a CSV or TSV file with a header holding ``prompt`` and ``description`` columns (``_no_object``
where the prompt has no object to describe). Its prompts are labeled exactly as the store's would be (the same
request bodies, packs, answer checks and fallbacks) but nothing is written to ``labels`` or the ledger: the
result (agreement, tokens and cost per 1,000 prompts) is stored per label version in ``label_evaluations`` and
shown on the dataset page, so models or instruction changes can be compared before relabeling a million prompts.

Metrics: ``exact_match`` (descriptions equal after case, spacing and end punctuation are ignored), ``token_f1``
(the mean over prompts of the F1 of the two descriptions' word multisets, as SQuAD scores answers),
``no_object_precision`` / ``no_object_recall`` (of answering ``_no_object``; None when undefined). A prompt
without a usable answer scores 0 and is counted in ``unanswered``.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from promptmill.labeling.client import ClientConfig, LabelClient
from promptmill.labeling.contract import NO_OBJECT, RequestShape, check_answer
from promptmill.labeling.ledger import resolve_version
from promptmill.labeling.pricing import Usage, prices_for
from promptmill.labeling.settings import LabelSettings
from promptmill.labeling.tables import label_evaluations

_WORDS = re.compile(r"[^\W_]+")
MAX_GOLD_BYTES = 64 * 1024 * 1024  # a gold set is a sample: refuse what is obviously something else


class GoldSetError(ValueError):
    """The gold file cannot be used; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class GoldSet:
    name: str
    sha256: str
    pairs: tuple[tuple[str, str], ...]  # (prompt, gold description)


def read_gold(path: Path) -> GoldSet:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_GOLD_BYTES:
            raise GoldSetError(f"{path}: over {MAX_GOLD_BYTES // (1024 * 1024)} MB, not a gold sample")
        data = path.read_bytes()
    except OSError as exc:
        raise GoldSetError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GoldSetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    dialect = "excel-tab" if path.suffix.lower() in (".tsv", ".tab") else "excel"
    reader = csv.DictReader(text.splitlines(), dialect=dialect)
    columns = {name.strip().lower(): name for name in reader.fieldnames or []}
    if "prompt" not in columns or "description" not in columns:
        raise GoldSetError(f"{path}: needs a header with 'prompt' and 'description' columns "
                           f"(found: {', '.join(columns) or 'none'})")
    pairs = []
    for line, row in enumerate(reader, start=2):
        prompt = (row.get(columns["prompt"]) or "").strip()
        description = (row.get(columns["description"]) or "").strip()
        if not prompt or not description:
            raise GoldSetError(f"{path}: line {line}: empty prompt or description")
        pairs.append((prompt, description))
    if not pairs:
        raise GoldSetError(f"{path}: no rows")
    return GoldSet(path.name, hashlib.sha256(data).hexdigest(), tuple(pairs))


def _normalise(text: str) -> str:
    return " ".join(_WORDS.findall(text.casefold()))


def token_f1(predicted: str, gold: str) -> float:
    """F1 of the two descriptions' word multisets (case and punctuation ignored)."""
    a, b = Counter(_WORDS.findall(predicted.casefold())), Counter(_WORDS.findall(gold.casefold()))
    common = sum((a & b).values())
    if not common:
        return 1.0 if not a and not b else 0.0
    precision, recall = common / sum(a.values()), common / sum(b.values())
    return 2 * precision * recall / (precision + recall)


def score(gold: Sequence[str], predicted: Sequence[str | None]) -> dict[str, Any]:
    """Agreement of ``predicted`` descriptions (None: no usable answer) with ``gold``, item by item."""
    n = len(gold)
    exact = f1 = 0.0
    said_none = right_none = gold_none = 0
    for want, got in zip(gold, predicted, strict=True):
        want_none = want.casefold() == NO_OBJECT
        gold_none += want_none
        if got is None:
            continue
        got_none = got.casefold() == NO_OBJECT
        said_none += got_none
        right_none += got_none and want_none
        if want_none or got_none:
            exact += want_none == got_none
            f1 += want_none == got_none
        else:
            exact += _normalise(got) == _normalise(want)
            f1 += token_f1(got, want)
    return {
        "prompts": n,
        "unanswered": sum(1 for got in predicted if got is None),
        "exact_match": round(exact / n, 4) if n else None,
        "token_f1": round(f1 / n, 4) if n else None,
        "no_object_precision": round(right_none / said_none, 4) if said_none else None,
        "no_object_recall": round(right_none / gold_none, 4) if gold_none else None,
    }


async def _label(settings: LabelSettings, client_config: ClientConfig, shape: RequestShape,
                 prompts: Sequence[str]) -> tuple[list[str | None], Usage, int, list[str]]:
    """Descriptions of ``prompts`` (None where no usable answer came), the usage, requests sent, fallbacks."""
    predicted: list[str | None] = [None] * len(prompts)
    usage = Usage()
    requests = 0
    notes: list[str] = []
    packs = [list(range(start, min(start + settings.pack_size, len(prompts))))
             for start in range(0, len(prompts), settings.pack_size)]

    async with LabelClient(client_config, settings) as client:
        async def send(pack: list[int]) -> None:
            nonlocal usage, requests
            items = [(local, prompts[index]) for local, index in enumerate(pack, start=1)]
            result = await shape.chat(client, items, notes.append)
            requests += 1
            usage = usage + Usage.from_api(getattr(result.value, "usage", None))
            choices = getattr(result.value, "choices", None) or []
            content = getattr(choices[0].message, "content", None) if choices else None
            check = check_answer(content, [local for local, _ in items], max_chars=settings.max_description_chars)
            for local, description in check.accepted.items():
                predicted[pack[local - 1]] = description

        if packs:  # the first request alone, as a labeling run does: a wrong setting costs one request
            await send(packs[0])
        await asyncio.gather(*(send(pack) for pack in packs[1:]))
    return predicted, usage, requests, notes


def evaluate_labels(engine: Engine, settings: LabelSettings, client_config: ClientConfig, gold: GoldSet,
                    *, limit: int | None = None) -> dict[str, Any]:
    """Label ``gold`` with ``settings``, score it, store the result for the label version; returns it."""
    info = resolve_version(settings)
    pairs = gold.pairs[:limit] if limit is not None else gold.pairs
    if not pairs:
        raise GoldSetError(f"{gold.name}: no pairs to evaluate (--limit {limit})")
    shape = RequestShape(settings, info.instructions)
    predicted, usage, requests, notes = asyncio.run(_label(settings, client_config, shape, [p for p, _ in pairs]))
    prices = prices_for(settings)
    cost = prices.cost(settings.model, usage, settings.price_tier)
    per_1k = 1000 / len(pairs)
    metrics = {
        **score([d for _, d in pairs], predicted),
        "requests": requests,
        "tokens_per_1k_prompts": round(usage.total_tokens * per_1k),
        "usd_per_1k_prompts": round(cost * per_1k, 6),
        "fallbacks": notes,
    }
    result = {"label_version": info.version, "model": settings.model, "gold": gold.name,
              "gold_sha256": gold.sha256, **metrics}
    with engine.begin() as conn:
        conn.execute(sa.insert(label_evaluations).values(
            version=info.version, model=settings.model, gold_name=gold.name, gold_sha256=gold.sha256,
            prompts=len(pairs), metrics=json.dumps(metrics, sort_keys=True), created_at=dt.datetime.now(dt.UTC),
        ))
    return result


def latest_evaluations(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    """Per label version, its newest evaluation (gold name, prompts, metrics, time)."""
    rows = conn.execute(sa.select(label_evaluations).order_by(label_evaluations.c.id)).mappings()
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        latest[row["version"]] = {"gold": row["gold_name"], "prompts": row["prompts"],
                                  **json.loads(row["metrics"])}
    return latest
