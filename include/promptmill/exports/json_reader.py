"""Streaming reader of DiscordChatExporter JSON exports (any DCE version since 2.18).

Two paths produce the same messages:

* Fast path, for the layout DCE itself writes (``System.Text.Json`` indented by 2: the ``messages`` key on its
  own line at depth 1, every message closing with a line of exactly four spaces and ``}``). Raw newlines cannot
  occur inside JSON strings, so the first ``\\n    }`` after a message's ``{`` is the only candidate for its end;
  the slice is then parsed by orjson, and a slice that parses as one JSON object *is* that object (a value that
  starts with ``{`` and ends with ``}`` is balanced only if the two match). This avoids building Python objects for
  every event, which is most of ijson's cost.
* Slow path, for any other layout and for every anomaly of the fast one: ijson's basic events (the yajl2_c
  backend when available), one message built at a time. When the fast path meets something it cannot slice or
  parse, the file is re-read on the slow path, which skips the messages already produced and either goes on or
  reports the exact problem (a JSON syntax error or a nesting too deep is located to the byte by re-parsing the
  failing chunk one byte at a time).

Memory stays bounded on both paths, whatever the file holds: one read chunk plus one message at a time, a message
(or any other top-level value) of at most ``_MAX_MESSAGE_BYTES``, and at most ``MAX_NESTING_DEPTH`` levels of
nesting (orjson and msgspec stop at about that depth on their own; the slow path counts). A file over either
bound is refused with the offset. ``messageCount`` follows the messages in the file, so
``ExportHeader.declared_count`` is filled in when the message iterator is exhausted (and checked against the
number of messages read).
"""

from __future__ import annotations

import ast
import itertools
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

import ijson
import msgspec
import orjson
from ijson import JSONError, ObjectBuilder

from promptmill.exports.errors import ExportError
from promptmill.exports.sources import Source
from promptmill.records import ExportHeader, RawMessage

log = logging.getLogger(__name__)

try:  # the C backend is much faster than the pure-Python one; any backend gives the same results
    _ijson = ijson.get_backend("yajl2_c")
except ImportError:  # pragma: no cover - depends on how ijson was built
    _ijson = ijson  # the best backend ijson found
    log.warning("ijson C backend yajl2_c unavailable, using %s (slower JSON parsing)", ijson.backend)

_HEADER_KEYS = ("guild", "channel", "dateRange", "exportedAt")
_BOM = b"\xef\xbb\xbf"
_READ_CHUNK = 512 << 10  # also the size of one orjson batch: bounds the objects alive at once
_MAX_HEADER_BYTES = 4 << 20  # DCE headers are a few hundred bytes; beyond this the file is not DCE-shaped
# One message (reaction users can make it large, a Discord message's text is at most 4,000 characters); beyond
# this the fast path hands over to the slow one, which refuses the file.
_MAX_MESSAGE_BYTES = 8 << 20
_MAX_TRAILER_BYTES = 1 << 20  # what may follow the messages array ("messageCount": N })
# DCE messages nest a few levels (embeds, fields, reactions); orjson and msgspec refuse about a thousand.
MAX_NESTING_DEPTH = 1024
_DCE_MESSAGES_KEY = b'\n  "messages": ['
_DCE_MESSAGE_END = b"\n    }"
_WHITESPACE = re.compile(rb"[ \t\r\n]*")
_OPEN_BRACE, _CLOSE_BRACKET, _COMMA = b"{],"


class _SlowPathNeeded(Exception):
    """The fast path met something it does not handle; the slow path will (or will report it precisely)."""


def read_json_export(source: Source) -> tuple[ExportHeader, Iterator[RawMessage]]:
    stream = source.open()
    try:
        first, bom_length = _read_without_bom(stream)
        if not first and not bom_length:
            raise ExportError(source.display_path, "empty file")
        fast = _FastReader(source, stream, first, bom_length)
        header_doc = fast.read_header()
    except _SlowPathNeeded:
        stream.close()
        return _read_slow(source)
    except BaseException:
        stream.close()
        raise
    header = _build_header(source, header_doc)
    return header, fast.messages(header)


# ---------------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------------


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    tz = moment.tzinfo
    if tz is UTC:  # "+00:00" parses to the UTC singleton: the common case of --utc exports
        return moment
    # DCE always writes an offset; a bare time (hand-made files) is taken as UTC.
    return moment.replace(tzinfo=UTC) if tz is None else moment.astimezone(UTC)


def _build_header(source: Source, doc: dict) -> ExportHeader:
    where = source.display_path
    guild, channel = doc.get("guild"), doc.get("channel")
    if not isinstance(channel, dict) or not isinstance(channel.get("id"), str) or not channel["id"]:
        raise ExportError(where, "not a DCE export: no 'channel' object with an 'id' string before 'messages'")
    if not isinstance(guild, dict):
        raise ExportError(where, "not a DCE export: no 'guild' object before 'messages'")
    exported_at = None
    if doc.get("exportedAt") is not None:
        try:
            exported_at = _utc(doc["exportedAt"])
        except (TypeError, ValueError):
            raise ExportError(where, f"invalid 'exportedAt' timestamp {doc['exportedAt']!r}") from None
    return ExportHeader(
        format="json",
        channel_id=channel["id"],
        channel_name=_optional_str(channel.get("name")),
        guild_id=_optional_str(guild.get("id")),
        guild_name=_optional_str(guild.get("name")),
        exported_at=exported_at,
    )


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _full_name(name, discriminator) -> str:
    """DCE's FullName: "name#1234" for legacy and bot accounts, the bare name for new-system users ("0000"/"0")."""
    if discriminator and discriminator != "0000" and discriminator != "0":
        return f"{name}#{discriminator}"
    return name


def message_of_doc(doc: dict, channel_id: str) -> RawMessage:
    """One message object -> RawMessage. Raises KeyError/TypeError/ValueError/AttributeError on bad input;
    the caller turns that into a precise reason with _message_problem (kept off the hot path)."""
    key, content, author = doc["id"], doc["content"], doc["author"]
    author_id, name = author["id"], author["name"]
    if key.__class__ is not str or content.__class__ is not str or author_id.__class__ is not str:
        raise TypeError
    name = _full_name(name, author.get("discriminator"))
    edited = doc.get("timestampEdited")
    attachments = doc.get("attachments")
    # Positional (hot path): key, channel_id, author_id, author, posted_at, content, attachments, edited_at,
    # is_bot, message_type.
    return RawMessage(
        key,
        channel_id,
        author_id,
        name,
        _utc(doc["timestamp"]),
        content,
        tuple([attachment["url"] for attachment in attachments]) if attachments else (),
        _utc(edited) if edited is not None else None,
        author.get("isBot"),
        doc.get("type"),
    )


class _DceAuthor(msgspec.Struct):
    id: str
    name: str
    discriminator: str | None = None
    isBot: bool | None = None  # noqa: N815 - DCE's key


class _DceAttachment(msgspec.Struct):
    url: str


class _DceMessage(msgspec.Struct):
    """The fields of a DCE message object that promptmill reads; msgspec skips the rest (reactions, embeds,
    mentions...) without building Python objects for them."""

    id: str
    timestamp: str
    content: str
    author: _DceAuthor
    timestampEdited: str | None = None  # noqa: N815 - DCE's key
    attachments: list[_DceAttachment] | None = None
    type: str | None = None


_decode_dce_messages = msgspec.json.Decoder(list[_DceMessage]).decode


def messages_of_batch(batch_json: bytes, channel_id: str) -> list[RawMessage]:
    """A JSON array of DCE message objects -> RawMessages, as message_of_doc would convert the same objects.

    Raises msgspec.DecodeError (a subclass: ValidationError) or ValueError for anything unusual: a wrong type,
    an unparsable timestamp, invalid JSON. The caller then converts the batch with orjson and message_of_doc, which
    accept what they accept and name the culprit of what they do not.
    """
    converted = []
    append = converted.append
    for doc in _decode_dce_messages(batch_json):
        author = doc.author
        edited = doc.timestampEdited
        attachments = doc.attachments
        append(
            RawMessage(
                doc.id,
                channel_id,
                author.id,
                _full_name(author.name, author.discriminator),
                _utc(doc.timestamp),
                doc.content,
                tuple([attachment.url for attachment in attachments]) if attachments else (),
                _utc(edited) if edited is not None else None,
                author.isBot,
                doc.type,
            )
        )
    return converted


def _message_problem(doc: object, index: int) -> str:
    """Why message_of_doc rejected ``doc`` (the index counts from 0 in file order)."""
    label = f"message #{index}"
    if not isinstance(doc, dict):
        return f"{label} is a JSON {type(doc).__name__}, not an object"
    if isinstance(doc.get("id"), str):
        label += f" (id {doc['id']})"
    for key in ("id", "timestamp", "content", "author"):
        if key not in doc:
            return f"{label}: missing '{key}'"
    for key in ("id", "timestamp", "content"):
        if not isinstance(doc[key], str):
            return f"{label}: '{key}' is not a string"
    author = doc["author"]
    if not isinstance(author, dict) or not isinstance(author.get("id"), str) or not isinstance(author.get("name"), str):
        return f"{label}: 'author' lacks an 'id' or 'name' string"
    for key in ("timestamp", "timestampEdited"):
        value = doc.get(key)
        if value is not None:
            try:
                _utc(value)
            except (TypeError, ValueError):
                return f"{label}: invalid '{key}' {value!r}"
    attachments = doc.get("attachments")
    if attachments and (not isinstance(attachments, list)
                        or not all(isinstance(a, dict) and isinstance(a.get("url"), str) for a in attachments)):
        return f"{label}: 'attachments' is not a list of objects with a 'url'"
    return f"{label}: malformed message object"


_MESSAGE_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


def _convert(source: Source, doc: object, index: int, channel_id: str, batch_offset: int | None = None) -> RawMessage:
    try:
        return message_of_doc(doc, channel_id)  # type: ignore[arg-type]
    except _MESSAGE_ERRORS:
        where = f" (in the batch of messages starting at byte {batch_offset})" if batch_offset is not None else ""
        raise ExportError(source.display_path, _message_problem(doc, index) + where) from None


def _check_count(source: Source, header: ExportHeader, declared: object, count: int) -> None:
    if isinstance(declared, int) and not isinstance(declared, bool):
        header.declared_count = declared
        if declared != count:
            raise ExportError(source.display_path,
                              f"'messageCount' says {declared} but the file holds {count} messages")


def _read_without_bom(stream: BinaryIO) -> tuple[bytes, int]:
    """The first chunk without a UTF-8 BOM (DCE writes none, editors may add one) and the BOM's length."""
    data = stream.read(_READ_CHUNK)
    return (data[len(_BOM):], len(_BOM)) if data.startswith(_BOM) else (data, 0)


# ---------------------------------------------------------------------------------------------------------------
# Fast path
# ---------------------------------------------------------------------------------------------------------------


class _FastReader:
    """Slices the DCE layout into one message at a time (see the module docstring)."""

    def __init__(self, source: Source, stream: BinaryIO, first_chunk: bytes, bom_length: int) -> None:
        self._source = source
        self._stream = stream
        self._buffer = first_chunk
        self._base = bom_length  # file offset of _buffer[0]
        self._eof = False
        self._pos = 0

    def _more(self) -> bool:
        """Append the next chunk, dropping what is consumed; False at end of file."""
        if self._eof:
            return False
        chunk = self._stream.read(_READ_CHUNK)
        if not chunk:
            self._eof = True
            return False
        self._base += self._pos
        self._buffer = self._buffer[self._pos:] + chunk
        self._pos = 0
        return True

    def read_header(self) -> dict:
        while (found := self._buffer.find(_DCE_MESSAGES_KEY)) < 0:
            if len(self._buffer) > _MAX_HEADER_BYTES or not self._more():
                raise _SlowPathNeeded
        head = self._buffer[:found].rstrip()
        if head.endswith(b","):
            head = head[:-1]
        try:
            # Valid only if everything before the key is the start of the top-level object (the key is then a
            # top-level key, not one nested somewhere or inside a string).
            doc = orjson.loads(head + b"}")
        except orjson.JSONDecodeError:
            raise _SlowPathNeeded from None
        if not isinstance(doc, dict):
            raise _SlowPathNeeded
        self._pos = found + len(_DCE_MESSAGES_KEY)
        return {key: doc[key] for key in _HEADER_KEYS if key in doc}

    def _next_token(self) -> int:
        """The next non-whitespace byte (position is left on it), reading on as needed; -1 at end of file."""
        while True:
            self._pos = _WHITESPACE.match(self._buffer, self._pos).end()
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._more():
                return -1

    def messages(self, header: ExportHeader) -> Iterator[RawMessage]:
        """Messages in batches: every complete message in the buffer is parsed by one orjson call on
        ``"[" + slice + "]"`` (the slice runs from a message's "{" to the last message end in the buffer)."""
        source, channel_id = self._source, header.channel_id
        count = 0
        try:
            try:
                token = self._next_token()
                while token != _CLOSE_BRACKET:
                    if token != _OPEN_BRACE:
                        raise _SlowPathNeeded  # not an object, or truncated (-1): the slow path says which
                    start = self._pos
                    while (end := self._buffer.rfind(_DCE_MESSAGE_END, self._pos)) < 0:
                        if len(self._buffer) - self._pos > _MAX_MESSAGE_BYTES or not self._more():
                            raise _SlowPathNeeded
                    start, end = self._pos, end + len(_DCE_MESSAGE_END)
                    batch_json = b"[" + self._buffer[start:end] + b"]"
                    batch_offset = self._base + start
                    try:
                        # msgspec decodes only the fields read, faster than orjson building them all
                        converted = messages_of_batch(batch_json, channel_id)
                    except (msgspec.DecodeError, ValueError, RecursionError):  # (nested too deep for msgspec)
                        converted = self._convert_with_orjson(batch_json, count, channel_id, batch_offset)
                    self._pos = end
                    count += len(converted)
                    yield from converted
                    token = self._next_token()
                    if token == _COMMA:
                        self._pos += 1
                        token = self._next_token()
                    elif token != _CLOSE_BRACKET:
                        raise _SlowPathNeeded
                self._pos += 1
                declared = self._trailer()
            except _SlowPathNeeded:
                log.debug("%s: leaving the fast path after %d messages", source.display_path, count)
                self._stream.close()
                yield from _slow_messages(source, header, skip=count)
                return
            _check_count(source, header, declared, count)
        except OSError as exc:
            raise ExportError(source.display_path, f"read failed: {exc.strerror or exc}") from None
        finally:
            self._stream.close()

    def _convert_with_orjson(
        self, batch_json: bytes, count: int, channel_id: str, batch_offset: int
    ) -> list[RawMessage]:
        """The general conversion of a batch (anything JSON allows), or the precise reason it is refused."""
        try:
            batch = orjson.loads(batch_json)
        except orjson.JSONDecodeError:
            raise _SlowPathNeeded from None
        try:
            return [message_of_doc(doc, channel_id) for doc in batch]
        except _MESSAGE_ERRORS:
            for index, doc in enumerate(batch, start=count):  # find the culprit, off the hot path
                _convert(self._source, doc, index, channel_id, batch_offset)
            raise  # pragma: no cover - _convert raised for the same document

    def _trailer(self) -> object:
        """Parse what follows the messages array; returns messageCount (or None)."""
        while not self._eof:
            if len(self._buffer) - self._pos > _MAX_TRAILER_BYTES:
                raise _SlowPathNeeded
            self._more()
        try:
            rest = orjson.loads(b'{"messages":[]' + self._buffer[self._pos:])
        except orjson.JSONDecodeError:
            raise _SlowPathNeeded from None
        return rest.get("messageCount")


# ---------------------------------------------------------------------------------------------------------------
# Slow path (ijson)
# ---------------------------------------------------------------------------------------------------------------


class _CountingReader:
    """File-like wrapper for ijson: skips a BOM, counts bytes, and bounds the bytes one value may span.

    Offsets are file offsets (a skipped BOM counts). While ``value_start`` is set, a read that takes the value
    past ``_MAX_MESSAGE_BYTES`` raises _ValueTooLarge before the parser can buffer more of it (one string can be
    the whole file). With ``drip_from`` it hands out single bytes from that offset on, so that a parser error is
    raised right after the byte that caused it (used only to locate an error already seen, never on the normal
    path).
    """

    def __init__(self, stream: BinaryIO, drip_from: int | None = None) -> None:
        self._stream = stream
        self._drip_from = drip_from
        self._pending, self.position = _split_bom(stream.read(len(_BOM)))
        self.last_chunk_start = self.position
        self.at_eof = False
        self.value_start: int | None = None

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes the stream type with read(0)
            return self._stream.read(0)
        if self.value_start is not None and self.position - self.value_start > _MAX_MESSAGE_BYTES:
            raise _ValueTooLarge
        if size is None or size < 0:
            size = _READ_CHUNK
        if self._drip_from is not None:
            size = 1 if self.position >= self._drip_from else min(size, self._drip_from - self.position)
        data, self._pending = self._pending[:size], self._pending[size:]
        if len(data) < size:
            data += self._stream.read(size - len(data))
        if not data:
            self.at_eof = True
        self.last_chunk_start = self.position
        self.position += len(data)
        return data


class _TooDeep(Exception):
    """Nesting beyond MAX_NESTING_DEPTH (located to the byte by a second, dripping parse)."""


class _ValueTooLarge(Exception):
    """One message (or top-level value) spans more than _MAX_MESSAGE_BYTES."""


def _events(reader: _CountingReader) -> Iterator[tuple[str, object]]:
    """ijson's basic events, with the nesting depth bounded.

    Basic events carry no prefix: ijson's prefixed events repeat the path of every enclosing container, so a
    deeply nested value made their memory grow with the square of its depth (a small file could exhaust memory).
    """
    depth = 0
    for event, value in _ijson.basic_parse(reader, use_float=True):
        if event == "start_map" or event == "start_array":
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                raise _TooDeep
        elif event == "end_map" or event == "end_array":
            depth -= 1
        yield event, value


def _split_bom(head: bytes) -> tuple[bytes, int]:
    """(bytes to keep, offset after the BOM) for the first bytes of a file."""
    return (b"", len(_BOM)) if head == _BOM else (head, 0)


def _parse_error_reason(source: Source, error: Exception, reader: _CountingReader, what: str) -> str:
    """A precise reason for a slow-path failure: the byte offset (found by a second, dripping parse) and why."""
    if isinstance(error, _ValueTooLarge):
        return (f"{what} starting near byte {reader.value_start} is larger than {_MAX_MESSAGE_BYTES >> 20} MiB "
                "(no DCE message is)")
    offset, at_eof, too_deep = _locate_error(source, reader.last_chunk_start)
    if too_deep or isinstance(error, _TooDeep):
        where = f"at byte {offset}" if offset is not None else f"after byte {reader.last_chunk_start}"
        return f"JSON nested deeper than {MAX_NESTING_DEPTH} levels {where}"
    text = str(error)
    if text.startswith(("b'", 'b"')):  # the C backend sometimes hands over the bytes repr of the message
        try:
            text = ast.literal_eval(text).decode("utf-8", "replace")
        except (ValueError, SyntaxError):
            pass
    message = (text.strip().splitlines() or ["invalid JSON"])[0]
    if at_eof:
        return f"truncated JSON: the document ends unexpectedly at byte {offset} ({message})"
    if offset is None:
        return f"invalid JSON after byte {reader.last_chunk_start} ({message})"
    return f"invalid JSON at byte {offset} ({message})"


def _locate_error(source: Source, failed_chunk_start: int) -> tuple[int | None, bool, bool]:
    """(offset of the failing byte, whether the document ended there, whether it was too deep)."""
    try:
        stream = source.open()
    except ExportError:
        return None, False, False
    with stream:
        reader = _CountingReader(stream, drip_from=failed_chunk_start)
        try:
            for _ in _events(reader):
                pass
        except _TooDeep:
            return reader.position - 1, False, True
        except JSONError:
            return (reader.position, True, False) if reader.at_eof else (reader.position - 1, False, False)
        except (ExportError, OSError):
            return None, False, False
    return None, False, False


_PARSE_ERRORS = (JSONError, _TooDeep, _ValueTooLarge)


def _read_slow(source: Source) -> tuple[ExportHeader, Iterator[RawMessage]]:
    stream = source.open()
    with stream:
        reader = _CountingReader(stream)
        try:
            doc = _scan_header(source, reader, _events(reader))
        except _PARSE_ERRORS as exc:
            if reader.position == 0:
                raise ExportError(source.display_path, "empty file") from None
            raise ExportError(source.display_path, _parse_error_reason(source, exc, reader, "a value")) from None
        except OSError as exc:
            raise ExportError(source.display_path, f"read failed: {exc.strerror or exc}") from None
    header = _build_header(source, doc)
    return header, _slow_messages(source, header, skip=0)


def _scan_header(source: Source, reader: _CountingReader, events: Iterator[tuple[str, object]]) -> dict:
    """The top-level keys before ``messages`` (only the header ones are built, others skipped)."""
    where = source.display_path
    event, _ = next(events)
    if event != "start_map":
        kind = {"start_array": "an array"}.get(event, "a scalar")
        raise ExportError(where, f"not a DCE export: the top-level JSON value is {kind}, not an object")
    doc: dict = {}
    for event, value in events:
        if event == "end_map":
            raise ExportError(where, "not a DCE export: no top-level 'messages' array")
        if value == "messages":
            event, _ = next(events)
            if event != "start_array":
                raise ExportError(where, "not a DCE export: 'messages' is not an array")
            return doc
        reader.value_start = reader.position
        built = _value(events)
        reader.value_start = None
        if value in _HEADER_KEYS:
            doc[value] = built
    raise ExportError(where, "truncated JSON: no 'messages' array")  # pragma: no cover - ijson raises first


def _value(events: Iterator[tuple[str, object]], first: tuple[str, object] | None = None) -> object:
    """The next complete value of ``events``, or the one that starts with ``first`` (the caller bounds its size
    and depth)."""
    builder = ObjectBuilder()
    depth = 0
    for event, value in itertools.chain([first] if first else (), events):
        builder.event(event, value)
        if event == "start_map" or event == "start_array":
            depth += 1
        elif event == "end_map" or event == "end_array":
            depth -= 1
        if depth == 0:
            return builder.value
    raise JSONError("incomplete JSON value")  # pragma: no cover - ijson raises on a truncated document


def _slow_messages(source: Source, header: ExportHeader, skip: int) -> Iterator[RawMessage]:
    """The messages of ``messages`` one at a time; the first ``skip`` (already produced) are parsed, not yielded."""
    stream = source.open()
    reader = _CountingReader(stream)
    count = 0
    channel_id = header.channel_id
    what = "a value"
    try:
        events = _events(reader)
        _scan_header(source, reader, events)
        for event, value in events:
            if event == "end_array":
                break
            what = f"message #{count}"
            reader.value_start = reader.position
            doc = value if event not in ("start_map", "start_array") else _value(events, (event, value))
            reader.value_start = None
            if count >= skip:
                yield _convert(source, doc, count, channel_id)
            count += 1
        if count < skip:  # the fast path cannot have read messages the document does not hold
            raise ExportError(source.display_path, "the file changed while it was being read")
        declared = None
        what = "a value after 'messages'"
        for event, value in events:  # the rest of the document: messageCount, and the check that it is valid
            if event == "map_key":
                reader.value_start = reader.position
                built = _value(events)
                reader.value_start = None
                if value == "messageCount":
                    declared = built
        _check_count(source, header, declared, count)
    except _PARSE_ERRORS as exc:
        raise ExportError(source.display_path, _parse_error_reason(source, exc, reader, what)) from None
    except OSError as exc:
        raise ExportError(source.display_path, f"read failed: {exc.strerror or exc}") from None
    finally:
        stream.close()
