"""Builders of small DiscordChatExporter exports for tests (independent of tests.synth)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

BOT = {"id": "1000000000000000001", "name": "DreamBotMothership", "discriminator": "6958", "nickname": "DreamBot", "isBot": True}
EPOCH = datetime(2022, 11, 1, 12, 0, tzinfo=UTC)


def snowflake(when: datetime, seq: int = 0) -> str:
    ms = int(when.timestamp() * 1000) - 1420070400000
    return str((ms << 22) | (seq & 0x3FFFFF))


def slash_content(user: str, prompt: str, seed: int = 1, extra: str = "") -> str:
    return f"Dreamt in `6.31s` for @{user}... `/dream prompt:{prompt} seed:{seed} cfg_scale:7.5`{extra}"


def text_content(user: str | None, prompt: str, seed: int = 42) -> str:
    who = f" for @{user}'s" if user else " for"
    return f'Dreamt in `12.07s`{who} `!dream "{prompt}" -S {seed}`'


@dataclass
class Msg:
    content: str
    when: datetime
    seq: int = 0
    author: dict = field(default_factory=lambda: dict(BOT))
    edited: datetime | None = None
    msg_id: str | None = None

    @property
    def id(self) -> str:
        return self.msg_id or snowflake(self.when, self.seq)


def slash(user: str, prompt: str, minutes: float, seq: int = 0, **kw) -> Msg:
    return Msg(slash_content(user, prompt, seed=seq + 1), EPOCH + timedelta(minutes=minutes), seq=seq, **kw)


def _ts(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def write_json_export(path: Path, channel_id: str, messages: list[Msg], channel_name: str = "dreambot-1") -> Path:
    doc = {
        "guild": {"id": "1002292111942635562", "name": "Stable Diffusion", "iconUrl": ""},
        "channel": {"id": channel_id, "type": "GuildTextChat", "categoryId": "1", "category": "Bots",
                    "name": channel_name, "topic": None},
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2023-01-01T00:00:00+00:00",
        "messages": [
            {
                "id": m.id,
                "type": "Default",
                "timestamp": _ts(m.when),
                "timestampEdited": _ts(m.edited) if m.edited else None,
                "callEndedTimestamp": None,
                "isPinned": False,
                "content": m.content,
                "author": m.author,
                "attachments": [
                    {"id": m.id, "url": f"https://cdn.discordapp.com/attachments/{channel_id}/{m.id}/img.png",
                     "fileName": "img.png", "fileSizeBytes": 1000}
                ],
                "embeds": [],
                "stickers": [],
                "reactions": [],
                "mentions": [],
            }
            for m in messages
        ],
        "messageCount": len(messages),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def write_csv_export(path: Path, messages: list[Msg]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("AuthorID,Author,Date,Content,Attachments,Reactions\n")
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for m in messages:
            date = m.when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00"
            writer.writerow([m.author["id"], f"{m.author['name']}#{m.author['discriminator']}", date, m.content,
                             f"https://cdn.discordapp.com/attachments/1/{m.id}/img.png", ""])
    return path
