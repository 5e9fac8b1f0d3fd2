"""Labeling benchmark against the local OpenAI-compatible server with latency and rate limits.

    .venv/bin/python benchmarks/labeling.py [--prompts 3000] [--latency 1.0] [--rpm 600] [--tpm 200000]

Reports prompts/s, tokens per labeled prompt, the share of the server's rate limit used, retries, lost items,
and the cost per 1,000,000 prompts for the default model (sync, flex, batch) next to the original script's.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import hashlib  # noqa: E402

import sqlalchemy as sa  # noqa: E402
from promptmill.labeling.client import ClientConfig  # noqa: E402
from promptmill.labeling.ledger import label_status  # noqa: E402
from promptmill.labeling.pricing import Usage, load_prices  # noqa: E402
from promptmill.labeling.runner import label_pending  # noqa: E402
from promptmill.labeling.settings import LabelSettings  # noqa: E402
from promptmill.labeling.tokens import count_tokens  # noqa: E402
from promptmill.store.db import connect  # noqa: E402
from promptmill.store.schema import prompts  # noqa: E402

API_KEY = "sk-bench"
# The original script: ~490 tokens per prompt (450-token instruction + prompt + answer) at $0.02 per 1K.
ORIGINAL_TOKENS_PER_PROMPT = 490
ORIGINAL_USD_PER_1K_TOKENS = 0.02

SUBJECTS = ["a cat", "an old lighthouse", "a red sports car", "a knight in armor", "a cozy cabin", "a robot",
            "a bowl of ramen", "a pirate ship", "a fox", "a mountain lake", "a dragon", "a cyberpunk city street",
            "a portrait of a young woman", "an astronaut", "a samurai", "a treehouse", "a steampunk airship",
            "a waterfall", "a wizard", "a cup of coffee", "a haunted mansion", "a koi pond", "a spaceship"]
PLACES = ["in a forest", "on the moon", "at sunset", "in the rain", "under the sea", "in tokyo", "on a beach",
          "in the snow", "in a desert", "at night", "in a neon-lit alley", ""]
STYLES = ["highly detailed", "8 k", "4k", "trending on artstation", "octane render", "cinematic lighting",
          "digital art", "concept art", "sharp focus", "photorealistic", "by greg rutkowski", "unreal engine",
          "volumetric lighting", "by alphonse mucha", "oil painting", "hdr", "intricate", "35 mm film",
          "studio ghibli style", "masterpiece", "dramatic lighting", "ultra realistic"]


def realistic_prompts(n: int, seed: int = 1) -> list[str]:
    """Stable Diffusion style prompts: subject, optional place, 0-6 style keywords; a few without an object."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < 0.04:
            out.append(rng.choice(["surprise me", "asdf qwe", "vnj vdf 12"]) + f" {i}")
            continue
        parts = [f"{rng.choice(SUBJECTS)} {rng.choice(PLACES)}".strip() + f" #{i}"]
        parts += rng.sample(STYLES, rng.choice([0, 1, 2, 3, 4, 5, 6]))
        out.append(", ".join(parts))
    return out


def start_server(args) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "tests.fake_openai.server", "--port", "0", "--api-key", API_KEY,
           "--latency", str(args.latency), "--rpm", str(args.rpm), "--tpm", str(args.tpm)]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    base_url = line.split(" at ", 1)[1].split(" ", 1)[0]
    return proc, base_url


def stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/_stats") as response:
        return json.load(response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--rpm", type=float, default=600)
    parser.add_argument("--tpm", type=float, default=200_000)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--pack-size", type=int, default=25)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    texts = realistic_prompts(args.prompts)
    avg_prompt_tokens = sum(count_tokens(t) for t in texts) / len(texts)
    proc, base_url = start_server(args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = connect(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
            with engine.begin() as conn:
                conn.execute(sa.insert(prompts), [
                    {"text": t, "text_hash": hashlib.sha256(t.encode()).hexdigest(), "kept": True} for t in texts])
            settings = LabelSettings().with_overrides(concurrency=args.concurrency, pack_size=args.pack_size)
            started = time.monotonic()
            summary = label_pending(engine, settings, ClientConfig(api_key=API_KEY, base_url=base_url),
                                    progress=lambda p: print(p.line(), file=sys.stderr))
            elapsed = time.monotonic() - started
            status = label_status(engine, settings)
            server = stats(base_url)
            engine.dispose()
    finally:
        proc.terminate()
        proc.wait(10)

    window = max(server["last_admit"] - server["first_admit"], 1e-9)
    # the first second's burst is free capacity on top of the sustained rate: leave it out
    requests_share = (server["admitted_requests"] - args.rpm / 60) / (args.rpm / 60 * window)
    tokens_share = (server["admitted_tokens"] - args.tpm / 60) / (args.tpm / 60 * window)
    labeled = summary.labeled
    in_per = summary.prompt_tokens / labeled
    out_per = summary.completion_tokens / labeled
    prices = load_prices(settings.effective_prices_file)
    per_million = {tier: prices.cost(settings.model, Usage(round(in_per * 1e6), round(out_per * 1e6)), tier)
                   for tier in ("default", "flex", "batch")}
    original = ORIGINAL_TOKENS_PER_PROMPT * 1e6 / 1000 * ORIGINAL_USD_PER_1K_TOKENS
    result = {
        "prompts": args.prompts,
        "avg_prompt_tokens": round(avg_prompt_tokens, 1),
        "labeled": labeled,
        "failed": summary.failed,
        "pending_after": status["pending"],
        "lost": args.prompts - labeled - summary.failed - status["pending"],
        "requests": summary.requests,
        "retries": summary.retries,
        "rate_limited": summary.rate_limited,
        "elapsed_s": round(elapsed, 1),
        "prompts_per_s": round(labeled / elapsed, 1),
        "tokens_per_prompt": round(in_per + out_per, 1),
        "input_tokens_per_prompt": round(in_per, 1),
        "output_tokens_per_prompt": round(out_per, 1),
        "rate_limit_share": round(max(requests_share, tokens_share), 3),
        "requests_share": round(requests_share, 3),
        "tokens_share": round(tokens_share, 3),
        "usd_per_1m_sync": round(per_million["default"], 2),
        "usd_per_1m_flex": round(per_million["flex"], 2),
        "usd_per_1m_batch": round(per_million["batch"], 2),
        "usd_per_1m_original": round(original, 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"\nLabeling benchmark: {args.prompts} prompts (avg {result['avg_prompt_tokens']} tokens), "
          f"latency {args.latency} s, {args.rpm:.0f} RPM / {args.tpm:.0f} TPM, pack {args.pack_size}, "
          f"concurrency {args.concurrency}\n")
    print("| metric | value |\n|---|---|")
    for key in ("prompts_per_s", "tokens_per_prompt", "input_tokens_per_prompt", "output_tokens_per_prompt",
                "rate_limit_share", "requests_share", "tokens_share", "requests", "retries", "rate_limited",
                "failed", "lost", "elapsed_s"):
        print(f"| {key} | {result[key]} |")
    print("\n| cost per 1,000,000 prompts | USD |\n|---|---|")
    print(f"| original script (text-davinci-003, ~490 tokens/prompt) | {result['usd_per_1m_original']:,.2f} |")
    print(f"| {settings.model}, sync | {result['usd_per_1m_sync']:,.2f} |")
    print(f"| {settings.model}, flex | {result['usd_per_1m_flex']:,.2f} |")
    print(f"| {settings.model}, batch | {result['usd_per_1m_batch']:,.2f} |")


if __name__ == "__main__":
    main()
