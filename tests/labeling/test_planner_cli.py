"""Planning for the DAG, labeling one descriptor, the estimate, and the command line."""

from __future__ import annotations

import argparse
import json

import pytest
from labeling_helpers import add_prompts, label_rows, make_prompts
from promptmill.labeling.cli import add_commands
from promptmill.labeling.estimate import estimate
from promptmill.labeling.planner import label_batch, plan_batches


def test_plan_covers_pending_in_whole_packs_under_the_cap(sqlite_engine, settings):
    assert plan_batches(sqlite_engine, settings) == []
    ids = add_prompts(sqlite_engine, make_prompts(230))
    plan = plan_batches(sqlite_engine, settings.with_overrides(batch_prompts=40, pack_size=25), max_batches=4)
    assert len(plan) == 4 and [d["batch_no"] for d in plan] == [1, 2, 3, 4]
    assert all(d["count"] % 25 == 0 for d in plan[:-1]) and sum(d["count"] for d in plan) == 230
    assert plan[0]["first_id"] == min(ids) and plan[-1]["last_id"] == max(ids)
    assert plan[0]["label"] == f"batch 1 of 4: {plan[0]['count']:,} prompts"
    json.dumps(plan)  # small and JSON-able for XCom
    limited = plan_batches(sqlite_engine, settings.with_overrides(limit=60, batch_prompts=25))
    assert sum(d["count"] for d in limited) == 60


def test_label_batch_labels_its_range_only_and_is_idempotent(engine, settings, client_config, fake):
    ids = add_prompts(engine, make_prompts(90))
    plan = plan_batches(engine, settings.with_overrides(batch_prompts=50))
    first = label_batch(engine, settings, client_config, plan[0])
    assert first["labeled"] == plan[0]["count"]
    assert set(label_rows(engine)) == {i for i in ids if plan[0]["first_id"] <= i <= plan[0]["last_id"]}
    requests = fake.snapshot()["chat_requests"]
    assert label_batch(engine, settings, client_config, plan[0])["requests"] == 0
    assert fake.snapshot()["chat_requests"] == requests


def test_estimate_counts_tokens_before_spending(sqlite_engine, settings, client_config, fake):
    add_prompts(sqlite_engine, make_prompts(100))
    before = estimate(sqlite_engine, settings)
    assert before["pending"] == 100 and before["requests"] == 4 and before["output_estimate_source"] == "setting"
    assert fake.snapshot()["chat_requests"] == 0
    from promptmill.labeling.runner import label_pending

    summary = label_pending(sqlite_engine, settings, client_config)
    # the input estimate is the server's count (same encoding and framing, schema not counted by either)
    assert before["input_tokens"] == summary.prompt_tokens
    assert before["cost_usd_by_tier"]["batch"] == pytest.approx(before["cost_usd"] / 2)
    add_prompts(sqlite_engine, ["a lighthouse at night, 8 k"])
    after = estimate(sqlite_engine, settings)
    assert after["output_estimate_source"] == "ledger"
    assert after["output_tokens_per_item"] == pytest.approx(summary.completion_tokens / 100, rel=0.01)


def run_cli(argv, engine):
    parser = argparse.ArgumentParser(prog="promptmill")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args, engine)


def test_cli_label_and_estimate(sqlite_engine, fake, client_config, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", client_config.api_key)
    add_prompts(sqlite_engine, make_prompts(40))
    assert run_cli(["estimate", "--json"], sqlite_engine) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 40
    assert run_cli(["label", "--json", "--limit", "30", "--pack-size", "10", "--base-url", fake.base_url], sqlite_engine) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["labeled"] == 30 and out["requests"] == 3 and out["stopped_by"] == "limit"
    assert run_cli(["label", "--base-url", fake.base_url], sqlite_engine) == 0
    captured = capsys.readouterr()
    # (the progress lines come from the labeler's log: the real command's test is in test_batch.py)
    assert "labeled 10 prompts" in captured.out
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    add_prompts(sqlite_engine, ["a new prompt, 4k"])
    # exit codes: 1 for what went wrong at run time (refused credentials, an unreachable server), 2 for usage only
    assert run_cli(["label", "--base-url", fake.base_url], sqlite_engine) == 1
    err = capsys.readouterr().err
    assert "refused the credentials" in err.splitlines()[-1] and "sk-wrong" not in err and "Traceback" not in err
    monkeypatch.setenv("OPENAI_API_KEY", client_config.api_key)
    monkeypatch.setenv("PROMPTMILL_LABEL_MAX_RETRIES", "1")
    monkeypatch.setenv("PROMPTMILL_LABEL_BACKOFF_BASE_S", "0.01")
    assert run_cli(["label", "--base-url", "http://127.0.0.1:9/v1"], sqlite_engine) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("promptmill label: ") and "Traceback" not in err
    assert run_cli(["label", "--pack-size", "0", "--base-url", fake.base_url], sqlite_engine) == 2
    assert "pack_size" in capsys.readouterr().err
    monkeypatch.setenv("PROMPTMILL_LABEL_CONCURRENCY", "many")
    assert run_cli(["estimate"], sqlite_engine) == 2
