"""store.bulk on the real PostgreSQL: the binary COPY of message rows matches the tables and stores every value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from promptmill.derive import build_row
from promptmill.records import RawMessage
from promptmill.store.bulk import (
    MESSAGE_COLUMNS,
    MESSAGE_TYPES,
    VERDICT_INPUT_COLUMNS,
    VERDICT_INPUT_TYPES,
    MessageStager,
)
from promptmill.store.db import connect

from tests.helpers import slash_content

# The server types each binary dumper's bytes are the very representation of (text's is also varchar's).
_COMPATIBLE = {
    "text": {"text", "character varying"},
    "timestamptz": {"timestamp with time zone"},
    "int8": {"bigint"},
    "int4": {"integer"},
    "bool": {"boolean"},
}


@pytest.mark.parametrize(
    ("table", "columns", "types"),
    [("messages", MESSAGE_COLUMNS, MESSAGE_TYPES), ("message_verdicts", VERDICT_INPUT_COLUMNS, VERDICT_INPUT_TYPES)],
)
def test_the_binary_copy_types_are_those_of_the_migrated_tables(pg_url, table, columns, types):
    # binary COPY sends no type with a value: a column whose type changed would store garbage or fail
    engine = connect(pg_url)
    with engine.connect() as conn:
        declared = dict(
            conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = :table"
                ),
                {"table": table},
            ).all()
        )
    assert len(columns) == len(types)
    for column, copy_type in zip(columns, types, strict=True):
        assert declared[column] in _COMPATIBLE[copy_type], (column, copy_type, declared[column])


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_every_column_of_a_message_row_is_stored_as_given(pg_url, driver):
    # psycopg 3 COPYs these rows in the binary format, psycopg2 in the text format: both store the same values
    engine = connect(pg_url.replace("postgresql://", f"postgresql+{driver}://", 1))
    posted = datetime(2022, 11, 1, 12, 0, 5, 123456, tzinfo=UTC)
    edited = datetime(2022, 11, 1, 13, 30, tzinfo=UTC)
    messages = [
        RawMessage(key="k1", channel_id="101", author_id="bot", author="DreamBot#6958", posted_at=posted,
                   content=slash_content("zoë", "a café at night\twith a tab", seed=7,
                                             extra="\nThere were naughty dreams that had to be popped"),
                   attachments=("https://cdn.example/a.png",), edited_at=edited, seq=3),
        RawMessage(key="k2", channel_id="101", author_id="u", author="someone", posted_at=posted,
                   content="just chatting \\ with a backslash and an emoji 🐱"),
    ]  # fmt: skip
    with engine.begin() as conn:
        file_id = conn.execute(
            sa.text("INSERT INTO source_files (content_hash, path, outcome, ingested_at) "
                    "VALUES ('h', 'f.json', 'ingested', now()) RETURNING id")
        ).scalar_one()  # fmt: skip
        rows = [build_row(message, file_id, "parity") for message in messages]
        stager = MessageStager(conn, file_id=file_id, direct=True)
        for row in rows:
            stager.add(row)
        stager.merge()
        assert stager.inserted_directly == 2
    with engine.connect() as conn:
        stored = conn.execute(sa.text(f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages ORDER BY key")).all()
        verdicts = conn.execute(
            sa.text(f"SELECT {', '.join(VERDICT_INPUT_COLUMNS)} FROM message_verdicts ORDER BY key")
        ).all()
    assert [tuple(row) for row in stored] == rows
    assert rows[0][MESSAGE_COLUMNS.index("nsfw")] is True and rows[0][MESSAGE_COLUMNS.index("edited_at")] == edited
    by_column = [MESSAGE_COLUMNS.index(column) for column in VERDICT_INPUT_COLUMNS]
    assert [tuple(row) for row in verdicts] == [tuple(row[i] for i in by_column) for row in rows]
