"""The original cleaning notebook (data_cleaning.ipynb), re-written for pandas 3 - the parity oracle.

This follows docs/cleaning-rules.md rule by rule with pandas string operations, the way the notebook
author wrote them, defects included. It is deliberately NOT optimised (the near-duplicate loop stays
quadratic): benchmarks time it as "the original algorithm". Only what no longer runs was replaced:

- ``DataFrame.append`` (removed in pandas 2) -> a Python list of kept rows;
- ``jellyfish.jaro_distance`` (removed in jellyfish 1.0; it was Jaro *similarity*) -> rapidfuzz
  ``Jaro.similarity``, which gives the same values.

pandas 3 specifics pinned down so the oracle means what the notebook meant on pandas 1.x:

- text columns are converted to ``object`` dtype: pandas 3's default string dtype runs regex operations
  with pyarrow's RE2 engine (no lookbehind for rule 26, other Unicode classes), the notebook ran Python ``re``;
- multi-character ``str.split`` patterns are passed with ``regex=False``: the rules split on literal text
  (``"... "``, ``"\\n**WARNING:**"``), whereas pandas would read a multi-character pattern as a regex;
- dates are parsed with ``utc=True, format="mixed"`` (pandas 3 refuses mixed offsets/formats otherwise);
- the final date sort is stable so ties keep a deterministic order.

Rule 18 reads "the text after the first ``--``" literally (``split('--', n=1)``).
"""

from __future__ import annotations

import demoji
import pandas as pd
from rapidfuzz.distance import Jaro

NAUGHTY_NOTICE = "There were naughty dreams that had to be popped"
TEXT_SYMBOLS = " .,\"-'!–/;&?"
ALLOWED_SYMBOLS = " .,\"-'!–/;&?+*_#|"
ONE_HOUR = pd.Timedelta(hours=1)


def clean_like_notebook(df: pd.DataFrame, *, dedupe: bool = True) -> pd.DataFrame:
    """Rules 1-35 on concatenated export rows (columns authorid, author, date, content, attachments, reactions).

    Returns the notebook's TSV frame: columns ``content`` (the cleaned prompt), ``attachments``,
    ``username``, ordered by date, keeping the input index (so callers can map rows back). With
    ``dedupe=False`` the cross-row rules 12, 13 and 34 are skipped, leaving only per-row behaviour.
    """
    df = extract_like_notebook(df)
    df["date"] = pd.to_datetime(df["date"], utc=True, format="mixed")  # 11
    if dedupe:
        df = df.drop_duplicates(subset="prompt")  # 12
        df = remove_near_duplicates(df)  # 13

    # --- rules 14-33: clean the prompt text ---
    starts_with_prompt = df["prompt"].str.lower().str.startswith("prompt")  # 14
    df.loc[starts_with_prompt, "prompt"] = df.loc[starts_with_prompt, "prompt"].str[6:]
    df["prompt"] = df["prompt"].str.split("negative prompt", regex=False).str[0]  # 15
    df["prompt"] = df["prompt"].str.split("negative _ prompt", regex=False).str[0]
    df["prompt"] = df["prompt"].str.split("negative_prompt", regex=False).str[0]
    trailing_seed = df["prompt"].str.endswith("seed") & (df["prompt"].str.count("seed") == 1)  # 16
    df.loc[trailing_seed, "prompt"] = df.loc[trailing_seed, "prompt"].str.split("seed", regex=False).str[0]
    df["prompt"] = df["prompt"].str.split("cfg _ scale", regex=False).str[0]  # 17
    parts = df["prompt"].str.split("--", n=1, regex=False)  # 18
    df = _keep(df, ~parts.apply(lambda p: len(p) > 1 and len(p[1]) > 20))
    df["prompt"] = df["prompt"].str.split("--", regex=False).str[0]  # 19
    df["prompt"] = df["prompt"].apply(lambda x: demoji.replace(x, ""))  # 20
    df = _keep(df, ~df["prompt"].apply(lambda x: all(c in TEXT_SYMBOLS or c.isdigit() or not c.isascii() for c in x)))  # 21
    df = _keep(df, df["prompt"].apply(lambda x: any(c.isalpha() for c in x if c not in TEXT_SYMBOLS and not c.isdigit())))  # 22
    df = _keep(df, ~df["prompt"].str.contains("http", regex=False))  # 23
    df["prompt"] = df["prompt"].str.replace(r"[()\[\]{}|]", "", regex=True)  # 24
    df = _keep(df, df["prompt"].apply(lambda x: all(c in ALLOWED_SYMBOLS or c.isdigit() or c.isalpha() for c in x)))  # 25
    df["prompt"] = df["prompt"].str.replace(r"(?<=\d)\s(?=\d|[KkdDs][^\w]|[KkdDs]$)", "", regex=True)  # 26
    df["prompt"] = df["prompt"].str.replace(r"\s,", ",", regex=True)  # 27
    df["prompt"] = df["prompt"].str.replace(r"\s+", " ", regex=True)  # 28
    df = _keep(df, ~df["prompt"].apply(lambda x: any(not (c in TEXT_SYMBOLS or c.isdigit() or c.isascii()) for c in x)))  # 29
    df["prompt"] = df["prompt"].str.strip(": ='.,\"")  # 30
    df = _keep(df, ~df["prompt"].str.contains("dreamt in", regex=False))  # 31
    df = _keep(df, df["prompt"].str.len() > 2)  # 32
    df = _keep(df, ~df["prompt"].str.startswith("dreaming for"))  # 33

    if dedupe:
        df = df.drop_duplicates(subset="prompt")  # 34
    df = df.sort_values("date", kind="stable")  # 35
    df["content"] = df["prompt"]
    return df[["content", "attachments", "username"]]


def _keep(df: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """``df[mask]``, also when a filter emptied the frame (then ``apply`` gives an object-dtype mask)."""
    return df[mask.astype(bool)]


def extract_like_notebook(df: pd.DataFrame) -> pd.DataFrame:
    """Rules 1-10 only: the kept rows with ``username`` and ``prompt`` (the raw prompt rules 12-13 compare)."""
    df = df.copy()
    for column in ("content", "attachments", "author", "date"):
        if column in df.columns:
            df[column] = df[column].astype(object)

    # --- A. rules 1-10: keep finished /dream generations, take the user and the prompt ---
    df = _keep(df, df["content"].notna())  # 1
    df = _keep(df, df["content"] != "")
    df = _keep(df, df["content"].str.split().str[0] == "Dreamt")  # 2
    df = _keep(df, ~df["content"].str.contains(NAUGHTY_NOTICE, regex=False))  # 3
    df = _keep(df, ~df["content"].str.contains("sex", regex=False))
    df = _keep(df, df["content"].str.count("/dream prompt:") == 1)  # 4
    df = _keep(df, df["content"].str.count("for @") == 1)  # 5
    df["username"] = df["content"].str.split("for @", regex=False).str[1].str.split("... ", regex=False).str[0]  # 6
    df["prompt"] = df["content"].str.split("/dream prompt:", regex=False).str[1].str[:-1]  # 7
    df["prompt"] = df["prompt"].str.split("negative_prompt:", regex=False).str[0]  # 8
    df["prompt"] = df["prompt"].str.replace(" [^ ]*:.*", "", regex=True)  # 9
    df["prompt"] = df["prompt"].str.split("\n**WARNING:**", regex=False).str[0]  # 10

    return df


def remove_near_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Rule 13, "keep only the latest attempt of a user", as the notebook's quadratic loop.

    Rows are walked by (username, date) descending; a row is dropped when a kept row of the same user is
    less than an hour later and has a Jaro similarity above 0.6 with it. Every row re-filters all kept
    rows by username, as the notebook's ``new_df[new_df.username == row.username]`` did.
    """
    df = df.sort_values(["username", "date"], ascending=False)
    kept = []  # the notebook grew a DataFrame with DataFrame.append
    kept_positions = []
    for position, row in enumerate(df.itertuples()):
        same_user = [k for k in kept if k.username == row.username]
        recent = [k for k in same_user if k.date - row.date < ONE_HOUR]
        if any(Jaro.similarity(k.prompt, row.prompt) > 0.6 for k in recent):
            continue
        kept.append(row)
        kept_positions.append(position)
    return df.iloc[kept_positions]
