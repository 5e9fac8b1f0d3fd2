"""Issue #18.7: `promptmill evaluate-labels` scores the labeling settings on a gold set, stores the result per label
version and shows it on the dataset page, without touching the store's prompts or ledger."""

from __future__ import annotations

import csv
import json

import pytest
from labeling_helpers import API_KEY, label_rows, ledger_rows, make_prompts
from promptmill.cli import main
from promptmill.dashboard import collect_summary
from promptmill.dashboard.page import render_page
from promptmill.labeling.evaluate import GoldSetError, read_gold, score, token_f1

from tests.fake_openai.server import NO_OBJECT, describe


def test_token_f1_and_score_by_hand():
    assert token_f1("a red fox", "A red fox.") == 1.0
    assert token_f1("a fox", "a red fox") == pytest.approx(0.8)  # precision 1, recall 2/3
    assert token_f1("a cat", "lions") == 0.0
    result = score(["a red fox", NO_OBJECT, "a cat", NO_OBJECT], ["a red fox", NO_OBJECT, NO_OBJECT, None])
    assert result["exact_match"] == 0.5 and result["token_f1"] == 0.5 and result["unanswered"] == 1
    assert result["no_object_precision"] == 0.5 and result["no_object_recall"] == 0.5


def test_a_gold_file_without_the_columns_is_one_clear_error(tmp_path):
    bad = tmp_path / "gold.csv"
    bad.write_text("text,label\na cat,cat\n")
    with pytest.raises(GoldSetError, match=r"gold.csv: needs a header with 'prompt' and 'description' columns"):
        read_gold(bad)


def test_evaluate_labels_through_the_cli(engine, store_url, fake, tmp_path, monkeypatch, capsys):
    texts = make_prompts(40, seed=73)
    gold = tmp_path / "gold.tsv"
    with gold.open("w", newline="") as f:
        writer = csv.writer(f, dialect="excel-tab")
        writer.writerow(["prompt", "description"])
        for n, text in enumerate(texts):
            # the fake model's own answer, except for every fourth pair: an agreement below 100% to measure
            writer.writerow([text, describe(text) if n % 4 else "something else entirely"])
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    code = main(["evaluate-labels", "--db", store_url, "--gold", str(gold), "--base-url", fake.base_url,
                 "--pack-size", "10", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["prompts"] == 40 and result["unanswered"] == 0 and result["requests"] == 4
    assert result["exact_match"] == 0.75
    assert result["no_object_recall"] == 1.0 and result["usd_per_1k_prompts"] > 0
    assert label_rows(engine) == {} and ledger_rows(engine) == []  # the store's labels and ledger untouched
    summary = collect_summary(engine, label_version=result["label_version"])
    (version,) = [v for v in summary["labeling"]["versions"] if v["version"] == result["label_version"]]
    assert version["evaluation"]["exact_match"] == 0.75 and version["evaluation"]["gold"] == "gold.tsv"
    assert "F1 " in render_page(summary) and "exact 75%" in render_page(summary)
