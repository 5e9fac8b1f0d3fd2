"""The stable split: a pure function of the key, close to the ratio, monotonic in it, group-aware on request."""

from __future__ import annotations

import random

from promptmill.publishing.split import (
    TEST,
    TRAIN,
    assign_split,
    description_group,
    split_key_of,
    split_point,
)


def _keys(n: int) -> list[str]:
    rng = random.Random(7)
    return [f"prompt {rng.random()} {i}" for i in range(n)]


def test_split_is_a_pure_function_of_the_key():
    keys = _keys(500)
    first = [assign_split(k, 0.2) for k in keys]
    shuffled = list(reversed(keys))
    again = dict(zip(shuffled, [assign_split(k, 0.2) for k in shuffled], strict=True))
    assert first == [again[k] for k in keys]


def test_share_of_test_rows_follows_the_ratio():
    keys = _keys(20_000)
    for ratio in (0.1, 0.2, 0.5):
        share = sum(assign_split(k, ratio) == TEST for k in keys) / len(keys)
        assert abs(share - ratio) < 0.015, (ratio, share)


def test_raising_the_ratio_only_moves_rows_from_train_to_test():
    keys = _keys(5_000)
    low = {k: assign_split(k, 0.1) for k in keys}
    high = {k: assign_split(k, 0.3) for k in keys}
    assert all(high[k] == TEST for k in keys if low[k] == TEST)
    assert any(low[k] == TRAIN and high[k] == TEST for k in keys)


def test_split_points_are_spread_over_the_unit_interval():
    points = [split_point(k) for k in _keys(2_000)]
    assert all(0.0 <= p < 1.0 for p in points)
    assert min(points) < 0.01 and max(points) > 0.99


def test_description_key_groups_spelling_variants_and_falls_back_to_the_prompt():
    assert description_group("A  Cat ") == description_group("a cat") == "a cat"
    assert description_group("ｃａｔ") == "cat"  # NFKC: full-width letters
    same = {split_key_of(f"prompt {i}", variant, "description") for i, variant in enumerate(["A cat", "a  cat", "a cat "])}
    assert len(same) == 1
    assert split_key_of("p1", None, "description") != split_key_of("p2", None, "description")
    assert split_key_of("p1", "a cat", "prompt") != split_key_of("p2", "a cat", "prompt")
