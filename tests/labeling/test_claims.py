"""Claims: two labeling runs at once (the DAG and a command, two commands) never send, and pay for, a prompt twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa
from labeling_helpers import add_prompts, assert_labels_match, label_rows, make_prompts
from promptmill.labeling.batch_mode import submit_or_attach
from promptmill.labeling.ledger import claim_prompts, ensure_version, utcnow
from promptmill.labeling.runner import label_pending
from promptmill.labeling.tables import label_batch_items, label_claims
from promptmill.store import db


def _run_at_once(runs: list) -> list:
    results: list = []
    errors: list[BaseException] = []

    def run(job):
        try:
            results.append(job())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    return results


def test_two_sync_runs_at_once_never_send_a_prompt_twice(store_url, settings, client_config, fake):
    engine = db.connect(store_url)
    texts = make_prompts(150, seed=11)
    ids = add_prompts(engine, texts)
    fake.latency = 0.03  # the two runs' requests overlap
    settings = settings.with_overrides(pack_size=5, concurrency=3)
    results = _run_at_once([lambda: label_pending(db.connect(store_url), settings, client_config)] * 2)
    bills = fake.snapshot()["prompt_bills"]
    assert sorted(bills) == sorted(texts) and set(bills.values()) == {1}  # each prompt paid for once
    assert_labels_match(engine, ids, texts)
    assert sum(r.labeled for r in results) == 150


def test_a_live_claim_of_another_run_holds_its_prompts_until_it_expires(store_url, settings, client_config, fake):
    engine = db.connect(store_url)
    ids = add_prompts(engine, make_prompts(10, seed=12))
    version = ensure_version(engine, settings).version
    with engine.begin() as conn:  # a run that claimed four prompts, then died before sending them
        assert claim_prompts(conn, version, "stopped-run", ids[:4], lease_s=3600) == set(ids[:4])
    first = label_pending(engine, settings, client_config)
    assert (first.labeled, first.total) == (6, 6) and set(label_rows(engine)) == set(ids[4:])
    with engine.begin() as conn:  # its claims run out
        conn.execute(sa.update(label_claims).values(expires_at=utcnow() - timedelta(seconds=1)))
    second = label_pending(engine, settings, client_config)
    assert second.labeled == 4 and set(label_rows(engine)) == set(ids)
    assert set(fake.snapshot()["prompt_bills"].values()) == {1}
    with engine.begin() as conn:  # a labeled prompt is never claimed again, not even by the run that labeled it
        assert claim_prompts(conn, version, "stopped-run", ids, lease_s=3600) == set()


def test_claims_go_to_one_run_and_are_renewed_by_it(store_url, settings):
    engine = db.connect(store_url)
    ids = add_prompts(engine, make_prompts(6, seed=13))
    version = ensure_version(engine, settings).version
    with engine.begin() as conn:
        assert claim_prompts(conn, version, "run-a", ids[:4], lease_s=3600) == set(ids[:4])
        assert claim_prompts(conn, version, "run-b", ids, lease_s=3600) == set(ids[4:])
        assert claim_prompts(conn, version, "run-a", ids, lease_s=3600) == set(ids[:4])  # its own, renewed
        assert claim_prompts(conn, version, "run-c", [], lease_s=3600) == set()
        holders = dict(conn.execute(sa.select(label_claims.c.prompt_id, label_claims.c.run_key)).all())
    assert holders == {**dict.fromkeys(ids[:4], "run-a"), **dict.fromkeys(ids[4:], "run-b")}


def test_a_batch_job_takes_no_prompt_a_sync_run_is_sending(store_url, settings, client_config, fake):
    engine = db.connect(store_url)
    ids = add_prompts(engine, make_prompts(12, seed=14))
    version = ensure_version(engine, settings).version
    with engine.begin() as conn:
        claim_prompts(conn, version, "sync-run", ids[:5], lease_s=3600)
    submit_or_attach(engine, settings.with_overrides(mode="batch", run_key="batch-run"), client_config)
    with engine.connect() as conn:
        in_jobs = set(conn.execute(sa.select(label_batch_items.c.prompt_id)).scalars())
    assert in_jobs == set(ids[5:])
    with engine.begin() as conn:  # and a sync run cannot claim what the jobs hold
        assert claim_prompts(conn, version, "late-sync-run", ids, lease_s=3600) == set()


def test_a_run_keeps_its_claims_live_while_its_requests_are_out(store_url, settings, client_config, fake):
    """Requests that take longer than the lease: the running runs renew their claims, so neither takes the other's."""
    engine = db.connect(store_url)
    texts = make_prompts(30, seed=15)
    add_prompts(engine, texts)
    # Each request outlasts the lease. The lease is not shorter still: on SQLite a run's renewal can wait for the
    # other run's write (its busy handler sleeps up to 100 ms at a time), and a renewal later than the lease is lost.
    fake.latency = 1.5
    settings = settings.with_overrides(pack_size=5, concurrency=2, claim_lease_s=1.0)
    results = _run_at_once([lambda: label_pending(db.connect(store_url), settings, client_config)] * 2)
    assert set(fake.snapshot()["prompt_bills"].values()) == {1} and sum(r.labeled for r in results) == 30
