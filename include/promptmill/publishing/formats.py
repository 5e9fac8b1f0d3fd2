"""The file formats of one publication: writers (deterministic bytes) and readers (for round trips and consumers).

Determinism: UTF-8 without BOM, ``\\n`` line endings, rows in the order given (the caller sorts by content),
JSON with a fixed key order and no float re-formatting beyond Python's shortest round-trip repr.

Hostile text: CSV and JSON quote/escape anything, so they carry every row as is. The two "string" formats
(``*_strings.txt``, ``*_strings.csv``) are token-delimited training texts with no escape mechanism; a row whose
prompt or description contains one of their separator tokens would silently corrupt the sample, so such a row is
left out of BOTH string formats (kept in the others) and counted in the manifest.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Sequence
from typing import BinaryIO

import orjson

from promptmill.publishing.rows import NO_OBJECT, PublishRow, format_timestamp

# the original format: [BOS]<description> = <prompt><endoftext>, concatenated with no separator
TXT_BOS = "[BOS]"
TXT_EQUALS = " = "
TXT_EOS = "<endoftext>"
# the later training format: <description></s><prompt><|endoftext|> in a one-column CSV
CSV_SEP = "</s>"
CSV_EOS = "<|endoftext|>"
STRING_TOKENS = (TXT_BOS, TXT_EOS, CSV_SEP, CSV_EOS)

JSONL_FIELDS = (
    "id",
    "prompt",
    "description",
    "no_object",
    "split",
    "channel_id",
    "channel_name",
    "username_hash",
    "posted_at",
    "args",
    "label_version",
)


class FormatError(ValueError):
    """A published file does not parse as its format."""


def string_format_problem(row: PublishRow) -> str | None:
    """Why ``row`` cannot be written to the string formats without ambiguity, or None."""
    if row.description is None:
        return "no_object"  # the original only wrote rows with a real description
    for token in STRING_TOKENS:
        if token in row.prompt or token in row.description:
            return "separator_token"
    # The reader splits on the first " = ", so the description must not contain it, nor form it with the
    # separator itself (a description ending in " =" would: " = = prompt"). The prompt may contain it.
    if (row.description + TXT_EQUALS).find(TXT_EQUALS) != len(row.description):
        return "separator_token"
    return None


# --- the original strings: train_strings.txt / test_strings.txt ---------------------------------------------------


def write_strings_txt(rows: Iterable[PublishRow], out: BinaryIO) -> int:
    count = 0
    for row in rows:
        out.write(f"{TXT_BOS}{row.description}{TXT_EQUALS}{row.prompt}{TXT_EOS}".encode())
        count += 1
    return count


def read_strings_txt(data: bytes) -> list[tuple[str, str]]:
    """(description, prompt) pairs of a strings .txt file."""
    text = data.decode("utf-8")
    if not text:
        return []
    if not text.endswith(TXT_EOS):
        raise FormatError(f"strings file does not end with {TXT_EOS}")
    pairs = []
    for index, sample in enumerate(text[: -len(TXT_EOS)].split(TXT_EOS)):
        if not sample.startswith(TXT_BOS) or TXT_EQUALS not in sample:
            raise FormatError(f"sample {index} is not {TXT_BOS}<description>{TXT_EQUALS}<prompt>: {sample[:80]!r}")
        description, prompt = sample[len(TXT_BOS) :].split(TXT_EQUALS, 1)
        pairs.append((description, prompt))
    return pairs


# --- CSVs: train_strings.csv / val_strings.csv and result.csv -----------------------------------------------------


class _CsvWriter:
    """csv.writer with ``\\n`` line ends, minimal quoting as pandas writes, and a lone ``\\r`` quoted too.

    Python's minimal quoting only looks for the characters of the line terminator, so a field with a bare
    carriage return would be written unquoted and split by every reader: such rows are written fully quoted.
    """

    def __init__(self, out: BinaryIO) -> None:
        self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        self._minimal = csv.writer(self._text, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        self._all = csv.writer(self._text, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, fields: Sequence[str]) -> None:
        writer = self._all if any("\r" in field for field in fields) else self._minimal
        writer.writerow(fields)

    def close(self) -> None:
        self._text.flush()
        self._text.detach()  # leave the caller's binary stream open


def write_strings_csv(rows: Iterable[PublishRow], out: BinaryIO) -> int:
    writer = _CsvWriter(out)
    writer.writerow(["text"])
    count = 0
    for row in rows:
        writer.writerow([f"{row.description}{CSV_SEP}{row.prompt}{CSV_EOS}"])
        count += 1
    writer.close()
    return count


def read_strings_csv(data: bytes) -> list[tuple[str, str]]:
    records = _read_csv(data, ["text"])
    pairs = []
    for index, (value,) in enumerate(records):
        if not value.endswith(CSV_EOS) or CSV_SEP not in value:
            raise FormatError(f"row {index} is not <description>{CSV_SEP}<prompt>{CSV_EOS}: {value[:80]!r}")
        description, prompt = value[: -len(CSV_EOS)].split(CSV_SEP, 1)
        pairs.append((description, prompt))
    return pairs


def write_result_csv(rows: Iterable[PublishRow], out: BinaryIO) -> int:
    """``prompt,image_description`` as the original labeling script wrote it (``_no_object`` spelled out)."""
    writer = _CsvWriter(out)
    writer.writerow(["prompt", "image_description"])
    count = 0
    for row in rows:
        writer.writerow([row.prompt, NO_OBJECT if row.no_object else row.description])
        count += 1
    writer.close()
    return count


def read_result_csv(data: bytes) -> list[tuple[str, str]]:
    return [tuple(r) for r in _read_csv(data, ["prompt", "image_description"])]


def _read_csv(data: bytes, header: list[str]) -> list[list[str]]:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    first = next(reader, None)
    if first != header:
        raise FormatError(f"CSV header is {first!r}, expected {header!r}")
    records = list(reader)
    for index, record in enumerate(records):
        if len(record) != len(header):
            raise FormatError(f"CSV row {index} has {len(record)} fields, expected {len(header)}")
    return records


# --- records: train.jsonl / test.jsonl and train.parquet / test.parquet -------------------------------------------


def record_of(row: PublishRow, split: str) -> dict:
    return {
        "id": row.row_id,
        "prompt": row.prompt,
        "description": row.description,
        "no_object": row.no_object,
        "split": split,
        "channel_id": row.channel_id,
        "channel_name": row.channel_name,
        "username_hash": row.username_hash,
        "posted_at": format_timestamp(row.posted_at),
        "args": row.args,
        "label_version": row.label_version,
    }


def write_jsonl(rows: Iterable[PublishRow], split: str, out: BinaryIO) -> int:
    count = 0
    for row in rows:
        # orjson escapes every control character (\n, \r, \t, ...), so one record is always one line
        out.write(orjson.dumps(record_of(row, split), option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE))
        count += 1
    return count


def read_jsonl(data: bytes) -> list[dict]:
    records = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line:
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise FormatError(f"JSONL line {number}: {exc}") from None
    return records


@functools.cache
def parquet_schema():
    """The Parquet columns. pyarrow is imported when Parquet is written or read, not by every command that
    imports the publishing package (it costs a fifth of a second)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("prompt", pa.string()),
            ("description", pa.string()),
            ("no_object", pa.bool_()),
            ("split", pa.string()),
            ("channel_id", pa.string()),
            ("channel_name", pa.string()),
            ("username_hash", pa.string()),
            ("posted_at", pa.timestamp("us", tz="UTC")),
            ("args", pa.string()),  # JSON text: the bots' argument sets differ too much for one struct type
            ("label_version", pa.string()),
        ]
    )


def write_parquet(rows: Sequence[PublishRow], split: str, out: BinaryIO) -> int:
    columns = {
        "id": [r.row_id for r in rows],
        "prompt": [r.prompt for r in rows],
        "description": [r.description for r in rows],
        "no_object": [r.no_object for r in rows],
        "split": [split] * len(rows),
        "channel_id": [r.channel_id for r in rows],
        "channel_name": [r.channel_name for r in rows],
        "username_hash": [r.username_hash for r in rows],
        "posted_at": [r.posted_at for r in rows],
        "args": [orjson.dumps(r.args, option=orjson.OPT_SORT_KEYS).decode() for r in rows],
        "label_version": [r.label_version for r in rows],
    }
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pydict(columns, schema=parquet_schema())
    # no wall-clock in Parquet metadata; pinned options keep the bytes a function of the rows
    pq.write_table(table, out, compression="zstd", compression_level=3, use_dictionary=True,
                   write_statistics=True, row_group_size=100_000)
    return len(rows)


def read_parquet(data: bytes) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    records = table.to_pylist()
    for record in records:
        record["args"] = orjson.loads(record["args"])
        if record["posted_at"] is not None:
            record["posted_at"] = format_timestamp(record["posted_at"])
    return records
