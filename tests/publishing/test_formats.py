"""Every format round-trips hostile text: newlines, tabs, quotes, separators, the formats' own tokens."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from promptmill.publishing import formats
from promptmill.publishing.rows import PublishRow, row_id_of

HOSTILE = [
    "line one\nline two",
    "windows\r\nline",
    "old mac\rline",
    "tab\tseparated\tvalues",
    'quoted "word", comma',
    "a = b = c",
    "[BOS]injected",
    "ends with <endoftext>",
    "has </s> inside",
    "has <|endoftext|> inside",
    "unicode line sep\u2028and para sep\u2029",
    "  leading and trailing spaces  ",
    "emoji 🐱 and accents é ñ and CJK 猫",
    "backslash \\ and \\n literal",
    "\x1b[31mansi\x1b[0m and form feed \x0c",
    "#comment-like, 'single quotes'",
]


def make_row(prompt: str, description: str | None, *, no_object: bool = False, args: dict | None = None) -> PublishRow:
    return PublishRow(
        row_id=row_id_of(prompt),
        prompt=prompt,
        description=description,
        no_object=no_object,
        channel_id="42",
        channel_name="chan\nnel, \"x\"",
        username_hash="0123456789abcdef",
        posted_at=dt.datetime(2023, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
        args=args if args is not None else {"seed": 12345678901, "scale": 7.5, "text": "a\nb"},
        label_version="lv1",
    )


def hostile_rows() -> list[PublishRow]:
    rows = [make_row(f"prompt {i}: {text}", f"description {i}: {text}") for i, text in enumerate(HOSTILE)]
    rows += [make_row(f"plain prompt {i}", text) for i, text in enumerate(HOSTILE)]
    rows.append(make_row("x = y, an equation = art", "an equation"))
    rows.append(make_row("surprise me", None, no_object=True))
    return rows


def _write(writer, rows) -> bytes:
    buffer = io.BytesIO()
    writer(rows, buffer)
    return buffer.getvalue()


def test_strings_txt_round_trip_and_exclusion_of_ambiguous_rows():
    rows = hostile_rows()
    writable = [r for r in rows if formats.string_format_problem(r) is None]
    problems = {r.prompt: formats.string_format_problem(r) for r in rows}
    # the rows carrying a token of either string format (or " = " in the description) are the ones left out
    for text in ("[BOS]injected", "ends with <endoftext>", "has </s> inside", "has <|endoftext|> inside", "a = b = c"):
        assert any(p == "separator_token" and text in prompt for prompt, p in problems.items())
    assert problems["surprise me"] == "no_object"
    # " = " inside a prompt is fine: the reader splits on the first one, which belongs to the format
    assert any(" = " in r.prompt for r in writable)
    data = _write(formats.write_strings_txt, writable)
    assert formats.read_strings_txt(data) == [(r.description, r.prompt) for r in writable]
    assert data.count(formats.TXT_BOS.encode()) == len(writable)


def test_strings_csv_round_trip_with_the_csv_module_and_pandas():
    writable = [r for r in hostile_rows() if formats.string_format_problem(r) is None]
    data = _write(formats.write_strings_csv, writable)
    expected = [(r.description, r.prompt) for r in writable]
    assert formats.read_strings_csv(data) == expected
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["text"]
    assert frame["text"].tolist() == [f"{d}</s>{p}<|endoftext|>" for d, p in expected]


def test_result_csv_round_trip_carries_every_row_and_spells_out_no_object():
    rows = hostile_rows()
    data = _write(formats.write_result_csv, rows)
    expected = [(r.prompt, "_no_object" if r.no_object else r.description) for r in rows]
    assert formats.read_result_csv(data) == expected
    frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    assert list(frame.columns) == ["prompt", "image_description"]
    assert list(zip(frame["prompt"], frame["image_description"], strict=True)) == expected


def test_jsonl_round_trip_one_record_per_line():
    rows = hostile_rows()
    data = _write(lambda rs, out: formats.write_jsonl(rs, "train", out), rows)
    assert data.count(b"\n") == len(rows)
    # a text-mode reader with universal newlines must see the same number of lines
    assert len(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8").readlines()) == len(rows)
    records = formats.read_jsonl(data)
    assert [r["prompt"] for r in records] == [row.prompt for row in rows]
    assert [r["description"] for r in records] == [row.description for row in rows]
    assert records[0]["args"] == rows[0].args and records[0]["posted_at"] == "2023-05-06T07:08:09.123456Z"
    assert set(records[0]) == set(formats.JSONL_FIELDS)


def test_parquet_round_trip():
    rows = hostile_rows()
    data = _write(lambda rs, out: formats.write_parquet(rs, "test", out), rows)
    records = formats.read_parquet(data)
    jsonl = formats.read_jsonl(_write(lambda rs, out: formats.write_jsonl(rs, "test", out), rows))
    assert records == jsonl


def test_writers_are_deterministic():
    rows = hostile_rows()
    for writer in (formats.write_strings_csv, formats.write_result_csv,
                   lambda rs, out: formats.write_jsonl(rs, "train", out),
                   lambda rs, out: formats.write_parquet(rs, "train", out)):
        assert _write(writer, rows) == _write(writer, list(rows))
    assert b"\r\n" not in _write(formats.write_result_csv, [make_row("a", "b"), make_row("c", "d")])


def test_a_corrupt_strings_file_is_reported():
    with pytest.raises(formats.FormatError):
        formats.read_strings_txt(b"[BOS]no separator<endoftext>")
    with pytest.raises(formats.FormatError):
        formats.read_strings_csv(b"wrong\nx\n")


_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_text, _text), min_size=1, max_size=6, unique_by=lambda t: t[0]))
@example([("0", " =")])  # a description ending in " =" forms the separator with it
def test_any_text_round_trips_or_is_excluded_from_the_string_formats(pairs):
    rows = [make_row(prompt, description) for prompt, description in pairs]
    assert formats.read_result_csv(_write(formats.write_result_csv, rows)) == [(r.prompt, r.description) for r in rows]
    records = formats.read_jsonl(_write(lambda rs, out: formats.write_jsonl(rs, "train", out), rows))
    assert [(r["prompt"], r["description"]) for r in records] == [(r.prompt, r.description) for r in rows]
    writable = [r for r in rows if formats.string_format_problem(r) is None]
    expected = [(r.description, r.prompt) for r in writable]
    assert formats.read_strings_txt(_write(formats.write_strings_txt, writable)) == expected
    assert formats.read_strings_csv(_write(formats.write_strings_csv, writable)) == expected
