"""Reader of DiscordChatExporter CSV exports (header ``AuthorID,Author,Date,Content,Attachments,Reactions``).

CSV exports carry no message id and no channel metadata: the channel comes from the ``[<channelId>]`` token of
the file name (naming.py), and each message gets a derived key that is the same in every export holding the
same message (see ``message_key``). The file is decoded strictly as UTF-8 line by line, so a bad byte is
reported with its line and byte offset; messages are streamed.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from promptmill.exports.errors import ExportError
from promptmill.exports.naming import fallback_channel_id, parse_export_file_name
from promptmill.exports.sources import Source
from promptmill.records import ExportHeader, RawMessage

EXPECTED_HEADER = ("AuthorID", "Author", "Date", "Content", "Attachments", "Reactions")
_EXPECTED_LOWER = [name.lower() for name in EXPECTED_HEADER]
_BOM = "\ufeff"
_MAX_LINE_BYTES = 4 << 20  # one physical line; Discord messages are at most 4,000 characters
_KEY_SEPARATOR = "\x1f"

# --- Date column -----------------------------------------------------------------------------------------------
# Detected per value, by pattern. DCE's historical formats (see docs/export-formats.md):
#   v2.42.3+      .NET round-trip "o":      2023-09-23T13:15:48.3790000+03:00
#   <= v2.40      --dateformat default:     23-Sep-22 01:15 PM          ("dd-MMM-yy hh:mm tt")
#   v2.38-v2.42.2 "MM/dd/yyyy h:mm tt" and the en-US locale short format "M/d/yyyy h:mm tt": 10/6/2023 12:37 AM
#   v2.24+        --dateformat unix / unixms: 1695464148 / 1695464148379
# The old formats carry no offset: they are taken as UTC (the exporting machine's zone is unknowable; DCE
# before v2.41 mostly wrote Discord's UTC values).
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]")
# .NET on ICU >= 72 puts a narrow no-break space (U+202F) before AM/PM; some cultures a no-break space.
_SPACE = r"[ \u00a0\u202f]"
_DAY_MONTH_YEAR = re.compile(rf"(\d{{1,2}})-([A-Za-z]{{3,4}})-(\d{{2}}|\d{{4}}){_SPACE}(\d{{1,2}}):(\d{{2}})(?::(\d{{2}}))?{_SPACE}?([AaPp][Mm])")
_MONTH_DAY_YEAR = re.compile(rf"(\d{{1,2}})/(\d{{1,2}})/(\d{{4}}){_SPACE}(\d{{1,2}}):(\d{{2}})(?::(\d{{2}}))?{_SPACE}?([AaPp][Mm])")
_UNIX = re.compile(r"\d{9,16}")
_UNIX_MS_ABOVE = 100_000_000_000  # seconds would be the year 5138: a number this large is milliseconds
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_MONTHS["sept"] = 9


def parse_csv_date(text: str) -> datetime | None:
    """A CSV ``Date`` value -> aware UTC datetime, or None when no known format matches."""
    text = text.strip()
    try:
        if _ISO_DATE.match(text):
            moment = datetime.fromisoformat(text)
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        if match := _DAY_MONTH_YEAR.fullmatch(text):
            day, month_name, year, hour, minute, second, half = match.groups()
            month = _MONTHS.get(month_name.lower())
            if month is None:
                return None
            full_year = int(year) + 2000 if len(year) == 2 else int(year)  # "yy": Discord exists since 2015
            return datetime(full_year, month, int(day), _hour_24(int(hour), half), int(minute), int(second or 0),
                            tzinfo=UTC)
        if match := _MONTH_DAY_YEAR.fullmatch(text):
            month, day, year, hour, minute, second, half = match.groups()
            return datetime(int(year), int(month), int(day), _hour_24(int(hour), half), int(minute),
                            int(second or 0), tzinfo=UTC)
        if _UNIX.fullmatch(text):
            number = int(text)
            if number > _UNIX_MS_ABOVE:
                return datetime.fromtimestamp(number // 1000, UTC) + timedelta(milliseconds=number % 1000)
            return datetime.fromtimestamp(number, UTC)
    except (ValueError, OverflowError, OSError):  # e.g. 31/02, hour 13 PM, out-of-range timestamps
        return None
    return None


def _hour_24(hour: int, half: str) -> int:
    if not 1 <= hour <= 12:
        raise ValueError(f"hour {hour} with {half}")
    return hour % 12 + (12 if half.lower() == "pm" else 0)


# --- Attachments column ----------------------------------------------------------------------------------------
_URL_START = re.compile(r"https?://", re.IGNORECASE)
_URL_BOUNDARY = re.compile(r",(?=https?://)", re.IGNORECASE)


def split_attachments(field: str) -> tuple[str, ...]:
    """URLs joined with "," -> a tuple. Split only before "http(s)://" (URLs may contain commas); a field that
    does not start with a URL (``--media`` local paths, which may contain commas) is kept as one item."""
    if not field:
        return ()
    if not _URL_START.match(field):
        return (field,)
    return tuple(_URL_BOUNDARY.split(field))


# --- Keys ------------------------------------------------------------------------------------------------------


def message_key(channel_id: str, author_id: str, posted_at: datetime, content: str, occurrence: int) -> str:
    """Stable key of a CSV message: the same message in overlapping exports gets the same key.

    ``occurrence`` tells apart identical (author, timestamp, content) rows of one file (the n-th, from 0).
    Limitation: exports of one message in different Date formats (minute vs sub-second precision) get
    different keys, and a window boundary that splits a run of identical rows renumbers them.
    """
    text = _KEY_SEPARATOR.join((channel_id, author_id, posted_at.isoformat(), content, str(occurrence)))
    return "csv:" + hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class MinuteRank:
    """The rank of a row within its minute, in file order: the only order rows of one minute have in a
    minute-precision export (the original notebook relied on it)."""

    def __init__(self) -> None:
        self._minute: datetime | None = None
        self._index = 0

    def of(self, posted_at: datetime) -> int:
        if posted_at == self._minute:
            self._index += 1
        else:
            self._minute, self._index = posted_at, 0
        return self._index


class _OutOfOrder(Exception):
    pass


class _OccurrenceCounter:
    """Counts identical (author, timestamp, content) rows in file order with bounded memory.

    Identical rows share a timestamp, and DCE writes rows in time order (forward, or backward with --reverse;
    naive local times can step back an hour at a DST change), so only timestamps near the current row are kept.
    A row older or newer than timestamps already forgotten would make the count unreliable: it raises instead.
    """

    WINDOW = timedelta(hours=3)
    PRUNE_EVERY = 4096

    def __init__(self) -> None:
        self._groups: dict[datetime, dict[bytes, int]] = {}
        self._forgotten_below: datetime | None = None
        self._forgotten_above: datetime | None = None
        self._rows = 0

    def next(self, posted_at: datetime, author_id: str, content: str) -> int:
        if (self._forgotten_below is not None and posted_at <= self._forgotten_below) or (
                self._forgotten_above is not None and posted_at >= self._forgotten_above):
            raise _OutOfOrder
        identity = hashlib.blake2b(f"{author_id}{_KEY_SEPARATOR}{content}".encode(), digest_size=16).digest()
        group = self._groups.setdefault(posted_at, {})
        occurrence = group.get(identity, 0)
        group[identity] = occurrence + 1
        self._rows += 1
        if self._rows % self.PRUNE_EVERY == 0:
            self._prune(posted_at)
        return occurrence

    def _prune(self, now: datetime) -> None:
        for moment in [m for m in self._groups if abs(m - now) > self.WINDOW]:
            del self._groups[moment]
            if moment < now:
                self._forgotten_below = max(moment, self._forgotten_below or moment)
            else:
                self._forgotten_above = min(moment, self._forgotten_above or moment)


# --- Reader ----------------------------------------------------------------------------------------------------


class _Lines:
    """Strictly UTF-8-decoded physical lines (line endings kept, as csv wants), with line numbers and offsets."""

    def __init__(self, source: Source, stream: BinaryIO) -> None:
        self._source = source
        self._stream = stream
        self.number = 0  # physical lines handed out
        self.offset = 0  # bytes consumed
        self.first_line = ""

    def __iter__(self) -> Iterator[str]:
        where = self._source.display_path
        while True:
            try:
                raw = self._stream.readline(_MAX_LINE_BYTES)
            except OSError as exc:
                raise ExportError(where, f"read failed at line {self.number + 1}: {exc.strerror or exc}") from None
            if not raw:
                return
            self.number += 1
            if len(raw) == _MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise ExportError(where, f"line {self.number}: longer than {_MAX_LINE_BYTES:,} bytes (not a DCE CSV)")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ExportError(where, f"line {self.number}: invalid UTF-8 byte 0x{raw[exc.start]:02x} at byte "
                                         f"offset {self.offset + exc.start} (column {exc.start + 1})") from None
            if self.number == 1:
                text = text.removeprefix(_BOM)
                self.first_line = text.rstrip("\r\n")
            self.offset += len(raw)
            yield text


def read_csv_export(source: Source) -> tuple[ExportHeader, Iterator[RawMessage]]:
    where = source.display_path
    stream = source.open()
    try:
        lines = _Lines(source, stream)
        # strict: a quote in the wrong place is an error instead of being glued into the field.
        reader = csv.reader(iter(lines), strict=True)
        try:
            header_row = next(reader, None)
        except csv.Error as exc:
            raise ExportError(where, f"line 1: malformed CSV header ({exc})") from None
        if header_row is None:
            raise ExportError(where, "empty file")
        if [name.lower() for name in header_row] != _EXPECTED_LOWER:
            found = lines.first_line if len(lines.first_line) <= 200 else lines.first_line[:200] + "..."
            raise ExportError(where, f"not a DCE CSV export: header is {found!r}, expected {','.join(EXPECTED_HEADER)!r}")
    except BaseException:
        stream.close()
        raise
    name = parse_export_file_name(source.file_name)
    if name is not None:
        header = ExportHeader(format="csv", channel_id=name.channel_id, channel_name=name.channel_name,
                              guild_name=name.guild_name)
    else:
        header = ExportHeader(format="csv", channel_id=fallback_channel_id(source.file_name))
    return header, _messages(source, stream, lines, reader, header.channel_id)


def _messages(source: Source, stream: BinaryIO, lines: _Lines, reader, channel_id: str) -> Iterator[RawMessage]:
    where = source.display_path
    occurrences = _OccurrenceCounter()
    record_start = lines.number + 1
    ranks = MinuteRank()  # minute-precision Date formats
    try:
        while True:
            record_start = lines.number + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            if not row:  # a blank line (DCE writes none; hand-edited files may end with one)
                continue
            if len(row) != len(EXPECTED_HEADER):
                raise ExportError(where, f"line {record_start}: expected {len(EXPECTED_HEADER)} fields, found {len(row)}")
            author_id, author, date_text, content, attachments, _reactions = row
            posted_at = parse_csv_date(date_text)
            if posted_at is None:
                raise ExportError(where, f"line {record_start}: unrecognised Date value {date_text!r}")
            minute_precision = (posted_at.second == 0 and posted_at.microsecond == 0
                                and not _ISO_DATE.match(date_text.strip()))
            seq = ranks.of(posted_at) if minute_precision else 0
            try:
                occurrence = occurrences.next(posted_at, author_id, content)
            except _OutOfOrder:
                raise ExportError(where, f"line {record_start}: rows are not in time order ({date_text!r} is more "
                                         f"than {_OccurrenceCounter.WINDOW} away from rows already read), so "
                                         "stable message keys cannot be derived") from None
            yield RawMessage(
                key=message_key(channel_id, author_id, posted_at, content, occurrence),
                channel_id=channel_id,
                author_id=author_id,
                author=author,
                posted_at=posted_at,
                content=content,
                attachments=split_attachments(attachments),
                seq=seq,
            )
    except csv.Error as exc:
        raise ExportError(where, _csv_error_reason(exc, record_start, lines.number)) from None
    finally:
        stream.close()


def _csv_error_reason(error: csv.Error, record_start: int, last_line: int) -> str:
    text = str(error)
    if "unexpected end of data" in text:
        return f"unterminated quoted field: the record starting at line {record_start} runs to the end of the file (line {last_line})"
    if "field larger than field limit" in text:
        return (f"line {last_line}: {text} in the record starting at line {record_start} "
                "(probably an unterminated quote)")
    return f"line {last_line}: malformed CSV ({text}) in the record starting at line {record_start}"
