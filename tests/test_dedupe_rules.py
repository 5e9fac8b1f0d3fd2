"""The rules of dedupe as pure functions (dedupe_rules.py), composed over a whole message set and compared with the
plain oracle of tests/test_dedupe.py: no database, so hypothesis runs thousands of examples in seconds."""

from __future__ import annotations

from datetime import timedelta
from itertools import groupby

from hypothesis import given
from hypothesis import settings as hsettings
from promptmill import dedupe_rules
from promptmill.bots import extract
from promptmill.cleaning import clean
from promptmill.dedupe_rules import Candidate
from promptmill.records import RawMessage
from promptmill.similarity import similarity_function

from tests.test_dedupe import T0, message_sets, oracle, raw

WINDOW = timedelta(hours=1)


def decide(msgs: list[RawMessage], metric: str = "jaro", threshold: float = 0.6, similarity=None) -> dict[str, tuple]:
    """Every verdict of the final message set from the pure rules alone, as the store layer composes them."""
    final: dict[str, RawMessage] = {}
    for m in msgs:  # the newest edit of a message wins, as ingest stores it
        old = final.get(m.key)
        never = T0 - timedelta(days=9999)
        if old is None or (m.edited_at or never, m.content) > (old.edited_at or never, old.content):
            final[m.key] = m
    rows = {}
    for m in final.values():
        generation = extract(m.content)
        cleaned = clean(generation.raw_prompt) if generation.reject is None else None
        rows[m.key] = {
            "key": m.key, "user": generation.username, "at": m.posted_at, "seq": m.seq, "pre": generation.reject,
            "raw": generation.raw_prompt if generation.reject is None else None,
            "clean": cleaned.text if cleaned and cleaned.reject is None else None,
            "clean_reason": (cleaned.reject or "empty") if cleaned and (cleaned.reject or not cleaned.text) else None,
        }  # fmt: skip
    # rule 12: a representative per raw prompt
    generations = sorted((r for r in rows.values() if r["pre"] is None), key=lambda r: r["raw"])
    representatives = {
        min(group, key=lambda r: dedupe_rules.raw_rank(r["at"], r["seq"], r["key"]))["key"]
        for _, group in groupby(generations, key=lambda r: r["raw"])
    }
    # rule 13: each user's representatives, walked newest first
    near_dup = set()
    similarity = similarity or similarity_function(metric)
    reps = sorted((rows[k] for k in representatives if rows[k]["user"]), key=lambda r: r["user"])
    for _, group in groupby(reps, key=lambda r: r["user"]):
        attempts = dedupe_rules.newest_first([Candidate(r["key"], r["at"], r["raw"], False, None, r["seq"]) for r in group])
        near_dup |= {a.key for a, is_dup, _ in dedupe_rules.walk(attempts, [], similarity, threshold, WINDOW) if is_dup}
    # rule 34: a kept message per cleaned prompt
    kept: dict[str, tuple] = {}
    for r in rows.values():
        if r["clean"] and dedupe_rules.eligible_for_prompt(r["pre"], r["key"] in representatives, r["key"] in near_dup,
                                                           r["clean_reason"]):
            member = (r["user"], r["at"], r["seq"], r["key"])
            if r["clean"] not in kept or dedupe_rules.kept_before(member, kept[r["clean"]]):
                kept[r["clean"]] = member
    kept_keys = {member[3] for member in kept.values()}
    return {
        key: dedupe_rules.verdict(r["pre"], key in representatives, key in near_dup, r["clean_reason"], key in kept_keys)
        for key, r in rows.items()
    }


@hsettings(max_examples=1500, deadline=None)
@given(data=message_sets())
def test_the_pure_rules_agree_with_the_plain_oracle(data):
    msgs, *_ = data
    assert decide(msgs) == oracle(msgs)


@hsettings(max_examples=500, deadline=None)
@given(data=message_sets())
def test_the_verdicts_do_not_depend_on_the_order_of_the_messages(data):
    msgs, order, *_ = data
    assert decide([msgs[i] for i in order]) == decide(msgs)


def test_ties_in_time_fall_to_the_position_in_the_file_then_the_key():
    same_minute = [raw("b", "ann", "a red fox", 0), raw("a", "ann", "a red fox!", 0)]
    assert dedupe_rules.raw_rank(T0, 0, "b") < dedupe_rules.raw_rank(T0, 1, "a")
    assert dedupe_rules.raw_rank(T0, 0, "a") < dedupe_rules.raw_rank(T0, 0, "b")
    attempts = [Candidate(m.key, m.posted_at, "x", False, None, seq) for seq, m in enumerate(same_minute)]
    assert [a.key for a in dedupe_rules.newest_first(attempts)] == ["b", "a"]


def test_rule_34_keeps_the_greatest_user_then_the_latest_then_the_first_in_the_file():
    assert dedupe_rules.kept_before(("bob", T0, 0, "k1"), ("ann", T0 + WINDOW, 0, "k2"))
    assert dedupe_rules.kept_before(("ann", T0 + WINDOW, 5, "k9"), ("ann", T0, 0, "k1"))
    assert dedupe_rules.kept_before(("ann", T0, 0, "k9"), ("ann", T0, 1, "k1"))
    assert dedupe_rules.kept_before(("", T0, 0, "k1"), (None, T0, 0, "k2"))  # no user counts as ""


def test_the_verdict_names_the_first_rule_that_rejects():
    assert dedupe_rules.verdict("nsfw", False, True, "url", False) == ("rejected", "nsfw")
    assert dedupe_rules.verdict(None, False, True, "url", False) == ("rejected", "duplicate")
    assert dedupe_rules.verdict(None, True, True, "url", False) == ("rejected", "near_duplicate")
    assert dedupe_rules.verdict(None, True, False, "url", False) == ("rejected", "url")
    assert dedupe_rules.verdict(None, True, False, None, True) == ("kept", None)
    assert dedupe_rules.verdict(None, True, False, None, False) == ("rejected", "duplicate")


def test_a_message_that_is_no_longer_its_groups_representative_is_no_near_duplicate():
    """What the store layer reads for it may still say near-duplicate (stored while it was the representative)."""
    assert dedupe_rules.near_duplicate_state(False, True, "k1") == (False, None)
    assert dedupe_rules.near_duplicate_state(True, True, "k1") == (True, "k1")
    assert dedupe_rules.near_duplicate_state(True, False, None) == (False, None)


@hsettings(max_examples=500, deadline=None)
@given(data=message_sets())
def test_the_walk_by_shared_words_equals_comparing_every_pair(data):
    msgs, *_ = data
    metric = similarity_function("content_words")
    pair_by_pair = lambda a, b: metric(a, b)  # noqa: E731 - a plain function: the plain walk, every kept attempt
    assert decide(msgs, "content_words", 0.8) == decide(msgs, threshold=0.8, similarity=pair_by_pair)
    assert decide(msgs, "content_words", 0.5) == decide(msgs, threshold=0.5, similarity=pair_by_pair)
