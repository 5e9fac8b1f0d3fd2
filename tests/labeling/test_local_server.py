"""Issue #18.6: a local OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio): no key, a model the price
table does not know, no strict json_schema, no reasoning_effort. The fake server is configured like each, and the
README's walk-through commands are run as written (`promptmill label --base-url ... --model ...`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from labeling_helpers import add_prompts, assert_labels_match, make_prompts

from tests.fake_openai.server import FakeOpenAI

LOCAL_MODEL = "llama3.1:8b"

SERVERS = {
    "vllm": {"strict_schema": True, "reasoning_effort": False},
    "ollama": {"strict_schema": False, "reasoning_effort": False},
    "llama.cpp": {"strict_schema": False, "reasoning_effort": True},
    "lm-studio": {"strict_schema": True, "reasoning_effort": True},
}


@pytest.mark.parametrize("kind", sorted(SERVERS))
def test_labeling_against_a_local_server_with_only_a_base_url(engine, store_url, kind):
    server = FakeOpenAI(api_key=None, models=(LOCAL_MODEL,), **SERVERS[kind]).start()
    try:
        texts = make_prompts(30, seed=53)
        ids = add_prompts(engine, texts)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        env["OPENAI_BASE_URL"] = server.base_url  # no OPENAI_API_KEY at all
        out = subprocess.run(
            [sys.executable, "-m", "promptmill.cli", "label", "--db", store_url, "--model", LOCAL_MODEL, "--json"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert summary["labeled"] == 30 and summary["spend_usd"] == 0
        assert f"no price for model '{LOCAL_MODEL}'" in out.stderr and out.stderr.count("no price for model") == 1
        expected = [f"the server rejected {name}" for name, ok in (("reasoning_effort", SERVERS[kind]["reasoning_effort"]),
                    ("response_format", SERVERS[kind]["strict_schema"])) if not ok]
        assert [note.split(":")[0] for note in summary["fallbacks"]] == expected
        assert_labels_match(engine, ids, texts)
    finally:
        server.stop()


def test_prices_given_on_the_command_line_count(engine, store_url):
    server = FakeOpenAI(api_key=None, models=(LOCAL_MODEL,)).start()
    try:
        add_prompts(engine, make_prompts(10, seed=59))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        out = subprocess.run(
            [sys.executable, "-m", "promptmill.cli", "label", "--db", store_url, "--model", LOCAL_MODEL,
             "--base-url", server.base_url, "--price-input", "1", "--price-output", "2", "--json"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        expected = (summary["prompt_tokens"] * 1 + summary["completion_tokens"] * 2) / 1_000_000
        assert summary["spend_usd"] == pytest.approx(expected) and expected > 0
        assert "no price for model" not in out.stderr
    finally:
        server.stop()


def test_without_a_base_url_a_missing_key_is_still_one_clear_line(engine, store_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    add_prompts(engine, make_prompts(3, seed=61))
    out = subprocess.run([sys.executable, "-m", "promptmill.cli", "label", "--db", store_url],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("promptmill label: no API key for https://api.openai.com/v1")
