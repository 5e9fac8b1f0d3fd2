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
    attachments: tuple[str, ...] | None = None  # URLs; None: the writers' default one

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


def write_csv_export(path: Path, messages: list[Msg], *, date_format=None) -> Path:
    """``date_format(datetime) -> str``: the Date column (default: DCE's round-trip format, sub-second)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("AuthorID,Author,Date,Content,Attachments,Reactions\n")
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for m in messages:
            date = (date_format(m.when) if date_format else
                    m.when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0+00:00")
            urls = m.attachments if m.attachments is not None else (f"https://cdn.discordapp.com/attachments/1/{m.id}/img.png",)
            writer.writerow([m.author["id"], f"{m.author['name']}#{m.author['discriminator']}", date, m.content,
                             ",".join(urls), ""])
    return path


# --- DiscordChatExporter HTML (the markup of its templates: Exporting/Writers/Html/*.cshtml) -----------------------
def _html_markdown(content: str, legacy: bool) -> str:
    """Render what the test contents use as DCE does: inline code and bold; the rest HTML-escaped."""
    import html
    import re

    code_class = "pre pre--inline" if legacy else "chatlog__markdown-pre chatlog__markdown-pre--inline"
    out = []
    for part in re.split(r"(`[^`]+`)", content):
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f'<code class="{code_class}">{html.escape(part[1:-1], quote=False)}</code>')
        else:
            escaped = html.escape(part, quote=False)
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))
    return "".join(out)


def _full_name(author: dict) -> str:
    """DCE's FullName: "name#1234", or the bare name for new-system users ("0") and none."""
    discriminator = author.get("discriminator")
    return f"{author['name']}#{discriminator}" if discriminator not in (None, "0", "0000") else author["name"]


def _urls(m: Msg, channel_id: str) -> tuple[str, ...]:
    if m.attachments is not None:
        return m.attachments
    return (f"https://cdn.discordapp.com/attachments/{channel_id}/{m.id}/img.png",)


def write_html_export(path: Path, channel_id: str, messages: list[Msg], *, channel_name: str = "dreambot-1",
                      legacy: bool = False, theme: str = "Dark") -> Path:
    """A DCE HTML export: `legacy` is the markup of DCE 2.18-2.34 (chatlog__messages, author-name, preserve-whitespace),
    else that of 2.35 on (message-container, chatlog__author, chatlog__markdown-preserve). Consecutive messages of
    one author within 7 minutes form a group whose first message alone carries the author, as DCE groups them."""
    import html

    groups: list[list[Msg]] = []
    for m in messages:
        last = groups[-1][-1] if groups else None
        if last is not None and last.author["id"] == m.author["id"] and m.when - last.when <= timedelta(minutes=7):
            groups[-1].append(m)
        else:
            groups.append([m])
    body = []
    for group in groups:
        first = group[0]
        a = first.author
        full = _full_name(a)
        nick = html.escape(a.get("nickname") or a["name"])
        bot = ('<span class="chatlog__bot-tag">BOT</span>' if legacy else '<span class="chatlog__bot-label">BOT</span>'
               ) if a.get("isBot") else ""
        stamp = first.when.strftime("%d-%b-%y %I:%M %p")
        attachment = ('<div class="chatlog__attachment"><a href="{url}"><img class="chatlog__attachment-media" '
                      'src="{url}" alt="Image attachment" loading="lazy"></a></div>')
        if legacy:
            body.append('<div class="chatlog__message-group"><div class="chatlog__author-avatar-container">'
                        '<img class="chatlog__author-avatar" src="avatar.png" alt="Avatar"></div>'
                        f'<div class="chatlog__messages"><span class="chatlog__author-name" title="{html.escape(full)}" '
                        f'data-user-id="{a["id"]}">{nick}</span>{bot}<span class="chatlog__timestamp">{stamp}</span>')
            for m in group:
                files = "".join(attachment.format(url=html.escape(url)) for url in _urls(m, channel_id))
                body.append(f'<div class="chatlog__message " data-message-id="{m.id}" id="message-{m.id}">'
                            f'<div class="chatlog__content"><div class="markdown"><span class="preserve-whitespace">'
                            f'{_html_markdown(m.content, True)}</span></div></div>{files}</div>')
            body.append("</div></div>")
            continue
        body.append('<div class="chatlog__message-group">')
        for i, m in enumerate(group):
            files = "".join(attachment.format(url=html.escape(url)) for url in _urls(m, channel_id))
            aside = ('<img class="chatlog__avatar" src="avatar.png" alt="Avatar" loading="lazy">' if i == 0 else
                     f'<div class="chatlog__short-timestamp" title="{stamp}">{m.when.strftime("%I:%M %p")}</div>')
            header = (f'<div class="chatlog__header"><span class="chatlog__author" title="{html.escape(full)}" '
                      f'data-user-id="{a["id"]}">{nick}</span>\n{bot}\n<span class="chatlog__timestamp"><a '
                      f'href="#chatlog__message-container-{m.id}">{stamp}</a></span></div>') if i == 0 else ""
            edited = (f'<span class="chatlog__edited-timestamp" title="{m.edited.strftime("%d-%b-%y %I:%M %p")}">'
                      '(edited)</span>' if m.edited else "")
            body.append(
                f'<div id="chatlog__message-container-{m.id}" class="chatlog__message-container " '
                f'data-message-id="{m.id}"><div class="chatlog__message"><div class="chatlog__message-aside">{aside}'
                f'</div><div class="chatlog__message-primary">{header}\n<div class="chatlog__content chatlog__markdown">'
                f'\n<span class="chatlog__markdown-preserve"><!--wmm:ignore-->{_html_markdown(m.content, False)}'
                f'<!--/wmm:ignore--></span>\n{edited}</div>{files}</div></div></div>')
        body.append("</div>")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><title>Stable Diffusion - {channel_name}</title>'
            f'<meta charset="utf-8"><style>/* {theme} theme */</style></head><body>'
            '<div class="preamble"><div class="preamble__guild-icon-container"><img class="preamble__guild-icon" '
            'src="icon.png" alt="Guild icon"></div><div class="preamble__entries-container">'
            '<div class="preamble__entry">Stable Diffusion</div>'
            f'<div class="preamble__entry">Bots / {html.escape(channel_name)}</div></div></div>'
            f'<div class="chatlog">{"".join(body)}</div>'
            f'<div class="postamble"><div class="postamble__entry">Exported {len(messages):,} message(s)</div></div>'
            '</body></html>\n')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


# --- DiscordChatExporter plain text (its PlainTextMessageWriter) -----------------------------------------------------
TXT_DATE_FORMATS = {  # the exporting machine's culture decides
    "dce-default": lambda d: d.strftime("%d-%b-%y %I:%M %p"),  # 01-Nov-22 12:00 PM
    "en-US": lambda d: f"{d.month}/{d.day}/{d.year} {d.hour % 12 or 12}:{d.minute:02d} {'AM' if d.hour < 12 else 'PM'}",
    "de-DE": lambda d: d.strftime("%d.%m.%Y %H:%M"),
    "en-GB": lambda d: d.strftime("%d/%m/%Y %H:%M"),
}


def write_txt_export(path: Path, messages: list[Msg], *, channel_name: str = "dreambot-1",
                     culture: str = "dce-default", reactions: bool = True) -> Path:
    fmt = TXT_DATE_FORMATS[culture]
    rule = "=" * 62
    out = [rule, "Guild: Stable Diffusion", f"Channel: Bots / {channel_name}", rule, ""]
    for m in messages:
        a = m.author
        full = _full_name(a)
        out.append(f"[{fmt(m.when)}] {full}")
        out.append(m.content)
        out.append("")
        urls = m.attachments if m.attachments is not None else (f"https://cdn.discordapp.com/attachments/1/{m.id}/img.png",)
        if urls:
            out += ["{Attachments}", *urls, ""]
        if reactions:
            out += ["{Reactions}", "👍 (2) 🔥 "]
        out.append("")
    out += [rule, f"Exported {len(messages):,} message(s)", rule, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out), encoding="utf-8")
    return path
