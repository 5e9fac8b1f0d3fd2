"""Shared helpers for the labeling tests (a unique module name: other test folders have their own conftest)."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from promptmill.labeling.pricing import Usage, load_prices
from promptmill.labeling.tables import label_requests, labels
from promptmill.store.schema import prompts

from tests.fake_openai.server import NO_OBJECT, describe

API_KEY = "sk-test-labeling"


def add_prompts(engine: sa.Engine, texts: list[str], *, kept: bool = True) -> list[int]:
    rows = [{"text": t, "text_hash": hashlib.sha256(t.encode()).hexdigest(), "kept": kept} for t in texts]
    with engine.begin() as conn:
        conn.execute(sa.insert(prompts), rows)
        found = dict(conn.execute(sa.select(prompts.c.text, prompts.c.id).where(prompts.c.text.in_(texts))).all())
    return [found[t] for t in texts]


def label_rows(engine: sa.Engine) -> dict[int, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(labels)).mappings().all()
    return {row["prompt_id"]: dict(row) for row in rows}


def ledger_rows(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(label_requests).order_by(label_requests.c.id)).mappings()]


SUBJECTS = ["a cat", "an old lighthouse", "a red bicycle", "lions in savanna", "a castle on a hill", "a robot",
            "a bowl of ramen", "a sailing ship", "a fox in the snow", "a mountain lake", "a dragon", "a city street"]
STYLES = ["highly detailed", "8 k", "trending on artstation", "octane render", "cinematic lighting", "digital art",
          "concept art", "sharp focus", "photorealistic", "by greg rutkowski"]


def make_prompts(n: int, seed: int = 0) -> list[str]:
    """Distinct, realistic-looking prompts (subject, place, style keywords), with a few _no_object ones."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 17 == 5:
            out.append(f"xq{i} vbn zzk {i}")
            continue
        subject = rng.choice(SUBJECTS)
        extra = rng.sample(STYLES, rng.randint(1, 4))
        out.append(f"{subject} number {i}, " + ", ".join(extra))
    return out


def assert_labels_match(engine, ids, texts):
    rows = label_rows(engine)
    for pid, text in zip(ids, texts, strict=True):
        assert rows[pid]["status"] == "ok", (text, rows[pid])
        expected = describe(text)
        assert rows[pid]["description"] == expected
        assert rows[pid]["no_object"] is (expected == NO_OBJECT)


def assert_ledger_equals_billing(engine, fake, settings):
    ledger = ledger_rows(engine)
    billed = fake.snapshot()["billed"]
    answered = [r for r in ledger if r["provider_request_id"]]
    assert sorted(r["provider_request_id"] for r in answered) == sorted(b["request_id"] for b in billed)
    by_id = {b["request_id"]: b for b in billed}
    prices = load_prices(settings.effective_prices_file)
    for row in answered:
        bill = by_id[row["provider_request_id"]]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (bill["prompt_tokens"], bill["completion_tokens"])
        usage = Usage(bill["prompt_tokens"], bill["completion_tokens"], reasoning_tokens=bill["reasoning_tokens"])
        assert row["cost_usd"] == pytest.approx(prices.cost(settings.model, usage, settings.price_tier))
    return ledger
