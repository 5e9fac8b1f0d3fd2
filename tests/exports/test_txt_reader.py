"""DiscordChatExporter's plain-text exports (issue #21): the messages of the CSV export of the channel, as far as
plain text allows (no ids: keys derived as for CSV; minute precision)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from promptmill.exports.discovery import discover
from promptmill.exports.errors import ExportError
from promptmill.exports.reading import read_export
from promptmill.exports.txt_reader import parse_txt_date

from tests.helpers import (
    EPOCH,
    TXT_DATE_FORMATS,
    Msg,
    slash,
    text_content,
    write_csv_export,
    write_txt_export,
)

USER = {"id": "555000000000000001", "name": "ann", "discriminator": "1234", "isBot": False}


def _messages():
    return [
        slash("ann", "a red fox in the snow, 8 k", 0, seq=1),
        slash("bob", "a castle on a hill", 0, seq=2),  # the same minute: file order kept
        Msg(text_content("cid", "a lighthouse at dusk"), EPOCH + timedelta(minutes=2), seq=3),
        Msg("first line\n\nthird line, after a blank one", EPOCH + timedelta(minutes=3), seq=4, author=dict(USER),
            attachments=()),
        slash("dee", "an owl", 4, seq=5),
    ]


def _read(path):
    (source,) = [s for s in discover([path]) if not isinstance(s, ExportError)]
    header, messages = read_export(source)
    return header, list(messages)


@pytest.mark.parametrize("culture", ["dce-default", "en-US", "de-DE", "en-GB"])
def test_plain_text_gives_the_csv_exports_messages(tmp_path, culture):
    messages = _messages()
    _, from_csv = _read(write_csv_export(tmp_path / "Stable Diffusion - Bots - dreambot-1 [101].csv", messages))
    header, from_txt = _read(write_txt_export(tmp_path / "Stable Diffusion - Bots - dreambot-1 [101].txt", messages,
                                              culture=culture))
    minute = [m.posted_at.replace(second=0, microsecond=0) for m in from_csv]
    assert [(m.posted_at, m.author, m.content, m.seq) for m in from_txt] == [
        (t, m.author, m.content, s) for m, t, s in zip(from_csv, minute, [0, 1, 0, 0, 0], strict=True)]
    assert [len(m.attachments) for m in from_txt] == [1, 1, 1, 0, 1]
    assert (header.channel_id, header.channel_name, header.guild_name) == ("101", "dreambot-1", "Stable Diffusion")
    assert len({m.key for m in from_txt}) == 5
    # the same file read again gives the same keys (stable across overlapping exports)
    assert [m.key for m in _read(tmp_path / "Stable Diffusion - Bots - dreambot-1 [101].txt")[1]] == [
        m.key for m in from_txt]


@pytest.mark.parametrize(("text", "expected"), [
    ("01-Nov-22 12:05 PM", datetime(2022, 11, 1, 12, 5, tzinfo=UTC)),
    ("11/1/2022 1:05 AM", datetime(2022, 11, 1, 1, 5, tzinfo=UTC)),
    ("01.11.2022 13:05", datetime(2022, 11, 1, 13, 5, tzinfo=UTC)),
    ("01/11/2022 13:05", datetime(2022, 11, 1, 13, 5, tzinfo=UTC)),
    ("2022-11-01T13:05:07.0000000+00:00", datetime(2022, 11, 1, 13, 5, 7, tzinfo=UTC)),
    ("yesterday", None),
])
def test_dates_of_several_cultures(text, expected):
    assert parse_txt_date(text) == expected


def test_a_text_file_that_is_not_an_export_is_refused_with_the_reason(tmp_path):
    notes = tmp_path / "README.txt"
    notes.write_text("my notes\n")
    (source,) = list(discover([notes]))
    with pytest.raises(ExportError, match="not a DiscordChatExporter plain-text export"):
        read_export(source)


def test_an_unreadable_line_is_quarantined_with_its_line_number(tmp_path):
    path = write_txt_export(tmp_path / "x [1].txt", _messages()[:1])
    text = path.read_text().replace("[01-Nov-22", "{garbled}\n\n[01-Nov-22", 1)
    path.write_text(text)
    _, messages = read_export(next(iter(discover([path]))))
    with pytest.raises(ExportError, match=r"line 6: expected a message header"):
        list(messages)


@pytest.mark.parametrize("profile", ["quality", "parity"])
def test_plain_text_and_csv_of_a_channel_keep_the_same_prompts(tmp_path, profile):
    """The same channel as CSV and as plain text (minute precision both), into two stores: the same kept prompts."""
    import subprocess
    import sys

    from promptmill.exports.json_reader import read_json_export
    from promptmill.exports.sources import FileLocation, Source

    from tests.synth import SynthConfig, write_exports

    synth = tmp_path / "synth"
    write_exports(synth, SynthConfig(messages=400, seed=7, channels=1, era="mixed", users=12))
    for folder in ("csv", "txt"):
        (tmp_path / folder).mkdir()
    for path in sorted(synth.rglob("*.json")):
        source = Source(display_path=str(path), format="json", size=path.stat().st_size, partition_date=None,
                        location=FileLocation(str(path)))
        header, messages = read_json_export(source)
        msgs = [Msg(m.content, m.posted_at.replace(second=0, microsecond=0), msg_id=m.key, attachments=m.attachments,
                    author={"id": m.author_id, "name": m.author.split("#")[0],
                            "discriminator": m.author.split("#")[1] if "#" in m.author else "0000"})
                for m in messages]
        name = path.with_suffix("").name
        write_csv_export(tmp_path / "csv" / f"{name}.csv", msgs, date_format=TXT_DATE_FORMATS["dce-default"])
        write_txt_export(tmp_path / "txt" / f"{name}.txt", msgs, channel_name=header.channel_name or "x")
    kept = {}
    for name in ("csv", "txt"):
        store = f"sqlite:///{tmp_path / (name + '.sqlite')}"
        for args in (["ingest", str(tmp_path / name), "--profile", profile],
                     ["export-cleaned", str(tmp_path / f"{name}.tsv")]):
            out = subprocess.run([sys.executable, "-m", "promptmill.cli", *args, "--db", store, "-q"],
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr
        kept[name] = [line.split("\t")[1] for line in (tmp_path / f"{name}.tsv").read_text().splitlines()]
    assert len(kept["csv"]) > 20 and kept["txt"] == kept["csv"]


def test_a_message_line_that_looks_like_the_rule_is_content(tmp_path):
    """Review finding: a content line of 62 '=' was taken for the postamble, and every later message dropped."""
    rule = "=" * 62
    messages = [Msg(f"a table:\n{rule}\nrow one", EPOCH, seq=1), Msg("the next message", EPOCH + timedelta(minutes=1),
                                                                  seq=2)]
    _, read = _read(write_txt_export(tmp_path / "x [1].txt", messages, reactions=False))
    assert [m.content for m in read] == [f"a table:\n{rule}\nrow one", "the next message"]
