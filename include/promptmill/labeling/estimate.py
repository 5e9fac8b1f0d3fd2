"""What labeling the pending prompts would cost, before anything is spent."""

from __future__ import annotations

import math
import random
from typing import Any

from sqlalchemy.engine import Engine

from promptmill.labeling.contract import request_body
from promptmill.labeling.ledger import ensure_version, fetch_pending, measured_output_tokens_per_item
from promptmill.labeling.pricing import Usage, prices_for
from promptmill.labeling.settings import LabelSettings
from promptmill.labeling.tokens import chat_prompt_tokens, count_tokens

SAMPLE_PROMPTS = 20_000  # beyond this, input tokens are extrapolated from a random sample


def estimate(engine: Engine, settings: LabelSettings) -> dict[str, Any]:
    """Pending count, estimated input/output tokens and cost for the current settings (sync, flex, batch).

    Input tokens are counted with o200k_base on the real requests (sampled when there are many prompts);
    output tokens use the ledger's measured average per labeled prompt for this model, else the setting
    ``output_tokens_per_item``."""
    info = ensure_version(engine, settings)
    prices = prices_for(settings)
    with engine.connect() as conn:
        rows = fetch_pending(conn, info.version, limit=settings.limit)
        measured = measured_output_tokens_per_item(conn, settings.model)
    pending = len(rows)
    requests = math.ceil(pending / settings.pack_size) if pending else 0
    sample = rows if pending <= SAMPLE_PROMPTS else random.Random(0).sample(rows, SAMPLE_PROMPTS)
    item_tokens = 0
    for start in range(0, len(sample), settings.pack_size):
        pack = sample[start : start + settings.pack_size]
        body = request_body(settings, info.instructions, [(i, t) for i, (_, t) in enumerate(pack, 1)])
        item_tokens += count_tokens(body["messages"][-1]["content"])
    frame_tokens = chat_prompt_tokens(request_body(settings, info.instructions, [])["messages"]) - count_tokens("[]")
    input_tokens = round(item_tokens * (pending / len(sample))) + frame_tokens * requests if sample else 0
    per_item_out = measured if measured is not None else settings.output_tokens_per_item
    output_tokens = round(per_item_out * pending)
    usage = Usage(prompt_tokens=input_tokens, completion_tokens=output_tokens)
    costs = {tier: round(prices.cost(settings.model, usage, tier), 6) for tier in ("default", "flex", "batch")}
    return {
        "pending": pending,
        "label_version": info.version,
        "model": settings.model,
        "pack_size": settings.pack_size,
        "requests": requests,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "output_tokens_per_item": round(per_item_out, 2),
        "output_estimate_source": "ledger" if measured is not None else "setting",
        "tokens_per_prompt": round((input_tokens + output_tokens) / pending, 1) if pending else 0.0,
        "cost_usd": costs[settings.price_tier],
        "cost_usd_by_tier": costs,
    }
