"""COPY's text format on PostgreSQL: reading and writing lines of it, with either driver.

Lines are sent and received as they are, so that a value read can be written back without being decoded and
encoded again (dedupe_whole.py sends the input columns of a verdict row back as the very text it read).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.engine import Connection

NULL = "\\N"
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)")


def _unescape_match(match: re.Match) -> str:
    code = match.group(1)
    if code[0] == "x" and len(code) > 1:
        return chr(int(code[1:], 16))
    if code[0].isdigit():
        return chr(int(code, 8))
    return _ESCAPES.get(code, code)


def decode(field: str) -> str | None:
    """One field of COPY's text format as its value (``\\N``: None)."""
    if field == NULL:
        return None
    if "\\" in field:
        return _ESCAPE.sub(_unescape_match, field)
    return field


def encode(value) -> str:
    """A value (text, None, bool, timestamp, number) as a field of COPY's text format. Most fields need no
    escaping: tested before replacing (fast path)."""
    kind = type(value)
    if kind is str:
        if "\\" in value:
            value = value.replace("\\", "\\\\")
        if "\t" in value:
            value = value.replace("\t", "\\t")
        if "\n" in value:
            value = value.replace("\n", "\\n")
        if "\r" in value:
            value = value.replace("\r", "\\r")
        return value
    if value is None:
        return NULL
    if kind is bool:
        return "t" if value else "f"
    if kind is datetime:
        return value.isoformat()
    return str(value)


def copy_lines(conn: Connection, table: str, columns: tuple[str, ...], lines: list[str]) -> None:
    with CopyLines(conn, table, columns) as copy:
        for line in lines:
            copy.append(line)


class CopyLines:
    """A COPY of lines in its text format, sent in batches as they are appended (psycopg 3), or spooled to a
    temporary file and sent at the end (psycopg2, whose COPY reads from a file)."""

    def __init__(self, conn: Connection, table: str, columns: tuple[str, ...], batch: int = 5_000):
        self.sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        self.cursor = conn.connection.dbapi_connection.cursor()
        self.batch = batch
        self.lines: list[str] = []

    def __enter__(self) -> CopyLines:
        if hasattr(self.cursor, "copy"):
            self._context = self.cursor.copy(self.sql)
            self._write = self._context.__enter__().write
        else:
            self._context = tempfile.SpooledTemporaryFile(max_size=64 * 1024**2, mode="w+", encoding="utf-8")
            self._write = self._context.write
        return self

    def append(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= self.batch:
            self._send()

    def _send(self) -> None:
        self._write("".join(self.lines))
        self.lines = []

    def __exit__(self, *exc_info) -> None:
        try:
            if exc_info[0] is None and self.lines:
                self._send()
            if hasattr(self.cursor, "copy"):
                self._context.__exit__(*exc_info)
            elif exc_info[0] is None:
                self._context.seek(0)
                self.cursor.copy_expert(self.sql, self._context)
        finally:
            if not hasattr(self.cursor, "copy"):
                self._context.close()
            self.cursor.close()


def copy_out(conn: Connection, sql: str, consume: Callable[[str], None]) -> None:
    """Each line of a COPY ... TO STDOUT in its text format, without its newline, to ``consume``."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        if hasattr(cursor, "copy"):  # psycopg 3
            with cursor.copy(sql) as copy:
                for data in copy:  # one row per block
                    consume(bytes(data).decode()[:-1])
        else:  # psycopg2 writes the rows into a file object
            cursor.copy_expert(sql, LineSink(consume))
    finally:
        cursor.close()


class LineSink:
    """A writable file object that hands each complete line written to it to ``consume``."""

    def __init__(self, consume: Callable[[str], None]):
        self.consume = consume
        self.rest = ""

    def write(self, data: str | bytes) -> int:
        text = data.decode() if isinstance(data, bytes) else data
        *lines, self.rest = (self.rest + text).split("\n")  # a newline inside a field is escaped (\n)
        for line in lines:
            self.consume(line)
        return len(data)
