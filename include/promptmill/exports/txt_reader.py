"""DiscordChatExporter's plain-text exports (``-f PlainText``), streamed. Heuristic by nature: the format has no ids
and no quoting, so a message whose own text looks like the layout below can be misread (docs/export-formats.md).

The layout, from DCE's ``PlainTextMessageWriter``::

    ==============================================================
    Guild: <guild>
    Channel: <category> / <channel>
    Topic: ... / After: ... / Before: ...        (optional)
    ==============================================================

    [<date>] <author full name>[ (pinned)]
    <content, any number of lines>

    {Attachments}
    <one URL a line>

    {Embed} / {Stickers} / {Reactions}            (optional blocks, each ending with a blank line)

    ...
    ==============================================================
    Exported 1,234 message(s)
    ==============================================================

A message starts at a ``[<date>] <author>`` line after a blank line. Dates are in the exporting machine's culture:
DCE's old default ``01-Nov-22 12:00 PM``, US ``11/1/2022 12:00 PM``, round-trip ISO, and day-first cultures with
a 24-hour clock (``01.11.2022 12:00``, ``01/11/2022 12:00``, ``01-11-2022 12:00``): taken as UTC, as the CSV
reader does. No message ids, so messages are keyed like CSV rows, by channel, author, time, content and
occurrence; the author has no id either (``name:<full name>``), so a plain-text export and a CSV export of one
channel do not share keys.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from promptmill.exports.csv_reader import MinuteRank, _OccurrenceCounter, _OutOfOrder, parse_csv_date
from promptmill.exports.errors import ExportError
from promptmill.exports.naming import fallback_channel_id, parse_export_file_name
from promptmill.exports.sources import Source
from promptmill.records import ExportHeader, RawMessage

_RULE = "=" * 62
_HEADER = re.compile(r"\[(?P<date>[^\[\]]{6,40})\] (?P<author>.+?)(?P<pinned> \(pinned\))?")
_BLOCKS = ("{Attachments}", "{Embed}", "{Stickers}", "{Reactions}")
_DAY_FIRST = re.compile(r"(\d{1,2})[./-](\d{1,2})[./-](\d{4})[ ,T]+(\d{1,2}):(\d{2})(?::(\d{2}))?")
_MAX_MESSAGE_LINES = 10_000  # a Discord message has at most 4,000 characters
_KEY_SEPARATOR = "\x1f"


def parse_txt_date(text: str) -> datetime | None:
    """A plain-text export's date (see the module docstring) -> aware UTC datetime, or None."""
    text = text.strip()
    moment = parse_csv_date(text)
    if moment is not None:
        return moment
    match = _DAY_FIRST.fullmatch(text)
    if match is None:
        return None
    day, month, year, hour, minute, second = match.groups()
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC)
    except ValueError:
        return None


def txt_message_key(channel_id: str, author: str, posted_at: datetime, content: str, occurrence: int) -> str:
    text = _KEY_SEPARATOR.join((channel_id, author, posted_at.isoformat(), content, str(occurrence)))
    return "txt:" + hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class _Lines:
    """Strictly UTF-8 lines without their line ends, numbered; a bad byte names its line."""

    def __init__(self, stream: BinaryIO, where: str) -> None:
        self._stream = stream
        self._where = where
        self.number = 0
        self._pushed: list[str] = []

    def next(self) -> str | None:
        if self._pushed:
            self.number += 1
            return self._pushed.pop()
        raw = self._stream.readline(1 << 20)
        if not raw:
            return None
        self.number += 1
        if self.number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise ExportError(self._where, f"line {self.number}: not UTF-8 (byte {exc.start})") from None

    def push(self, line: str) -> None:
        self.number -= 1
        self._pushed.append(line)


def read_txt_export(source: Source) -> tuple[ExportHeader, Iterator[RawMessage]]:
    where = source.display_path
    stream = source.open()
    try:
        lines = _Lines(stream, where)
        first = lines.next()
        if first != _RULE:
            raise ExportError(where, "not a DiscordChatExporter plain-text export: line 1 is not its rule of '='")
        preamble: dict[str, str] = {}
        while (line := lines.next()) is not None and line != _RULE:
            key, _, value = line.partition(": ")
            preamble[key] = value
        if line is None:
            raise ExportError(where, "not a DiscordChatExporter plain-text export: its preamble never ends")
    except BaseException:
        stream.close()
        raise
    name = parse_export_file_name(source.file_name)
    channel_name = preamble.get("Channel", "").rsplit(" / ", 1)[-1] or None
    header = ExportHeader(
        format="txt",
        channel_id=name.channel_id if name else fallback_channel_id(source.file_name),
        channel_name=channel_name or (name.channel_name if name else None),
        guild_name=preamble.get("Guild") or (name.guild_name if name else None),
    )
    return header, _messages(lines, stream, where, header.channel_id)


def _header(line: str) -> tuple[datetime, str] | None:
    """(time, author) of a message header line, or None when the line is not one (its date must parse)."""
    match = _HEADER.fullmatch(line)
    posted_at = parse_txt_date(match["date"]) if match is not None else None
    return None if posted_at is None else (posted_at, match["author"])


def _messages(lines: _Lines, stream: BinaryIO, where: str, channel_id: str) -> Iterator[RawMessage]:
    occurrences = _OccurrenceCounter()
    ranks = MinuteRank()
    try:
        while (line := lines.next()) is not None:
            if line == _RULE and _postamble_follows(lines):
                return
            if not line.strip():
                continue
            header = _header(line)
            if header is None:
                raise ExportError(where, f"line {lines.number}: expected a message header '[<date>] <author>', "
                                         f"found {line[:80]!r}")
            start = lines.number
            content, attachments = _read_message(lines, where, start)
            posted_at, author = header
            seq = ranks.of(posted_at) if posted_at.second == 0 else 0  # minute precision: file order
            try:
                occurrence = occurrences.next(posted_at, author, content)
            except _OutOfOrder:
                raise ExportError(where, f"line {start}: messages are not in time order, so stable keys cannot be "
                                         "derived") from None
            yield RawMessage(
                key=txt_message_key(channel_id, author, posted_at, content, occurrence),
                channel_id=channel_id,
                author_id=f"name:{author}",
                author=author,
                posted_at=posted_at,
                content=content,
                attachments=tuple(attachments),
                seq=seq,
            )
    finally:
        stream.close()


def _postamble_follows(lines: _Lines) -> bool:
    """After a rule of '=': is it the postamble's ("Exported N message(s)" next), or a message's own line?"""
    following = lines.next()
    if following is not None:
        lines.push(following)
    return following is None or following.startswith("Exported ")


def _read_message(lines: _Lines, where: str, start: int) -> tuple[str, list[str]]:
    """After a header line: the content (the lines up to the first block or the next message, without the blank
    line DCE writes after it) and the attachments' URLs."""
    content: list[str] = []
    attachments: list[str] = []
    state = "content"
    previous_blank = False
    count = 0
    while (line := lines.next()) is not None:
        count += 1
        if count > _MAX_MESSAGE_LINES:
            raise ExportError(where, f"line {start}: a message over {_MAX_MESSAGE_LINES:,} lines")
        if (line == _RULE and _postamble_follows(lines)) or (previous_blank and _header(line)):
            lines.push(line)
            break
        if previous_blank and line in _BLOCKS:
            state = line
            previous_blank = False
            continue
        if state == "content":
            content.append(line)
        elif state == "{Attachments}" and line.strip():
            attachments.append(line.strip())
        previous_blank = not line.strip()
    while content and not content[-1].strip():
        content.pop()
    return "\n".join(content), attachments
