"""`promptmill audit REASON`: random rejected messages of a rule, near-duplicates beside what was kept."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import pytest
from promptmill.audit import AuditError, audit, format_samples
from promptmill.records import RawMessage

from tests.helpers import slash_content
from tests.test_dedupe import T0, load, raw


def _store(engine):
    load(engine, [
        raw("k1", "ann", "a lighthouse on a cliff at dusk", 0),
        raw("k2", "ann", "a lighthouse on a cliff at dusk, oil painting", 10),  # newer: k1 is its near-duplicate
        raw("k3", "bob", "a red fox in the snow", 20),
        raw("k4", "cid", "a red fox in the snow", 30),  # the same raw prompt: a duplicate of k3
        raw("k5", "dan", "sex on the beach cocktail", 40),  # nsfw_word (parity)
    ])  # fmt: skip


def test_near_duplicates_and_duplicates_come_with_what_was_kept(engine):
    _store(engine)
    total, [near] = audit(engine, "near_duplicate", sample=5, seed=1)
    assert total == 1 and (near.key, near.other_key) == ("k1", "k2")
    assert near.text.startswith("a lighthouse on a cliff at dusk") and "oil painting" in near.other_text
    total, [dup] = audit(engine, "duplicate", sample=5)
    assert (dup.key, dup.other_key, dup.other_text) == ("k4", "k3", "a red fox in the snow")
    lines = format_samples("near_duplicate", 1, [near])
    assert lines[0] == "near_duplicate: 1 of 1 rejected messages, at random" and "kept (newer):" in lines[-1]


def test_the_sample_is_random_bounded_and_repeatable_with_a_seed(engine):
    load(engine, [raw(f"k{i:02d}", f"user{i}", "x", i) for i in range(30)])  # 29 duplicates of one prompt...
    total, first = audit(engine, "duplicate", sample=5, seed=7)
    assert total == 29 and len(first) == 5 and len({s.key for s in first}) == 5
    assert [s.key for s in audit(engine, "duplicate", sample=5, seed=7)[1]] == [s.key for s in first]
    assert len(audit(engine, "duplicate", sample=100)[1]) == 29


def test_nsfw_is_never_shown_and_an_unknown_reason_names_the_known_ones(engine):
    _store(engine)
    with pytest.raises(AuditError, match="never shown"):
        audit(engine, "nsfw_word")
    with pytest.raises(AuditError, match=r"'url'.*duplicate, near_duplicate") as caught:
        audit(engine, "url")
    assert "nsfw" not in str(caught.value)


def test_the_command_prints_json_and_refuses_with_exit_2(engine, store_url):
    _store(engine)
    run = [sys.executable, "-m", "promptmill.cli", "audit", "--db", store_url]
    out = subprocess.run([*run, "near_duplicate", "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["rejected"] == 1 and data["samples"][0]["other_key"] == "k2"
    out = subprocess.run([*run, "nsfw"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "never shown" in out.stderr
    assert slash_content("dan", "sex on the beach cocktail") not in out.stdout


def test_no_nsfw_text_under_any_reason(engine):
    """A message the bot flagged, or that holds the word, is counted but never sampled, whatever rejected it first
    (in_progress, too_long, multiple_users...): the review found them in the card's examples."""
    from promptmill.settings import Settings

    quality = Settings(cleaning_profile="quality")
    naughty = "There were naughty dreams that had to be popped"
    load(engine, [
        RawMessage("n1", "c1", "bot", "DreamBot", T0, "Dreaming for @ann `/dream prompt:an explicit sex scene`"),
        RawMessage("n2", "c1", "bot", "DreamBot", T0 + timedelta(minutes=1),
                   slash_content("bob", "a nude " * 400) + "\n" + naughty),  # too_long, flagged
        RawMessage("n3", "c1", "bot", "DreamBot", T0 + timedelta(minutes=2),
                   "Dreaming for @cid `/dream prompt:a red fox in the snow`"),
    ], quality)
    total, samples = audit(engine, "in_progress", sample=10)
    assert total == 2 and [s.key for s in samples] == ["n3"]
    total, samples = audit(engine, "too_long", sample=10)
    assert total == 1 and samples == []
