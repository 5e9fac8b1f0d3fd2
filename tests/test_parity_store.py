"""Parity end to end: `promptmill ingest` + `export-cleaned` on slash-era CSV exports gives the prompts the
original notebook gives (tests/reference/notebook.py, its faithful pandas 3 re-implementation).

The notebook kept the *first* occurrence in file order for its exact-dedupe rules; promptmill keeps the
earliest message, which is the same thing for DiscordChatExporter's oldest-first files. Hence one channel per
comparison (the notebook concatenated channels in directory-listing order, which is not a property of the data).
"""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from promptmill.export_cleaned import export_cleaned
from promptmill.ingest import ingest_paths
from promptmill.settings import Settings

from tests.reference.notebook import clean_like_notebook
from tests.synth import SynthConfig, write_exports


def _notebook(paths) -> pd.DataFrame:
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    df.columns = [c.lower() for c in df.columns]
    return clean_like_notebook(df)


@pytest.mark.parametrize(("seed", "date_format"), [(11, "iso"), (12, "legacy"), (13, "us")])
def test_export_cleaned_equals_the_notebook(engine, tmp_path, seed, date_format):
    cfg = SynthConfig(messages=2500, seed=seed, channels=1, users=30, era="slash", formats=("csv",),
                      csv_date_format=date_format, near_dup_rate=0.4, junk_rate=0.15, mean_gap_s=150)
    paths = write_exports(tmp_path / "landing", cfg)
    expected = _notebook(paths)
    assert len(expected) > 400  # the data exercises the rules, it is not trivially small

    report = ingest_paths(engine, [tmp_path / "landing"], Settings(cleaning_profile="parity"))
    assert report.files_ingested == len(paths)
    out = tmp_path / "cleaned_discord_prompts.tsv"
    export_cleaned(engine, out)
    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]

    got_prompts = [r[1] for r in rows]
    assert sorted(got_prompts) == sorted(expected["content"].tolist())  # the same prompts
    assert len(set(got_prompts)) == len(got_prompts)
    if date_format == "iso":  # full timestamps: the order by date is exactly the notebook's
        assert got_prompts == expected["content"].tolist()
        assert [r[3] for r in rows] == expected["username"].tolist()
