"""DiscordChatExporter's HTML exports (issue #21): the same messages as the JSON export of the channel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from lxml import etree
from promptmill.exports.discovery import discover
from promptmill.exports.errors import ExportError
from promptmill.exports.html_reader import markdown_of, snowflake_time
from promptmill.exports.reading import read_export

from tests.helpers import BOT, EPOCH, Msg, slash, text_content, write_html_export, write_json_export

USER = {"id": "555000000000000001", "name": "ann", "discriminator": "0", "nickname": "Annie", "isBot": False}


def _messages():
    return [
        slash("ann", "a red fox in the snow, **bold**, 8 k", 0, seq=1),
        slash("bob", "a castle on a hill", 0.5, seq=2),  # same author (the bot), same group
        Msg(text_content("cid", 'a lighthouse at "dusk" & <night>'), EPOCH + timedelta(minutes=1), seq=3),
        Msg("hello everyone, is this the right channel?", EPOCH + timedelta(minutes=20), seq=4, author=dict(USER)),
        slash("dee", "an owl", 21, seq=5, edited=EPOCH + timedelta(minutes=25)),  # a new group; edited
    ]


def _read(path):
    (source,) = [s for s in discover([path]) if not isinstance(s, ExportError)]
    header, messages = read_export(source)
    return header, list(messages)


def _comparable(m):
    return (m.key, m.posted_at, m.author_id, m.author, m.content, m.attachments)


@pytest.mark.parametrize("legacy", [False, True], ids=["dce-2.35+", "dce-2.18-2.34"])
@pytest.mark.parametrize("theme", ["Dark", "Light"])
def test_html_gives_the_json_exports_messages(tmp_path, legacy, theme):
    messages = _messages()
    json_path = write_json_export(tmp_path / "Stable Diffusion - Bots - dreambot-1 [101].json", "101", messages)
    html_path = write_html_export(tmp_path / "Stable Diffusion - Bots - dreambot-1 [101].html", "101", messages,
                                  legacy=legacy, theme=theme)
    json_header, from_json = _read(json_path)
    html_header, from_html = _read(html_path)
    assert [_comparable(m) for m in from_html] == [_comparable(m) for m in from_json]
    assert (html_header.channel_id, html_header.channel_name, html_header.guild_name) == (
        "101", "dreambot-1", "Stable Diffusion")
    assert [m.is_bot for m in from_html] == [True, True, True, False, True]
    if not legacy:  # the "(edited)" marker, to the minute of DCE's default date format
        assert from_html[-1].edited_at == from_json[-1].edited_at.replace(second=0, microsecond=0)


def test_the_time_comes_from_the_snowflake():
    when = EPOCH + timedelta(minutes=3, milliseconds=250)
    assert snowflake_time(Msg("x", when, seq=7).id) == when


def _render(fragment: str) -> str:
    return markdown_of(etree.fromstring(f"<span>{fragment}</span>", etree.HTMLParser()).find(".//span"))


@pytest.mark.parametrize(("fragment", "text"), [
    ('Dreamt in <code class="chatlog__markdown-pre chatlog__markdown-pre--inline">6.31s</code>', "Dreamt in `6.31s`"),
    ('<code class="pre pre--inline">a `b` c</code>', "``a `b` c``"),
    ("<strong>bold</strong> <em>it</em> <u>under</u> <s>gone</s>", "**bold** *it* __under__ ~~gone~~"),
    ('<span class="chatlog__markdown-spoiler chatlog__markdown-spoiler--hidden">secret</span>', "||secret||"),
    ('for <span class="chatlog__markdown-mention" title="annie#1234">@Annie</span>', "for @annie"),
    ('<span class="chatlog__markdown-mention">#general</span>', "#general"),
    ('<img class="chatlog__emoji " alt="😀" src="https://cdn.jsdelivr.net/x.svg">', "😀"),
    ('<img class="chatlog__emoji " alt="pepe" src="https://cdn.discordapp.com/emojis/1.png">', ":pepe:"),
    ('<a href="https://example.com/a">https://example.com/a</a>', "https://example.com/a"),
    ('<a href="https://example.com/a">here</a>', "[here](https://example.com/a)"),
    ("line one<br>line two &amp; more", "line one\nline two & more"),
    ('<code class="chatlog__markdown-pre chatlog__markdown-pre--multiline language-py">x = 1</code>',
     "```py\nx = 1```"),
])
def test_rendered_markdown_back_to_the_text_sent(fragment, text):
    assert _render(fragment) == text


def test_a_file_that_is_not_a_dce_html_export_is_refused_with_the_reason(tmp_path):
    page = tmp_path / "notes [7].html"
    page.write_text("<html><body><h1>My notes</h1></body></html>")
    (source,) = list(discover([page]))
    with pytest.raises(ExportError, match="not a DiscordChatExporter HTML export"):
        read_export(source)


def test_a_message_before_any_author_is_refused(tmp_path):
    page = tmp_path / "x [7].html"
    page.write_text('<div class="chatlog"><div class="chatlog__message-container" data-message-id="123">'
                    '<div class="chatlog__content">hi</div></div></div>')
    (source,) = list(discover([page]))
    header, messages = read_export(source)
    with pytest.raises(ExportError, match="message 123: no author before it"):
        list(messages)


def test_the_bots_messages_parse_the_same(tmp_path):
    """What the cleaning sees: the bot parser on HTML content equals the one on JSON content."""
    from promptmill.bots import extract

    messages = _messages()
    _, from_json = _read(write_json_export(tmp_path / "a [1].json", "1", messages))
    _, from_html = _read(write_html_export(tmp_path / "a [1].html", "1", messages))
    assert [extract(m.content) for m in from_html] == [extract(m.content) for m in from_json]
    assert BOT["isBot"]


def test_a_large_html_export_is_read_in_bounded_memory(tmp_path):
    """DCE writes one HTML file per channel, multi-GB for the busy ones: memory must not grow with the file.
    The reader runs in a child whose peak resident memory is compared before and after reading ~100 MB."""
    import json
    import os
    import subprocess
    import sys

    block_path = write_html_export(tmp_path / "block [9].html", "9", _messages() * 40)
    page = block_path.read_text()
    start, end = page.index('<div class="chatlog">') + len('<div class="chatlog">'), page.index("</div><div class=\"postamble\"")
    head, block, tail = page[:start], page[start:end], page[end:]
    big = tmp_path / "Stable Diffusion - Bots - big [9].html"
    with open(big, "w", encoding="utf-8") as out:
        out.write(head)
        written = 0
        while written < 100 << 20:
            out.write(block)
            written += len(block)
        out.write(tail)
    child = (
        "import json, resource, sys\n"
        "from promptmill.exports.discovery import discover\n"
        "from promptmill.exports.reading import read_export\n"
        "(source,) = list(discover([sys.argv[1]]))\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "header, messages = read_export(source)\n"
        "count = sum(1 for _ in messages)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(json.dumps({'count': count, 'growth_kib': after - before}))\n"
    )
    out = subprocess.run([sys.executable, "-c", child, str(big)], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ), check=True)
    result = json.loads(out.stdout)
    assert result["count"] > 50_000
    assert result["growth_kib"] < 64 << 10, f"resident memory grew {result['growth_kib'] >> 10} MiB for 100 MB"


@pytest.mark.parametrize("profile", ["quality", "parity"])
def test_html_and_json_of_a_channel_keep_the_same_prompts(tmp_path, profile):
    """The same channel exported as JSON and as HTML, ingested into two stores: the same kept prompts."""
    import subprocess
    import sys

    from tests.synth import SynthConfig, write_exports

    synth = tmp_path / "synth"
    write_exports(synth, SynthConfig(messages=400, seed=5, channels=1, era="mixed", users=12))
    json_files = sorted(synth.rglob("*.json"))
    assert json_files
    html_dir = tmp_path / "html"
    from promptmill.exports.json_reader import read_json_export
    from promptmill.exports.sources import FileLocation, Source

    for path in json_files:  # the same messages, rendered as DCE's HTML
        source = Source(display_path=str(path), format="json", size=path.stat().st_size, partition_date=None,
                        location=FileLocation(str(path)))
        header, messages = read_json_export(source)
        msgs = [Msg(m.content, m.posted_at, msg_id=m.key, attachments=m.attachments,
                    author={"id": m.author_id, "name": m.author.split("#")[0],
                            "discriminator": m.author.split("#")[1] if "#" in m.author else "0",
                            "isBot": bool(m.is_bot)}) for m in messages]
        write_html_export(html_dir / path.with_suffix(".html").name, header.channel_id, msgs,
                          channel_name=header.channel_name or "x")
    kept = {}
    for name, folder in (("json", synth), ("html", html_dir)):
        store = f"sqlite:///{tmp_path / (name + '.sqlite')}"
        for args in (["ingest", str(folder), "--profile", profile], ["export-cleaned", str(tmp_path / f"{name}.tsv")]):
            out = subprocess.run([sys.executable, "-m", "promptmill.cli", *args, "--db", store, "-q"],
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr
        kept[name] = (tmp_path / f"{name}.tsv").read_text().splitlines()
    assert len(kept["json"]) > 20 and kept["html"] == kept["json"]


def test_minified_html_and_system_notifications(tmp_path):
    """DCE minifies its HTML (WebMarkupMin: quotes may go) and gives system notifications (a pin, a join) a group
    of their own whose author has its own class: neither may stop the file or move messages to another author."""
    import re

    messages = _messages()
    path = write_html_export(tmp_path / "a [101].html", "101", messages)
    page = path.read_text()
    pin = ('<div class="chatlog__message-group"><div id="chatlog__message-container-1036972900000000000" '
           'class="chatlog__message-container chatlog__message-container--pinned" data-message-id="1036972900000000000">'
           '<div class="chatlog__message"><div class="chatlog__message-primary"><span class="chatlog__system-notification-'
           'author" title="ann#1234">ann</span> <span class="chatlog__system-notification-content">pinned a message to '
           'this channel.</span></div></div></div></div>')
    first_group_end = page.index('<div class="chatlog__message-group">', page.index('<div class="chatlog__message-group">') + 1)
    page = page[:first_group_end] + pin + page[first_group_end:]
    minified = re.sub(r'(\s[a-z-]+)="([A-Za-z0-9_\-#.:/]+)"', r"\1=\2", page)
    assert '<div class=chatlog__message-group>' in minified
    path.write_text(minified)
    _, from_html = _read(path)
    _, from_json = _read(write_json_export(tmp_path / "a [101].json", "101", messages))
    regular = [m for m in from_html if m.key != "1036972900000000000"]
    assert [_comparable(m) for m in regular] == [_comparable(m) for m in from_json]
    (notice,) = [m for m in from_html if m.key == "1036972900000000000"]
    assert notice.author_id == "name:ann#1234"


@pytest.mark.parametrize("chunk", [7, 41, 1000])
def test_start_tags_cut_by_the_read_size_are_found(tmp_path, monkeypatch, chunk):
    """The file is read in chunks; a group's start tag split between two of them must still cut the groups."""
    from promptmill.exports import html_reader

    messages = _messages()
    path = write_html_export(tmp_path / "a [101].html", "101", messages)
    _, whole = _read(path)
    monkeypatch.setattr(html_reader, "CHUNK_BYTES", chunk)
    _, chunked = _read(path)
    assert [_comparable(m) for m in chunked] == [_comparable(m) for m in whole] and len(whole) == 5
