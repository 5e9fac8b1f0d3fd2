"""Issue #22: labeling paces itself from the rate-limit headers instead of hammering the server with requests it
will reject. Against the local server with tight limits (continuous buckets, OpenAI's x-ratelimit-* headers)."""

from __future__ import annotations

import asyncio

import pytest
from labeling_helpers import API_KEY, add_prompts, assert_labels_match, make_prompts
from promptmill.labeling.client import ClientConfig
from promptmill.labeling.pacing import Bucket, Pacer, parse_duration
from promptmill.labeling.runner import label_pending

from tests.fake_openai.server import FakeOpenAI


@pytest.mark.parametrize(("text", "seconds"), [("1s", 1.0), ("6m0s", 360.0), ("120ms", 0.12), ("1h2m3.5s", 3723.5),
                                               ("0.25", 0.25), ("soon", None), ("", None)])
def test_reset_durations(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_the_headers_bring_the_bucket_down_to_the_accounts_state():
    bucket = Bucket()
    bucket.follow("6000", "1000", "5s", now=100.0)  # 100 per second, 5 s from full: capacity 1,500
    assert (bucket.rate, bucket.capacity, bucket.level) == (100.0, 1500.0, 1000.0)
    bucket.take(400)
    bucket.follow("6000", "900", "6s", now=100.0)  # another process took some too: follow the lower figure
    assert bucket.level == 600.0
    bucket.refill(101.0)
    assert bucket.level == 700.0 and bucket.wait_for(800) == pytest.approx(1.0)


def test_reserving_waits_for_the_refill_instead_of_sending():
    slept = []

    async def sleep(seconds):
        slept.append(seconds)
        pacer.tokens.level += seconds * pacer.tokens.rate  # time passes

    pacer = Pacer(rpm=600, tpm=6000, sleep=sleep)
    pacer.tokens.level = 0.0

    async def go():
        await pacer.reserve(50)

    asyncio.run(go())
    assert slept and sum(slept) == pytest.approx(0.5, rel=0.05)  # 50 tokens at 100 a second


def _tight_server(**kwargs):
    # a one-second bucket of 2,000 tokens: four requests of ten prompts; eight in flight would overrun it
    return FakeOpenAI(api_key=API_KEY, latency=0.2, rpm=6000, tpm=120_000, **kwargs).start()


def test_a_tight_server_sees_few_rejected_requests(engine, settings):
    """Before: 8.5 requests answered 429 for each that succeeded. Now at most 5% rejected, nothing lost."""
    server = _tight_server()
    try:
        texts = make_prompts(400, seed=83)
        ids = add_prompts(engine, texts)
        summary = label_pending(engine, settings.with_overrides(pack_size=10, concurrency=8),
                                ClientConfig(api_key=API_KEY, base_url=server.base_url))
        stats = server.snapshot()
    finally:
        server.stop()
    assert summary.labeled == 400 and summary.failed == 0
    assert_labels_match(engine, ids, texts)
    assert stats["rate_limited"] <= 0.05 * stats["admitted_requests"], stats["rate_limited"]
    assert stats["prompt_bills"] == {t: 1 for t in texts}


def _two_labelers(engine, settings, seed, **server_options):
    """Two labelers at once on one account (mapped tasks on two workers): (server stats, labeled)."""
    from promptmill.labeling.runner import alabel_pending

    server = _tight_server(**server_options)
    try:
        texts = [f"{text}, take {seed}" for text in make_prompts(400, seed=seed)]
        add_prompts(engine, texts)
        config = ClientConfig(api_key=API_KEY, base_url=server.base_url)

        async def both():
            return await asyncio.gather(*(alabel_pending(engine, settings.with_overrides(
                pack_size=10, concurrency=8, run_key=f"worker-{n}"), config) for n in range(2)))

        results = asyncio.run(both())
        stats = server.snapshot()
    finally:
        server.stop()
    assert stats["prompt_bills"] == {t: 1 for t in texts}
    return stats, sum(r.labeled for r in results)


def test_two_processes_sharing_one_account_follow_its_headers(engine, settings):
    """Each labeler follows the account's remaining tokens, and what the others spend, from the headers: far
    fewer rejected requests than the same two labelers against a server that sends no headers."""
    paced, labeled = _two_labelers(engine, settings, 89)
    assert labeled == 400
    unpaced, labeled = _two_labelers(engine, settings, 101, rate_limit_headers=False)
    assert labeled == 400
    assert paced["rate_limited"] * 3 <= unpaced["rate_limited"], (paced["rate_limited"], unpaced["rate_limited"])


def test_a_server_without_headers_keeps_todays_behaviour(engine, settings):
    """No x-ratelimit-* headers: nothing is paced; 429s are waited out as before and nothing is lost."""
    server = _tight_server(rate_limit_headers=False)
    try:
        texts = make_prompts(300, seed=97)
        add_prompts(engine, texts)
        summary = label_pending(engine, settings.with_overrides(pack_size=10, concurrency=8),
                                ClientConfig(api_key=API_KEY, base_url=server.base_url))
        stats = server.snapshot()
    finally:
        server.stop()
    assert summary.labeled == 300 and stats["rate_limited"] > 0 and summary.rate_limited == stats["rate_limited"]
    assert stats["prompt_bills"] == {t: 1 for t in texts}
