"""Bulk loading of parsed messages: stage (COPY on PostgreSQL, executemany on SQLite), then one merge.

The merge is an upsert keyed by message key in which the newest version of an edited message wins
(later ``edited_at``; for equal edit times the greater content, an arbitrary but order-independent rule),
so loading files in any order gives the same rows.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from promptmill.store.copy_text import CopyLines, encode
from promptmill.store.db import sqlstate

# Columns of a staged message row, in the order produced by ingest.build_row, with their PostgreSQL types (for
# psycopg 3's binary COPY, see insert_rows: it sends no type with a value, so the two must not drift apart).
_MESSAGE_COLUMN_TYPES: tuple[tuple[str, str], ...] = (
    ("key", "text"),
    ("channel_id", "text"),
    ("author_id", "text"),
    ("author", "text"),
    ("posted_at", "timestamptz"),
    ("edited_at", "timestamptz"),
    ("content", "text"),
    ("attachments", "text"),
    ("source_file_id", "int8"),
    ("era", "text"),
    ("username", "text"),
    ("raw_prompt", "text"),
    ("raw_hash", "text"),
    ("args", "text"),
    ("nsfw", "bool"),
    ("pre_reason", "text"),
    ("clean_text", "text"),
    ("clean_hash", "text"),
    ("clean_reason", "text"),
    ("posted_seq", "int4"),
)
MESSAGE_COLUMNS: tuple[str, ...] = tuple(column for column, _ in _MESSAGE_COLUMN_TYPES)
MESSAGE_TYPES: tuple[str, ...] = tuple(copy_type for _, copy_type in _MESSAGE_COLUMN_TYPES)
# Columns of a message that are also the inputs of dedupe, copied into its message_verdicts row.
VERDICT_INPUT_COLUMNS: tuple[str, ...] = (
    "key",
    "channel_id",
    "username",
    "posted_at",
    "posted_seq",
    "raw_hash",
    "clean_hash",
    "pre_reason",
    "clean_reason",
    "raw_prompt",
)
VERDICT_INPUT_TYPES: tuple[str, ...] = tuple(MESSAGE_TYPES[MESSAGE_COLUMNS.index(c)] for c in VERDICT_INPUT_COLUMNS)
_row_key = operator.itemgetter(0)
_TS_COLUMNS = {MESSAGE_COLUMNS.index("posted_at"), MESSAGE_COLUMNS.index("edited_at")}
_VERDICT_INPUTS = operator.itemgetter(*(MESSAGE_COLUMNS.index(c) for c in VERDICT_INPUT_COLUMNS))
_NSFW = MESSAGE_COLUMNS.index("nsfw")

_STAGE_DDL = """
CREATE TEMP TABLE stage_messages (
    seq {serial},
    key TEXT NOT NULL, channel_id TEXT NOT NULL, author_id TEXT, author TEXT,
    posted_at {ts} NOT NULL, edited_at {ts}, content TEXT NOT NULL, attachments TEXT, source_file_id BIGINT,
    era TEXT, username TEXT, raw_prompt TEXT, raw_hash TEXT, args TEXT, nsfw BOOLEAN NOT NULL,
    pre_reason TEXT, clean_text TEXT, clean_hash TEXT, clean_reason TEXT, posted_seq INTEGER NOT NULL
)"""


def sqlite_timestamp(value: datetime) -> str:
    """SQLAlchemy's own SQLite DateTime storage format, in UTC, so Core reads it back and strings sort."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def to_utc(value) -> datetime | None:
    """Normalise a timestamp read back from either backend to an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def min_timestamp_sql(dialect: str) -> str:
    return "'-infinity'::timestamptz" if dialect == "postgresql" else "''"


def member_of(dialect: str, subquery: str) -> str:
    """A membership test of a column in the rows of ``subquery``: ``= ANY(ARRAY(...))`` on PostgreSQL.

    As an array, the few thousand values an increment touches are looked up in the column's index one by one;
    as ``IN (subquery)`` or a join, the planner (costing that many lookups like a scan) hashed the whole table,
    the verdicts or the prompts, whose cost grows with the store instead of with the increment.
    """
    return f"= ANY(ARRAY({subquery}))" if dialect == "postgresql" else f"IN ({subquery})"


def timestamp_param(dialect: str, value: datetime | None):
    """A timestamp as a bound parameter of a text() statement for this dialect."""
    if value is None:
        return None
    return value.astimezone(UTC) if dialect == "postgresql" else sqlite_timestamp(value)


def insert_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Sequence], types: Sequence[str] | None = None
) -> None:
    """Bulk insert of plain rows: COPY on PostgreSQL, one executemany on SQLite (values already in its types).

    With ``types`` (the columns' PostgreSQL types) psycopg 3 COPYs in the binary format: for the message rows a
    fraction of the client's CPU of the text format, and less for the server to parse (timestamps above all).
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        with CopyLines(conn, table, tuple(columns)) as copy:  # its COPY reads the text format, formatted here
            for row in rows:
                copy.append("\t".join([encode(value) for value in row]) + "\n")
        return
    with contextlib.closing(conn.connection.dbapi_connection.cursor()) as cursor:
        if conn.dialect.name != "postgresql":
            placeholders = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", rows)
            return
        # psycopg 3 adapts the values in C and sends them while the server is still parsing earlier rows:
        # faster than formatting the text ourselves first.
        binary = " (FORMAT BINARY)" if types is not None else ""
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN{binary}") as copy:
            if types is not None:
                copy.set_types(types)
            write_row = copy.write_row
            for row in rows:
                write_row(row)


def iter_rows(conn: Connection, sql: str, batch: int = 20_000) -> Iterator[tuple]:
    """The rows of a large query (no parameters) as tuples, fetched ``batch`` at a time.

    On PostgreSQL through a server-side cursor, so memory stays bounded; SQLAlchemy's ``stream_results``
    fetched a few dozen rows per round trip here (18,000 round trips for a 725,000-row pass).
    """
    dbapi_connection = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        cursor = dbapi_connection.cursor(name=f"promptmill_rows_{id(conn)}")
    else:
        cursor = dbapi_connection.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(batch):
            yield from rows
    finally:
        cursor.close()


def _sqlite_row(row: Sequence) -> list:
    """A staged row in SQLite's storage types: timestamps as SQLAlchemy's UTC strings, booleans as 0/1."""
    row = list(row)
    for i in _TS_COLUMNS:
        if row[i] is not None:
            row[i] = sqlite_timestamp(row[i])
    row[_NSFW] = 1 if row[_NSFW] else 0
    return row


class KeyStoredConcurrently(Exception):
    """A directly inserted message key was stored by a concurrent transaction after the key check (a unique
    violation), or two files' direct COPYs of the same new keys deadlocked."""


# unique_violation, deadlock_detected: the COPY runs on the driver's cursor, so they arrive unwrapped
_CONCURRENT_KEY_SQLSTATES = ("23505", "40P01")


class MessageStager:
    """Loads the message rows of one file inside the caller's transaction.

    Rows are staged in a temporary table and merged with one upsert (the newest version of an edited message
    wins). On PostgreSQL with ``direct``, rows whose key is not stored yet (nearly all of them when new exports
    arrive) skip the staging table and the upsert: each chunk asks which of its keys exist and COPYs the new rows
    straight into messages, message_verdicts and dedupe_dirty (a third of the server's work per message on a
    first load). Only the rest (keys already stored, or repeated within the file) go through the upsert. A key
    inserted by a concurrent transaction in between makes the COPY fail with a unique violation; the caller then
    retries the file without ``direct``.

    With ``defer_verdicts`` (a bulk load) the rows COPYd directly get no verdict row and no dirty mark: the file is
    recorded with ``verdicts_deferred``, and the next dedupe writes their verdict rows, already final, in one pass
    over the whole store (dedupe_whole.py) instead of this COPY and an update of each row.
    """

    def __init__(
        self,
        conn: Connection,
        chunk_rows: int = 20_000,
        *,
        file_id: int | None = None,
        direct: bool = False,
        defer_verdicts: bool = False,
    ):
        self.conn = conn
        self.dialect = conn.dialect.name
        self.chunk_rows = chunk_rows
        self.file_id = file_id
        self.direct = direct and self.dialect == "postgresql" and file_id is not None
        self.defer_verdicts = defer_verdicts and self.direct
        self._pending: list[Sequence] = []
        self._stage_created = False
        self.staged = 0
        self.inserted_directly = 0

    def _create_stage(self) -> None:
        if self._stage_created:
            return
        if self.dialect == "postgresql":
            ddl = _STAGE_DDL.format(serial="BIGSERIAL", ts="TIMESTAMPTZ") + " ON COMMIT DROP"
        else:
            ddl = _STAGE_DDL.format(serial="INTEGER PRIMARY KEY", ts="TEXT")
            self.conn.execute(sa.text("DROP TABLE IF EXISTS temp.stage_messages"))
        self.conn.execute(sa.text(ddl))
        self._stage_created = True

    def add(self, row: Sequence) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        if self.direct:
            rows = self._insert_new_directly(rows)
            if not rows:
                return
        self._create_stage()
        if self.dialect != "postgresql":
            rows = [_sqlite_row(row) for row in rows]
        insert_rows(self.conn, "stage_messages", MESSAGE_COLUMNS, rows, MESSAGE_TYPES)
        self.staged += len(rows)

    def _insert_new_directly(self, rows: list[Sequence]) -> list[Sequence]:
        """COPY the rows whose key is new into the final tables; return the others (for the upsert)."""
        cursor = self.conn.connection.dbapi_connection.cursor()
        try:
            cursor.execute("SELECT key FROM messages WHERE key = ANY(%s)", ([row[0] for row in rows],))
            stored = {key for (key,) in cursor.fetchall()}
        finally:
            cursor.close()
        # The check sees this transaction's own rows, so a key repeated in an earlier chunk of the file is in
        # ``stored``; only repeats within this chunk need remembering (memory bounded by the chunk, whatever
        # the file's size).
        seen: set[str] = set()
        new: list[Sequence] = []
        rest: list[Sequence] = []
        for row in rows:
            key = row[0]
            if key in stored or key in seen:
                rest.append(row)
            else:
                seen.add(key)
                new.append(row)
        if new:
            # In key order, as the upsert writes: two files storing the same new keys then wait for each other
            # instead of deadlocking (each file's keys are already nearly sorted: snowflakes in time order).
            new.sort(key=_row_key)
            try:
                insert_rows(self.conn, "messages", MESSAGE_COLUMNS, new, MESSAGE_TYPES)
                if not self.defer_verdicts:
                    verdict_inputs = _VERDICT_INPUTS
                    insert_rows(
                        self.conn, "message_verdicts", VERDICT_INPUT_COLUMNS, [verdict_inputs(row) for row in new],
                        VERDICT_INPUT_TYPES,
                    )  # fmt: skip
                    insert_rows(self.conn, "dedupe_dirty", ("key", "marked"), [(row[0], 0) for row in new])
            except Exception as exc:
                if sqlstate(exc) in _CONCURRENT_KEY_SQLSTATES:
                    raise KeyStoredConcurrently(str(exc).splitlines()[0]) from exc
                raise
            self.inserted_directly += len(new)
        return rest

    def merge(self) -> int:
        """Upsert the staged rows into ``messages`` and their verdict rows; returns how many were inserted or changed
        (the directly inserted ones included)."""
        self.flush()
        if not self.staged:
            return self.inserted_directly
        conn = self.conn
        lo = min_timestamp_sql(self.dialect)
        # One row per key within the file: the newest version (same rule as the upsert below).
        conn.execute(
            sa.text(
                f"""
                DELETE FROM stage_messages WHERE seq IN (
                    SELECT seq FROM (
                        SELECT seq, ROW_NUMBER() OVER (
                            PARTITION BY key ORDER BY COALESCE(edited_at, {lo}) DESC, content DESC) AS rn
                        FROM stage_messages) ranked
                    WHERE rn > 1)
                """
            )
        )
        newer = (
            "(COALESCE({new}.edited_at, {lo}) > COALESCE({old}.edited_at, {lo}) OR "
            "(COALESCE({new}.edited_at, {lo}) = COALESCE({old}.edited_at, {lo}) AND {new}.content > {old}.content))"
        )
        # Dedupe must revisit the groups and user sessions an edited message leaves.
        conn.execute(
            sa.text(
                "INSERT INTO dedupe_queue (username, posted_at, raw_hash, clean_hash) "
                "SELECT v.username, v.posted_at, v.raw_hash, v.clean_hash FROM stage_messages s "
                "JOIN messages m ON m.key = s.key JOIN message_verdicts v ON v.key = s.key WHERE "
                + newer.format(new="s", old="m", lo=lo)
            )
        )
        cols = ", ".join(MESSAGE_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in MESSAGE_COLUMNS if c != "key")
        upsert_messages = (
            f"INSERT INTO messages ({cols}) SELECT {cols} FROM stage_messages WHERE TRUE ORDER BY key "
            f"ON CONFLICT (key) DO UPDATE SET {updates} WHERE " + newer.format(new="excluded", old="messages", lo=lo)
        )
        # The verdict row follows the message: new inputs, and pending until dedupe has looked at it.
        verdict_updates = ", ".join(f"{c} = excluded.{c}" for c in VERDICT_INPUT_COLUMNS if c != "key")
        upsert_verdicts = (
            f"INSERT INTO message_verdicts ({', '.join(VERDICT_INPUT_COLUMNS)}) "
            f"SELECT {', '.join('s.' + c for c in VERDICT_INPUT_COLUMNS)} FROM stage_messages s "
            "JOIN {changed} c ON c.key = s.key WHERE TRUE ORDER BY s.key "
            f"ON CONFLICT (key) DO UPDATE SET {verdict_updates}, status = 'pending', reason = NULL"
        )
        # The keys this upsert inserts or changes, marked for dedupe. "marked" is bumped on conflict so that a
        # dedupe running concurrently (REPEATABLE READ) cannot clear a mark it has not seen.
        mark_dirty = (
            "INSERT INTO dedupe_dirty (key, marked) SELECT key, 0 FROM {changed} WHERE TRUE ORDER BY key "
            "ON CONFLICT (key) DO UPDATE SET marked = dedupe_dirty.marked + 1"
        )
        if self.dialect == "postgresql":
            # One statement: the upsert returns exactly the keys it inserted or changed.
            result = conn.execute(
                sa.text(
                    f"WITH changed AS ({upsert_messages} RETURNING key), "
                    f"verdicts AS ({upsert_verdicts.format(changed='changed')}) "
                    + mark_dirty.format(changed="changed")
                )
            )
            return self.inserted_directly + (result.rowcount or 0)
        conn.execute(sa.text("DROP TABLE IF EXISTS temp.stage_changed"))
        conn.execute(
            sa.text(
                "CREATE TEMP TABLE stage_changed AS SELECT s.key FROM stage_messages s "
                "LEFT JOIN messages m ON m.key = s.key WHERE m.key IS NULL OR "
                + newer.format(new="s", old="m", lo=lo)
            )
        )
        conn.execute(sa.text(upsert_messages))
        conn.execute(sa.text(upsert_verdicts.format(changed="stage_changed")))
        changed = conn.execute(sa.text(mark_dirty.format(changed="stage_changed"))).rowcount or 0
        conn.execute(sa.text("DROP TABLE temp.stage_changed"))
        return changed
