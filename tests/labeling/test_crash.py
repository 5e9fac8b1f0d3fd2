"""A labeling process killed with SIGKILL, then re-run: nothing labeled or billed twice, nothing paid lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from labeling_helpers import (
    API_KEY,
    add_prompts,
    assert_labels_match,
    assert_ledger_equals_billing,
    label_rows,
    ledger_rows,
    make_prompts,
)
from promptmill.labeling.runner import label_pending

CHILD = textwrap.dedent(
    """
    import sys
    from promptmill.labeling.client import ClientConfig
    from promptmill.labeling.runner import label_pending
    from promptmill.labeling.settings import LabelSettings
    from promptmill.store.db import connect

    url, base_url, key = sys.argv[1:4]
    settings = LabelSettings(pack_size=5, concurrency=1, claim_lease_s=1.0)
    label_pending(connect(url), settings, ClientConfig(api_key=key, base_url=base_url))
    """
)


def kill_after_labels(child: subprocess.Popen, engine, labels: int, *, timeout_s: float,
                      then_wait_s: float = 0.0) -> None:
    """SIGKILL ``child`` once the store holds ``labels`` labels (and ``then_wait_s`` more)."""
    try:
        deadline = time.monotonic() + timeout_s
        while len(label_rows(engine)) < labels:
            assert child.poll() is None, "the labeling process ended before it could be killed"
            assert time.monotonic() < deadline, "the labeling process made no progress"
            time.sleep(0.02)
        time.sleep(then_wait_s)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()


def test_sigkill_then_rerun_bills_nothing_twice(engine, store_url, settings, client_config, fake):
    fake.latency = 0.25
    texts = make_prompts(60, seed=29)
    ids = add_prompts(engine, texts)
    child = subprocess.Popen([sys.executable, "-c", CHILD, store_url, fake.base_url, API_KEY], env=dict(os.environ))
    kill_after_labels(child, engine, 15, timeout_s=30)
    assert 15 <= len(label_rows(engine)) < 60
    # The killed run's claim on the prompts of its unanswered request runs out after its lease (1 s here); until
    # then another run leaves them alone, as it would if that run were still waiting for the answer.
    time.sleep(1.5)
    fake.latency = 0.0
    summary = label_pending(engine, settings.with_overrides(pack_size=5), client_config)
    assert summary.labeled + len(ledger_rows(engine)) > 0
    rows = label_rows(engine)
    assert sorted(rows) == sorted(ids)
    assert_labels_match(engine, ids, texts)
    bills = fake.snapshot()["prompt_bills"]
    assert bills == {t: 1 for t in texts}, "some prompt was billed twice (or never)"
    assert_ledger_equals_billing(engine, fake, settings)


def test_a_rerun_right_after_sigkill_of_promptmill_label_labels_everything(engine, store_url, fake):
    """Issue #18.1: the killed run's claims (a 5-minute lease by default) die with it; the next run, started at
    once, labels every prompt and says nothing is left."""
    import json

    fake.latency = 0.2
    texts = make_prompts(80, seed=31)
    ids = add_prompts(engine, texts)
    env = {**os.environ, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake.base_url}
    command = [sys.executable, "-m", "promptmill.cli", "label", "--db", store_url, "--pack-size", "5",
               "--concurrency", "4", "--json"]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Killed mid-wait for the answers (the server then bills nothing): an answer billed and not yet committed
    # when the process dies is lost with it, which no client can prevent.
    kill_after_labels(child, engine, 20, timeout_s=60, then_wait_s=0.08)
    assert len(label_rows(engine)) < 80
    fake.latency = 0.0
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["pending_left"] == 0, summary
    assert sorted(label_rows(engine)) == sorted(ids)
    assert fake.snapshot()["prompt_bills"] == {t: 1 for t in texts}, (summary, fake.snapshot()["abandoned"])
