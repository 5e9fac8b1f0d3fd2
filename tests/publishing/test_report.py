"""The quality report of a publication (publishing/report.py) on real stores."""

from __future__ import annotations

from promptmill.publishing.report import quality_report, report_lines

from tests.publishing.conftest import LABEL_VERSION, add_row
from tests.test_dedupe import load, raw


def _store(engine):
    load(engine, [
        raw("k1", "ann", "a lighthouse on a cliff at dusk", 0),
        raw("k2", "ann", "a lighthouse on a cliff at dusk, oil painting", 10),  # k1 its near-duplicate
        raw("k3", "bob", "a red fox in the snow", 20),
        raw("k4", "cid", "a red fox in the snow", 30),  # a duplicate
        raw("k5", "dan", "sex on the beach cocktail", 40),  # nsfw_word: counted, never shown
    ])  # fmt: skip
    add_row(engine, "a castle at dawn", "a castle at dawn")
    add_row(engine, "a castle at dawn, 4k", "a castle at dawn")  # the same description twice
    add_row(engine, "surprise me", None, no_object=True)
    add_row(engine, "a dragon over a city at night", "a dragon flying over a city at night")


def test_rejections_merges_and_label_statistics(engine):
    _store(engine)
    report = quality_report(engine, LABEL_VERSION)
    rejections = report["rejections"]
    assert rejections["near_duplicate"] == {"count": 1, "examples": ["a lighthouse on a cliff at dusk"]}
    assert rejections["duplicate"]["examples"] == ["a red fox in the snow"]
    assert rejections["nsfw_word"] == {"count": 1}  # no examples for NSFW reasons
    assert report["near_duplicate_merges"] == [
        {"dropped": "a lighthouse on a cliff at dusk", "kept": "a lighthouse on a cliff at dusk, oil painting"}]
    labels = report["labels"]
    assert (labels["labeled"], labels["no_object"], labels["no_object_rate"]) == (4, 1, 0.25)
    assert labels["description_chars"]["min"] == len("a castle at dawn")
    assert labels["description_chars"]["max"] == len("a dragon flying over a city at night")
    assert labels["most_repeated_descriptions"] == [["a castle at dawn", 2]]
    assert quality_report(engine, LABEL_VERSION) == report  # deterministic: unchanged stores publish the same bytes


def test_the_card_lines_show_no_nsfw_text(engine):
    _store(engine)
    text = "\n".join(report_lines(quality_report(engine, LABEL_VERSION)))
    assert "| nsfw_word | 1 | (not shown) |" in text and "beach" not in text
    assert "| `a lighthouse on a cliff at dusk` | `a lighthouse on a cliff at dusk, oil painting` |" in text
    assert "`_no_object` 1 (25.0%)" in text


def test_examples_name_no_user(engine):
    load(engine, [
        raw("m1", "ann", "a portrait of @bob.smith and @zed, oil painting", 0),
        raw("m2", "bob.smith", "a portrait of @bob.smith and @zed, oil painting", 10),  # a duplicate
    ])  # fmt: skip
    report = quality_report(engine, LABEL_VERSION)
    examples = [e for entry in report["rejections"].values() for e in entry.get("examples", [])]
    assert examples and all("bob" not in e and "zed" not in e for e in examples)
    assert "a portrait of @user and @user, oil painting" in examples
