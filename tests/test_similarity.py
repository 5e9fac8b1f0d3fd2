"""The near-duplicate metrics (pure functions, no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from promptmill.choices import NEAR_DUP_METRICS
from promptmill.similarity import content_words, content_words_similarity, similarity_function


def test_every_metric_of_the_settings_has_a_function():
    for metric in NEAR_DUP_METRICS:
        assert (similarity_function(metric) is None) == (metric == "off")
    with pytest.raises(ValueError, match="content_words"):
        similarity_function("soundex")


def test_content_words_drop_function_and_style_words():
    assert content_words("A ninja goat on a roof, trending on artstation, highly detailed, 8k, by greg rutkowski") \
        == "goat ninja roof"
    assert content_words("digital art, 8k") == "8k art digital"  # nothing but style words: all of them


@pytest.mark.parametrize(("older", "newer"), [
    # the same picture: style keywords added, dropped, reordered, repeated
    ("a ninja goat on a roof", "a ninja goat on a roof, trending on artstation, highly detailed, 8k"),
    ("portrait of a knight, oil painting, by greg rutkowski", "portrait of a knight, digital art, octane render"),
    ("castle in the clouds, cinematic lighting, 4k", "cinematic lighting, castle in the clouds, 4k, 4k, 4k"),
])
def test_retries_with_other_style_words_are_near_duplicates(older, newer):
    assert content_words_similarity(older, newer) > 0.8


@pytest.mark.parametrize(("older", "newer"), [
    # other pictures that share their style keywords: Jaro (the original) merges these
    ("ninja goat, digital art, trending on artstation, 8k", "ninja mouse, digital art, trending on artstation, 8k"),
    ("a red fox in the snow, highly detailed, octane render", "a blue whale in the sea, highly detailed, octane render"),
])
def test_other_subjects_with_the_same_style_words_are_not(older, newer):
    assert content_words_similarity(older, newer) <= 0.8
    assert similarity_function("jaro")(older, newer) > 0.6  # what parity does with them


def test_prompts_of_style_words_only_fall_back_to_the_whole_text():
    assert content_words_similarity("digital art, 8k", "digital art, 8k") == 1.0
    assert content_words_similarity("digital art, 8k", "a dragon, digital art") < 1.0


@given(st.text(max_size=60), st.text(max_size=60))
def test_any_texts_give_a_symmetric_score_in_0_1(a, b):
    score = content_words_similarity(a, b)
    assert 0.0 <= score <= 1.0 and score == content_words_similarity(b, a)
