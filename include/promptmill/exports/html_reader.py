"""DiscordChatExporter's HTML exports (its default format, dark and light themes), streamed.

The markup, from DCE's own templates (``Exporting/Writers/Html/*.cshtml`` and ``HtmlMarkdownVisitor``):

- messages are elements with a ``data-message-id`` attribute (``div.chatlog__message-container`` since 2.35,
  ``div.chatlog__message`` before), inside ``div.chatlog__message-group``. Only the first message of a group
  carries the author (``span.chatlog__author`` / ``span.chatlog__author-name`` with ``title`` = the full name and
  ``data-user-id``) and the ``BOT`` label: the author is carried forward through the group;
- the visible dates are locale strings, so the exact UTC time comes from the message id (a Discord snowflake);
- the content (``div.chatlog__content``) is rendered markdown: code spans, bold, italics, underline,
  strikethrough, spoilers, quotes, links, mentions (``@nick``, the full name in ``title``), emoji images (the
  emoji in ``alt``). It is turned back into the text the bot sent, as DCE's JSON and CSV exports give it (markdown
  kept, mentions as ``@name``, custom emoji as ``:name:``), so the bot parsers and cleaning rules see the same;
- attachments are ``div.chatlog__attachment`` links; the preamble (``div.preamble__entry``) names the guild and
  the channel, the file name carries the channel id, as for CSV.

Streaming: the file is read in chunks and cut at each message group's start tag; each group is parsed alone with
lxml's HTML parser (libxml2), so memory holds one group, however large the file (DCE writes one HTML file per
channel, multi-GB for busy ones). libxml2's push parser, tried first, kept every byte it was fed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import chain
from typing import BinaryIO

from lxml import etree

from promptmill.exports.errors import ExportError
from promptmill.exports.naming import fallback_channel_id, parse_export_file_name
from promptmill.exports.sources import Source
from promptmill.exports.txt_reader import parse_txt_date
from promptmill.records import ExportHeader, RawMessage

CHUNK_BYTES = 1 << 20
DISCORD_EPOCH_MS = 1420070400000
# A message's rendered content past this many characters is not a chat message (Discord's own limit is 4,000;
# a bot's embeds stay far below): refused with the message id, as the JSON reader refuses an 8 MiB message.
MAX_CONTENT_CHARS = 1 << 20


def snowflake_time(message_id: str) -> datetime:
    """The UTC time a Discord snowflake was made (to the millisecond)."""
    return datetime.fromtimestamp(((int(message_id) >> 22) + DISCORD_EPOCH_MS) / 1000, UTC)


def _classes(element: etree._Element) -> list[str]:
    return (element.get("class") or "").split()


def _has_class(element: etree._Element, *suffixes: str) -> bool:
    """True when one of the element's classes ends with one of ``suffixes``: DCE renamed its classes over the
    versions ("pre--inline" -> "chatlog__markdown-pre--inline"), keeping their last part."""
    return any(token.endswith(suffix) for token in _classes(element) for suffix in suffixes)


_AUTHOR_CLASSES = ("chatlog__author", "chatlog__author-name", "chatlog__system-notification-author")


def _is_author(element: etree._Element) -> bool:
    # A system notification (a pin, a join, a thread) has a group of its own, its author in its own class.
    return element.tag == "span" and any(token in _AUTHOR_CLASSES for token in _classes(element))


def markdown_of(element: etree._Element) -> str:
    """The markdown a rendered DCE content element came from (its children and their tails)."""
    parts = [element.text or ""]
    for child in element:
        parts.append(_markdown_of_child(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _markdown_of_child(child: etree._Element) -> str:
    tag = child.tag if isinstance(child.tag, str) else ""
    if tag == "br":
        return "\n"
    if tag == "code":
        code = child.text or ""
        if _has_class(child, "pre--multiline"):
            language = next((token[len("language-"):] for token in _classes(child) if token.startswith("language-")),
                            "")
            return f"```{language}\n{code}```"
        fence = "``" if "`" in code else "`"
        return f"{fence}{code}{fence}"
    if tag == "img":
        name = child.get("alt") or ""
        return f":{name}:" if "/emojis/" in (child.get("src") or "") else name
    if tag == "a":
        text, href = markdown_of(child), child.get("href") or ""
        return href if text in ("", href) else f"[{text}]({href})"
    if _has_class(child, "edited-timestamp", "edited"):
        return ""
    if _has_class(child, "mention"):
        title = child.get("title")
        text = markdown_of(child)
        # A user mention shows the nickname; DCE's JSON and CSV write the account name: the title's full name
        # without a "#1234" discriminator.
        return f"@{title.rsplit('#', 1)[0]}" if title and text.startswith("@") else text
    if _has_class(child, "quote-border"):
        return ""
    if _has_class(child, "markdown-quote", "quote"):
        inner = "".join(markdown_of(part) for part in child if _has_class(part, "quote-content")) or markdown_of(child)
        return "\n".join(f"> {line}" for line in inner.split("\n"))
    wrap = {"strong": "**", "b": "**", "em": "*", "i": "*", "u": "__", "s": "~~", "del": "~~"}.get(tag)
    if wrap is None and _has_class(child, "spoiler", "spoiler-text", "spoiler--hidden"):
        wrap = "||"
    inner = markdown_of(child)
    return f"{wrap}{inner}{wrap}" if wrap else inner


def _content_of(message: etree._Element) -> str:
    for element in message.iter("div"):
        if "chatlog__content" in _classes(element):
            # the text is in the markdown span(s); the "(edited)" marker is not part of it
            spans = [e for e in element.iter("span") if _has_class(e, "markdown-preserve", "preserve-whitespace")]
            if spans:
                return "".join(markdown_of(span) for span in spans)
            return markdown_of(element).strip()
    return ""


def _attachments_of(message: etree._Element) -> tuple[str, ...]:
    urls = []
    for element in message.iter("div"):
        if "chatlog__attachment" in _classes(element):
            link = next(element.iter("a"), None)
            media = next((e for e in element.iter("img", "source", "video", "audio") if e.get("src")), None)
            url = link.get("href") if link is not None and link.get("href") else (media.get("src") if media is not None else None)
            if url:
                urls.append(url)
    return tuple(urls)


class _Author:
    __slots__ = ("id", "is_bot", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.is_bot: bool | None = None


# A message group's start tag, quoted or not: DCE passes its HTML through WebMarkupMin, which may drop quotes.
GROUP_START = re.compile(rb"""<div\s+class\s*=\s*["']?chatlog__message-group(?=["'\s>])""")
# One message group (one author's consecutive messages) past this is not a chat export: refused, bounding memory.
MAX_GROUP_BYTES = 64 << 20


def read_html_export(source: Source) -> tuple[ExportHeader, Iterator[RawMessage]]:
    where = source.display_path
    stream = source.open()
    try:
        chunks = _group_chunks(stream, where)
        preamble = next(chunks, b"")
        entries = _preamble_entries(preamble)
        first = next(chunks, None)
        if first is None and b"chatlog" not in preamble:
            raise ExportError(where, "not a DiscordChatExporter HTML export: no chatlog element")
    except BaseException:
        stream.close()
        raise
    name = parse_export_file_name(source.file_name)
    guild = entries[0] if entries else None
    channel_line = entries[1] if len(entries) > 1 else None
    channel_name = channel_line.rsplit(" / ", 1)[-1] if channel_line else None
    if name is not None:
        header = ExportHeader(format="html", channel_id=name.channel_id,
                              channel_name=channel_name or name.channel_name, guild_name=guild or name.guild_name)
    else:
        header = ExportHeader(format="html", channel_id=fallback_channel_id(source.file_name),
                              channel_name=channel_name, guild_name=guild)
    groups = chain([preamble] if first is None else [first], chunks)
    return header, _messages(stream, groups, where, header.channel_id)


def _group_chunks(stream: BinaryIO, where: str) -> Iterator[bytes]:
    """The file cut at each message group's start tag: first what precedes the first group (the preamble), then
    one piece per group (the last one with the postamble). Content is HTML-escaped, so the start tag only ever
    appears as markup. Each piece is parsed alone: memory holds one group at a time, however long the file."""
    buffer = b""
    start = 0  # where the piece being read starts in the buffer
    resume = 0  # where the next search for a start tag begins
    found_first = False
    while True:
        try:
            chunk = stream.read(CHUNK_BYTES)
        except OSError as exc:
            raise ExportError(where, f"cannot read: {exc.strerror or exc}") from None
        # one copy per chunk (not per group: a chat channel's groups are a few hundred bytes each)
        buffer = buffer[start:] + chunk
        resume -= start
        start = 0
        while (match := GROUP_START.search(buffer, max(resume, 0))) is not None:
            cut = match.start()
            if cut > start or not found_first:
                yield buffer[start:cut]
            found_first = True
            start, resume = cut, cut + 1
        resume = max(resume, len(buffer) - 64)  # a start tag cut by the chunk's end is found with the next one
        if len(buffer) - start > MAX_GROUP_BYTES:
            raise ExportError(where, f"a message group over {MAX_GROUP_BYTES >> 20} MiB: not a chat export")
        if not chunk:
            if len(buffer) > start:
                yield buffer[start:]
            return


def _parse(piece: bytes) -> etree._Element | None:
    if not piece.strip():
        return None
    return etree.fromstring(piece, etree.HTMLParser(encoding="utf-8", remove_comments=True))


def _preamble_entries(preamble: bytes) -> list[str]:
    root = _parse(preamble)
    if root is None:
        return []
    return [" ".join("".join(e.itertext()).split()) for e in root.iter("div") if "preamble__entry" in _classes(e)]


def _messages(stream: BinaryIO, groups: Iterator[bytes], where: str, channel_id: str) -> Iterator[RawMessage]:
    try:
        for piece in groups:
            try:
                root = _parse(piece)
            except etree.LxmlError as exc:
                raise ExportError(where, f"unreadable HTML: {exc}") from None
            if root is None:
                continue
            author = _Author()  # carried from the group's first message to the others
            for element in root.iter("span", "div"):
                if element.get("data-message-id") is None:
                    _note_author(element, author)  # before the messages (DCE up to 2.34)
                    continue
                for inner in element.iter("span"):  # inside the first message (DCE 2.35 on)
                    _note_author(inner, author)
                yield _message(element, element.get("data-message-id"), author, channel_id, where)
    finally:
        stream.close()


def _note_author(element: etree._Element, author: _Author) -> None:
    if _is_author(element):
        author.id = element.get("data-user-id") or author.id
        author.name = element.get("title") or "".join(element.itertext()).strip()
    elif element.tag == "span" and _has_class(element, "bot-label", "bot-tag"):
        author.is_bot = True


def _message(element: etree._Element, message_id: str, author: _Author, channel_id: str, where: str) -> RawMessage:
    if not message_id.isdigit():
        raise ExportError(where, f"message id {message_id!r} is not a Discord id")
    if author.id is None and not author.name:
        raise ExportError(where, f"message {message_id}: no author before it (not a DiscordChatExporter HTML export?)")
    content = _content_of(element)
    if len(content) > MAX_CONTENT_CHARS:
        raise ExportError(where, f"message {message_id}: content over {MAX_CONTENT_CHARS:,} characters")
    edited = next((e.get("title") for e in element.iter("span") if _has_class(e, "edited-timestamp")), None)
    return RawMessage(
        key=message_id,
        channel_id=channel_id,
        author_id=author.id or f"name:{author.name}",  # a system notification's author may come without an id
        author=author.name,
        posted_at=snowflake_time(message_id),
        content=content,
        attachments=_attachments_of(element),
        is_bot=author.is_bot if author.is_bot else False,
        # the "(edited)" marker's title is the edit time in the export's date format (to the minute, mostly)
        edited_at=parse_txt_date(edited) if edited else None,
    )
