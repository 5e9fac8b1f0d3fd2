"""Builders of small DiscordChatExporter exports for the reader tests, written the way DCE writes them."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

CHANNEL_ID = "1032443284947075073"
GUILD_ID = "1002292111942635562"
BOT = {"id": "1034481460838531074", "name": "DreamBot", "discriminator": "0357", "isBot": True}
USER = {"id": "355292073655664802", "name": "mirapixel", "discriminator": "0000", "isBot": False}
START = datetime(2022, 11, 1, 12, 0, tzinfo=UTC)

_ASTRAL = re.compile(r"[\U00010000-\U0010FFFF]")


def _surrogate_escape(match: re.Match) -> str:
    code = ord(match.group()) - 0x10000
    return f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}"


def dumps_dce(doc: dict, *, compact: bool = False) -> bytes:
    """DCE's JSON layout (System.Text.Json indented by 2, relaxed escaping: astral characters as surrogate
    escapes); ``compact`` gives a one-line document (another writer's layout: the reader's slow path)."""
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":")) if compact else json.dumps(
        doc, ensure_ascii=False, indent=2)
    return _ASTRAL.sub(_surrogate_escape, text).encode("utf-8")


def snowflake(when: datetime, seq: int = 0) -> str:
    return str(((int(when.timestamp() * 1000) - 1420070400000) << 22) | seq)


def message_218(i: int, content: str | None = None, author: dict = BOT, when: datetime | None = None,
                attachments: int = 1) -> dict:
    """A message with only the keys DCE 2.18 wrote."""
    when = when or START + timedelta(seconds=7 * i)
    mid = snowflake(when, i)
    return {
        "id": mid,
        "type": "Default",
        "timestamp": when.isoformat(),
        "timestampEdited": None,
        "isPinned": False,
        "content": f"prompt number {i}" if content is None else content,
        "author": {**author, "avatarUrl": "https://cdn.discordapp.com/embed/avatars/0.png"},
        "attachments": [{"id": f"{mid}{k}", "url": f"https://cdn.discordapp.com/attachments/1/{mid}/img_{i}_{k}.png",
                         "fileName": f"img_{i}_{k}.png", "fileSizeBytes": 1234} for k in range(attachments)],
        "embeds": [],
        "reactions": [],
    }


def user_247(user: dict, roles: bool = True) -> dict:
    full = {**user, "nickname": user["name"].title(), "color": "#1ABC9C" if user["isBot"] else None}
    if roles:
        full["roles"] = [{"id": "999465733324931079", "name": "Bots", "color": "#1ABC9C", "position": 10}]
    full["avatarUrl"] = "https://cdn.discordapp.com/embed/avatars/1.png"
    return full


def message_247(i: int, content: str | None = None, when: datetime | None = None) -> dict:
    """A message with every key DCE 2.47 can write (optional ones included)."""
    when = when or START + timedelta(seconds=7 * i)
    mid = snowflake(when, i)
    emoji = {"id": "", "name": "\U0001F98A", "code": "fox", "isAnimated": False,
             "imageUrl": "https://cdn.jsdelivr.net/gh/twitter/twemoji@latest/assets/svg/1f98a.svg"}
    return {
        "id": mid,
        "type": "20",
        "timestamp": when.isoformat(),
        "timestampEdited": (when + timedelta(seconds=5)).isoformat(),
        "callEndedTimestamp": None,
        "isPinned": True,
        "content": f"Dreamt in `4.06s` for @mira pixel... `/dream prompt:fox {i}`" if content is None else content,
        "author": user_247(BOT),
        "attachments": [{"id": mid, "url": f"https://cdn.discordapp.com/attachments/1/{mid}/fox_{i}.png?ex=1&is=2&hm=3&",
                         "fileName": f"fox_{i}.png", "fileSizeBytes": 348774}],
        "embeds": [{"title": "", "url": None, "timestamp": None, "description": "seed 1", "color": "#1ABC9C",
                    "author": {"name": "DreamBot", "url": None}, "images": [], "fields": [
                        {"name": "cfg", "value": "7.5", "isInline": True}], "inlineEmojis": []}],
        "stickers": [{"id": "1", "name": "wave", "format": "Png", "sourceUrl": "https://media.discordapp.net/stickers/1.png"}],
        "reactions": [{"emoji": emoji, "count": 2, "users": [user_247(USER, roles=False)]}],
        "mentions": [user_247(USER)],
        "reference": {"type": "Default", "messageId": None, "channelId": CHANNEL_ID, "guildId": GUILD_ID},
        "forwardedMessage": {"timestamp": when.isoformat(), "timestampEdited": None, "content": "fwd",
                             "attachments": [], "embeds": [], "stickers": []},
        "interaction": {"id": str(int(mid) - 1), "name": "dream", "user": user_247(USER)},
        "inlineEmojis": [emoji],
    }


def export_doc(messages: list[dict], *, full_header: bool = True, channel_id: str = CHANNEL_ID) -> dict:
    """A whole DCE document; ``full_header=False`` gives the 2.18 header (no categoryId, no exportedAt)."""
    channel = {"id": channel_id, "type": "GuildTextChat", "categoryId": "1", "category": "Bots",
               "name": "dreambot-1", "topic": None}
    if not full_header:
        del channel["categoryId"]
    doc = {"guild": {"id": GUILD_ID, "name": "Stable Diffusion", "iconUrl": "https://cdn.discordapp.com/icons/1/a.png"},
           "channel": channel,
           "dateRange": {"after": None, "before": None}}
    if full_header:
        doc["exportedAt"] = "2023-01-01T00:07:00.1234567+00:00"
    doc["messages"] = messages
    doc["messageCount"] = len(messages)
    return doc


def write_json(path: Path, messages: list[dict], *, compact: bool = False, **header) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dumps_dce(export_doc(messages, **header), compact=compact))
    return path


CSV_HEADER = "AuthorID,Author,Date,Content,Attachments,Reactions"


def csv_bytes(rows: list[tuple[str, str, str, str, str, str]], newline: str = "\n") -> bytes:
    """DCE CSV: literal header, every field quoted, ``""`` escapes, platform line terminator."""
    out = io.StringIO()
    out.write(CSV_HEADER + newline)
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=newline)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def iso_o(when: datetime) -> str:
    """.NET round-trip "o" format (7 fraction digits, numeric offset)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0" + when.strftime("%z")[:3] + ":" + when.strftime("%z")[3:]
