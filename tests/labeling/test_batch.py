"""Batch mode: submit once, re-attach on retry, reconcile output and error files by custom_id."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from labeling_helpers import add_prompts, assert_labels_match, label_rows, ledger_rows, make_prompts
from promptmill.labeling import batch_mode
from promptmill.labeling.ledger import label_status
from promptmill.labeling.pricing import Usage, load_prices
from promptmill.labeling.tables import label_batch_jobs


@pytest.fixture
def batch_settings(settings):
    return settings.with_overrides(mode="batch", pack_size=10)


def wait_done(client_config, handle, settings):
    import time

    for _ in range(200):
        status = batch_mode.poll(client_config, handle["batch_ids"], settings)
        if status["done"]:
            return status
        time.sleep(0.02)
    raise AssertionError(f"batches never finished: {status}")


def test_batch_mode_end_to_end_and_a_retried_wait_reattaches(engine, batch_settings, client_config, fake):
    texts = make_prompts(45, seed=31)
    ids = add_prompts(engine, texts)
    handle = batch_mode.submit_or_attach(engine, batch_settings, client_config)
    assert len(handle["batch_ids"]) == 1
    assert label_status(engine, batch_settings)["pending"] == 0  # the batch owns them now
    # the waiting task is retried: it re-attaches, nothing is submitted again
    again = batch_mode.submit_or_attach(engine, batch_settings, client_config)
    uploads = [f for f in fake.files.values() if f["purpose"] == "batch"]
    assert again == handle and len(fake.batches) == 1 and len(uploads) == 1
    wait_done(client_config, handle, batch_settings)
    result = batch_mode.reconcile(engine, batch_settings, client_config, handle["job_ids"])
    assert result["labeled"] == 45 and result["requests"] == 5 and result["released"] == 0
    assert_labels_match(engine, ids, texts)
    # the ledger equals what the server billed, at the batch price
    prices = load_prices(batch_settings.effective_prices_file)
    billed = {b["request_id"]: b for b in fake.snapshot()["billed"]}
    ledger = ledger_rows(engine)
    assert {r["provider_request_id"] for r in ledger} == set(billed)
    for row in ledger:
        bill = billed[row["provider_request_id"]]
        assert row["mode"] == "batch" and row["prompt_tokens"] == bill["prompt_tokens"]
        assert row["cost_usd"] == pytest.approx(
            prices.cost("gpt-6-luna", Usage(bill["prompt_tokens"], bill["completion_tokens"]), "batch"))
    # reconciling twice changes nothing
    assert batch_mode.reconcile(engine, batch_settings, client_config, handle["job_ids"])["requests"] == 0
    assert len(ledger_rows(engine)) == 5


def test_a_crash_after_create_finds_the_batch_by_metadata(sqlite_engine, batch_settings, client_config, fake):
    add_prompts(sqlite_engine, make_prompts(20, seed=37))
    handle = batch_mode.submit_or_attach(sqlite_engine, batch_settings, client_config)
    # simulate dying after batches.create but before the batch id was committed
    with sqlite_engine.begin() as conn:
        conn.execute(sa.update(label_batch_jobs).values(batch_id=None, state="preparing"))
    again = batch_mode.submit_or_attach(sqlite_engine, batch_settings, client_config)
    assert again["batch_ids"] == handle["batch_ids"] and len(fake.batches) == 1


def test_expired_batch_and_error_lines_make_prompts_pending_again(engine, batch_settings, client_config, fake):
    texts = make_prompts(50, seed=41)
    ids = add_prompts(engine, texts)
    fake.batch_faults = {"expire_after": 3}  # 3 of 5 requests done, the rest expired
    result = batch_mode.run_batch_mode(engine, batch_settings, client_config)
    assert result["labeled"] == 30 and result["released"] == 20
    assert label_status(engine, batch_settings)["pending"] == 20
    statuses = sorted(r["status"] for r in ledger_rows(engine))
    assert statuses == ["error", "error", "ok", "ok", "ok"]
    # the next run picks up exactly the rest; one request fails in the error file and comes back again
    fake.batch_faults = {"fail_custom_ids": []}
    result = batch_mode.run_batch_mode(engine, batch_settings, client_config)
    assert result["labeled"] == 20
    assert_labels_match(engine, ids, texts)
    assert fake.snapshot()["prompt_bills"] == {t: 1 for t in texts}


def test_failed_batch_releases_everything(sqlite_engine, batch_settings, client_config, fake):
    add_prompts(sqlite_engine, make_prompts(12, seed=43))
    fake.batch_faults = {"status": "failed"}
    result = batch_mode.run_batch_mode(sqlite_engine, batch_settings, client_config)
    assert result["labeled"] == 0 and result["released"] == 12
    assert label_rows(sqlite_engine) == {}
    with sqlite_engine.connect() as conn:
        job = conn.execute(sa.select(label_batch_jobs)).mappings().one()
    assert job["state"] == "reconciled" and job["error"].startswith("batch failed")


def test_batch_files_respect_the_request_cap(sqlite_engine, batch_settings, client_config, fake):
    add_prompts(sqlite_engine, make_prompts(30, seed=47))
    settings = batch_settings.with_overrides(pack_size=5, batch_max_requests=2)
    handle = batch_mode.submit_or_attach(sqlite_engine, settings, client_config)
    assert len(handle["batch_ids"]) == 3 and len(fake.batches) == 3
    wait_done(client_config, handle, settings)
    assert batch_mode.reconcile(sqlite_engine, settings, client_config, handle["job_ids"])["labeled"] == 30


def test_invalid_batch_answers_are_paid_for_a_bounded_number_of_times(engine, batch_settings, client_config, fake):
    """Issue #18.3: prompts whose batch answers are invalid came back pending after every batch, so every run
    (and every daily DAG run) paid for them again. Now max_attempts (3) over all runs, then `failed`."""
    texts = make_prompts(12, seed=67)
    add_prompts(engine, texts)
    fake.batch_faults = {"invalid": 1}  # the first item of every request gets an invalid description
    settings = batch_settings.with_overrides(pack_size=4)
    results = [batch_mode.run_batch_mode(engine, settings, client_config) for _ in range(4)]
    # run 1: 3 requests of 4, each first item invalid; run 2: those 3 in one request, the first invalid again;
    # run 3: that one alone, invalid a third time -> failed; run 4: nothing to submit
    assert [r["labeled"] for r in results] == [9, 2, 0, 0]
    rows = label_rows(engine)
    failed = [r for r in rows.values() if r["status"] == "failed"]
    assert len(rows) == 12 and failed and all("(3 answers, over all runs)" in r["error"] for r in failed)
    assert label_status(engine, batch_settings)["pending"] == 0
    assert results[-1]["requests"] == 0 and not results[-1]["batch_ids"]  # nothing left to pay for


def test_the_reattach_lookup_stops_at_batches_older_than_the_job(sqlite_engine, batch_settings, client_config, fake):
    """Issue #18.3: the lookup listed every batch of the account; it stops at the job's creation time."""
    import time

    old = int(time.time()) - 86_400
    for n in range(1_000):
        fake.batches[f"batch_old{n:04d}"] = {"id": f"batch_old{n:04d}", "object": "batch", "status": "completed",
                                             "created_at": old - n, "metadata": {}}
    add_prompts(sqlite_engine, make_prompts(5, seed=71))
    handle = batch_mode.submit_or_attach(sqlite_engine, batch_settings, client_config)
    pages_for_the_first_lookup = fake.snapshot()["batch_list_pages"]
    with sqlite_engine.begin() as conn:  # died after batches.create, before the batch id was committed
        conn.execute(sa.update(label_batch_jobs).values(batch_id=None, state="preparing"))
    again = batch_mode.submit_or_attach(sqlite_engine, batch_settings, client_config)
    assert again["batch_ids"] == handle["batch_ids"] and len(fake.batches) == 1_001
    # the first submit looked for a batch of its job (none: 10 pages of 100 before) and stopped at the first
    # batch older than the job
    assert pages_for_the_first_lookup == 1 and fake.snapshot()["batch_list_pages"] == 2


def test_waiting_for_batches_is_one_readable_line():
    """Issue #20.6: batch mode printed a raw Python dict, then nothing for minutes."""
    status = {"states": {"b1": "in_progress", "b2": "validating"},
              "counts": {"b1": {"total": 400, "completed": 120, "failed": 2}, "b2": {}}}
    assert batch_mode.waiting_line(status, 185) == (
        "waiting for 2 batch jobs (1 in_progress, 1 validating): 120/400 requests done, 2 failed | elapsed 3m05s")


def test_the_label_command_says_each_progress_line_once(store_url, fake, engine):
    import os
    import subprocess
    import sys

    add_prompts(engine, make_prompts(60, seed=79))
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-labeling", "OPENAI_BASE_URL": fake.base_url}
    out = subprocess.run([sys.executable, "-m", "promptmill.cli", "label", "--db", store_url], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("labeled ")]
    assert len(lines) == len(set(lines)) and lines[-1].startswith("labeled 60/60")
