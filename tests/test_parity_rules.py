"""Parity: bots.extract + cleaning.clean give what the original notebook gives, rule by rule.

The oracle is tests/reference/notebook.py (pandas string operations, as the notebook wrote them). Only
per-row behaviour is compared here (rules 1-10 and 14-33); rules 11-13 and 34-35 work across rows and
belong to the dedupe stage - for them this file only checks that the oracle compares the raw prompts that
extract() hands over.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from promptmill.bots import extract
from promptmill.cleaning import CLEANING_STEPS, clean

from tests.reference.notebook import clean_like_notebook, extract_like_notebook

NAUGHTY = "There were naughty dreams that had to be popped"


def slash(prompt: str, args: str = " seed:1234567890 cfg_scale:7.5", user: str = "moonfox", suffix: str = "") -> str:
    return f"Dreamt in `6.31s` for @{user}... `/dream prompt:{prompt}{args}`{suffix}"


# (rule the message is about, content). Each rule 1-33 except the cross-row 11-13 changes or rejects at
# least one of these; test_every_rule_is_exercised checks that claim.
CASES: list[tuple[int, str | None]] = [
    (0, slash("a lighthouse on a cliff at dusk, oil painting")),
    (0, slash("portrait of a knight, by greg rutkowski, 8k", args=" seed:1 cfg_scale:7 steps:50 sampler:k_lms")),
    (1, None),
    (1, ""),
    (2, "hello everyone"),
    (2, "Dreaming for @moonfox... `/dream prompt:a cat seed:1`"),
    (2, "  \n" + slash("leading whitespace is fine")),
    (3, slash("a cat", suffix=f"\n{NAUGHTY}")),
    (3, slash("a castle in Sussex")),
    (3, slash("a cat", user="sexton")),
    (4, slash("a cat") + "\n`/dream prompt:a dog seed:2`"),
    (5, slash("a cat for @someone")),
    (5, "Dreamt in `6.31s` `/dream prompt:a cat seed:1`"),
    (6, slash("a cat", user="Jöhn Doe Jr.")),
    (6, slash("a cat", user="moon fox")),
    (7, slash("a lighthouse", args="", suffix="\n**WARNING:** Prompt truncated after tokenization")),
    (7, slash("a lighthouse", args="")),
    (8, slash("a cat", args=" negative_prompt:ugly, blurry seed:1")),
    (8, slash("a catnegative_prompt:dog", args="")),
    (9, slash("a cat, style: oil painting")),
    (9, slash("a red fox\nstyle:x and a dog")),  # "[^ ]" crosses the newline: "a red" is kept
    (10, slash("a lighthouse", suffix="\n**WARNING:** Requested more than 50 `steps`")),
    (14, slash("prompt a cat in a hat")),
    (14, slash("Prompt: a cat in a hat")),
    (14, slash("promptly delivered pizza")),
    (15, slash("a cat negative prompt dog")),
    (15, slash("a cat negative _ prompt dog")),
    (15, slash("a cat, negative_prompt dog")),
    (16, slash("a cat in a hat seed")),
    (0, slash("seed of a cat, seed")),  # rule 16 does not apply: "seed" twice
    (17, slash("a cat cfg _ scale 7")),
    (18, slash("a cat --ar 16 --v 4 --q 2 --s 750 --no dogs")),
    (19, slash("a cat --ar 16")),
    (20, slash("a cat 😀 in a hat 👍🏽")),
    (21, slash("1995 ...")),
    (21, slash("日本 123")),
    (22, slash("1995 #")),
    (23, slash("a httpd server room")),
    (24, slash("(a cat) [in] {a} hat | x")),
    (25, slash("a cat = dog")),
    (25, slash("a cat @ home")),
    (25, slash("a cat\nand a dog")),
    (26, slash("1 9 9 5 s photo, 4 k, 3 d render")),
    (27, slash("a cat , a dog")),
    (28, slash("a  cat   and a dog")),
    (29, slash("a café in paris")),
    (30, slash("'a cat in a hat'.")),
    (31, slash("my cat dreamt in paris")),
    (32, slash("ab")),
    (33, slash("dreaming for a cat")),
]


def frame(contents: list[str | None]) -> pd.DataFrame:
    """Rows as the notebook read them: lower-cased DiscordChatExporter CSV columns."""
    count = len(contents)
    return pd.DataFrame(
        {
            "authorid": ["1"] * count,
            "author": ["DreamBot#1234"] * count,
            "date": [f"2022-11-05T12:{minute % 60:02d}:00+00:00" for minute in range(count)],
            "content": contents,
            "attachments": [f"https://cdn.discordapp.com/attachments/1/{i}/a.png" for i in range(count)],
            "reactions": [""] * count,
        }
    )


def ours(content: str | None) -> tuple[str, str] | None:
    """(cleaned prompt, username) as extract + clean give it, None when either rejects."""
    generation = extract(content)
    if generation.reject is not None:
        return None
    cleaned = clean(generation.raw_prompt)
    if cleaned.reject is not None:
        return None
    return cleaned.text, generation.username


def reference(contents: list[str | None]) -> list[tuple[str, str] | None]:
    """The notebook's per-row outcome for each message (dedupe steps off)."""
    result = clean_like_notebook(frame(contents), dedupe=False)
    kept = {index: (row.content, row.username) for index, row in zip(result.index, result.itertuples(), strict=True)}
    return [kept.get(index) for index in range(len(contents))]


def test_each_rule_case_matches_the_notebook():
    contents = [content for _, content in CASES]
    expected = reference(contents)
    mismatches = [
        (rule, content, want, got)
        for (rule, content), want in zip(CASES, expected, strict=True)
        if (got := ours(content)) != want
    ]
    assert not mismatches


def test_cases_both_keep_and_reject():
    outcomes = reference([content for _, content in CASES])
    assert any(outcome is None for outcome in outcomes)
    assert sum(outcome is not None for outcome in outcomes) >= 10


def _rules_fired(content: str | None) -> set[int]:
    """Which rules change or reject this message (rules 1-10 from the extract outcome, 14-33 per step)."""
    generation = extract(content)
    reason_rule = {
        "empty": 1, "not_a_generation": 2, "in_progress": 2, "nsfw": 3, "nsfw_word": 3,
        "multiple_commands": 4, "no_user": 5, "multiple_users": 5,
    }  # fmt: skip
    if generation.reject is not None:
        return {reason_rule[generation.reject]}
    fired = {6, 7}  # every kept message gets its user and its prompt cut out
    after_command = content.split("/dream prompt:")[1][:-1]
    before_negative = after_command.split("negative_prompt:")[0]
    before_arguments = re.sub(" [^ ]*:.*", "", before_negative)
    if before_negative != after_command:
        fired.add(8)
    if before_arguments != before_negative and not before_negative.startswith(before_arguments + " seed:"):
        fired.add(9)  # cut more than the usual " seed:... cfg_scale:..." tail
    if "\n**WARNING:**" in before_arguments:
        fired.add(10)
    text = generation.raw_prompt
    for step in CLEANING_STEPS:
        result = step.function(text)
        if result != text:
            fired.add(step.rule)
        if result is None:
            break
        text = result
    return fired


def test_every_rule_is_exercised():
    fired = set().union(*(_rules_fired(content) for _, content in CASES))
    assert fired >= set(range(1, 11)) | set(range(14, 34))


@pytest.mark.parametrize(("rule", "content"), [case for case in CASES if case[0] >= 6])
def test_each_case_exercises_its_rule(rule, content):
    assert rule in _rules_fired(content)


def test_raw_prompts_are_what_the_notebook_deduplicates():
    """Rules 12-13 compare the prompt after rule 10: extract's raw_prompt must be exactly that text."""
    contents = [content for _, content in CASES]
    notebook = extract_like_notebook(frame(contents))
    for index, row in notebook.iterrows():
        generation = extract(contents[index])
        assert (generation.raw_prompt, generation.username) == (row["prompt"], row["username"])
    kept = {index for index, content in enumerate(contents) if extract(content).reject is None}
    assert kept == set(notebook.index)


def test_reference_dedupe_rules_12_13_34():
    """The oracle's cross-row rules on a small history (the dedupe stage is compared with it elsewhere)."""
    rows = [
        ("2022-11-05T10:00:00+00:00", "ann", "a red fox in the snow"),  # 13: ann retried 20 min later
        ("2022-11-05T10:20:00+00:00", "ann", "a red fox in snow, 4k"),  # 34: bob's row cleans to the same
        ("2022-11-05T12:00:00+00:00", "ann", "a red fox in the snow, oil"),  # 1h40 after 10:20: kept
        ("2022-11-05T10:05:00+00:00", "bob", "a red fox in the snow"),  # 12: same raw prompt as row 0
        ("2022-11-05T10:06:00+00:00", "bob", "a red fox in snow, 4k."),
        ("2022-11-05T10:07:00+00:00", "cy", "completely different words here"),
    ]
    df = frame([slash(prompt, user=user) for _, user, prompt in rows])
    df["date"] = [date for date, _, _ in rows]

    result = clean_like_notebook(df)
    # Rule 34 runs in the (username, date) descending order of rule 13, so bob's row wins over ann's.
    assert list(result.index) == [4, 5, 2]
    assert list(result["content"]) == ["a red fox in snow, 4k", "completely different words here", "a red fox in the snow, oil"]
    assert list(result["username"]) == ["bob", "cy", "ann"]
    assert list(result["attachments"]) == list(df["attachments"].iloc[[4, 5, 2]])

    assert list(clean_like_notebook(df, dedupe=False).index) == [0, 3, 4, 5, 1, 2]


# --- property: random prompts in the slash-era template --------------------------------------------
prompt_pieces = st.sampled_from(
    [
        "a", "cat", "lighthouse", "Portrait", "of", " ", " ", ", ", ".", "'", '"', "!", "?", ";", "&", "/", "–",
        "-", "--", "--ar 16:9", ":", ": ", "=", "@", "#", "+", "*", "_", "|", "(", ")", "[", "]", "{", "}", "`",
        "0", "1", "4 k", "8 k", "1 9 9 5 s", "3 d", "2", "😀", "👍🏽", "❤️", "1️⃣", "é", "ü", "日本", "٣", "\n",
        "\t", "http", "https://x.y/a.png", "seed", "prompt", "Prompt", "negative prompt", "negative _ prompt",
        "negative_prompt", "negative_prompt:", "cfg _ scale", "style:", "sex", "Sussex", "dreamt in",
        "dreaming for", "for @", "/dream prompt:", "...", "**WARNING:**", NAUGHTY,
    ]
)  # fmt: skip
prompts = st.lists(prompt_pieces, max_size=14).map("".join)
argument_tails = st.sampled_from(
    [
        "",
        " seed:1234567890 cfg_scale:7.5",
        " negative_prompt:ugly, blurry hands seed:42",
        " seed:1 cfg_scale:7 steps:50 sampler:k_euler_a width:768 height:512",
    ]
)
suffixes = st.sampled_from(
    ["", "\n**WARNING:** Prompt truncated after tokenization", f"\n{NAUGHTY}", "\n**WARNING:** a\n**WARNING:** b"]
)
users = st.sampled_from(["moonfox", "moon fox", "john.doe", "Jöhn Doe Jr.", "日本語", "x... y"])
messages = st.builds(slash, prompts, argument_tails, users, suffixes)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, min_size=1, max_size=8))
def test_generated_messages_match_the_notebook(contents):
    assert [ours(content) for content in contents] == reference(contents)
