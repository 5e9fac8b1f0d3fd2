"""tests.synth: deterministic, DCE-shaped, streaming synthetic exports."""

from __future__ import annotations

import csv
import json
import re
import tracemalloc
import zipfile
from datetime import datetime
from itertools import islice
from pathlib import Path

import promptmill
import pytest

from tests import synth
from tests.synth import SynthConfig, iter_messages, write_exports
from tests.synth.cli import main

SAMPLES = Path(promptmill.__file__).parent / "samples" / "landing"
DCE_TOP_KEYS = ["guild", "channel", "dateRange", "exportedAt", "messages", "messageCount"]
DCE_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?\+00:00$")
ISO_O_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+00:00$")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_same_config_gives_same_bytes_and_seed_changes_them(tmp_path):
    cfg = SynthConfig(messages=600, seed=7, era="mixed", formats=("json", "csv"), partition_size=250)
    write_exports(tmp_path / "a", cfg)
    write_exports(tmp_path / "b", cfg)
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first == second
    assert len(first) == 2 * 2 * 2  # 2 channels x 2 formats x 2 partitions (300 messages each)
    write_exports(tmp_path / "c", SynthConfig(messages=600, seed=8, era="mixed", formats=("json", "csv"),
                                              partition_size=250))
    other = _tree(tmp_path / "c")
    assert other.keys() == first.keys()  # names depend on the channels, not on the seed
    assert all(other[name] != first[name] for name in first)


def test_json_is_dce_shaped_and_equals_iter_messages(tmp_path):
    cfg = SynthConfig(messages=1500, seed=3, channels=1, junk_rate=0.3)
    (path,) = write_exports(tmp_path, cfg)
    raw = path.read_bytes()
    document = json.loads(raw)
    assert list(document) == DCE_TOP_KEYS
    assert document["messageCount"] == len(document["messages"]) == 1500
    assert document["messages"] == list(iter_messages(cfg))
    assert raw.startswith(b'{\n  "guild": {\n    "id": "') and raw.endswith(b'\n  ],\n  "messageCount": 1500\n}')
    assert b'\n    {\n      "id": "' in raw  # messages two levels deep, 2-space indentation
    assert DCE_TIMESTAMP.match(document["exportedAt"])
    first = document["messages"][0]
    assert list(first)[:13] == ["id", "type", "timestamp", "timestampEdited", "callEndedTimestamp", "isPinned",
                                "content", "author", "attachments", "embeds", "stickers", "reactions", "mentions"]
    assert list(first)[-1] == "inlineEmojis"
    for message in document["messages"]:
        assert DCE_TIMESTAMP.match(message["timestamp"]), message["timestamp"]
        assert not message["timestamp"].split("+")[0].endswith("0") or "." not in message["timestamp"]
        assert message["timestamp"] < document["exportedAt"]


def test_emoji_are_surrogate_escaped_and_bmp_text_is_literal(tmp_path):
    cfg = SynthConfig(messages=3000, seed=11, channels=1, junk_rate=0.5)
    (path,) = write_exports(tmp_path, cfg)
    raw = path.read_bytes()
    assert not re.search(rb"[\xf0-\xf4]", raw)  # no 4-byte UTF-8 sequence is left
    escapes = set(re.findall(rb"\\uD8[0-3][0-9A-F]\\uD[C-F][0-9A-F]{2}", raw))
    assert escapes
    decoded = {json.loads(b'"' + escape + b'"') for escape in escapes}
    assert all(len(char) == 1 and ord(char) > 0xFFFF for char in decoded)
    contents = [m["content"] for m in json.loads(raw)["messages"]]
    assert any(char in content for content in contents for char in decoded)
    assert "✨".encode() in raw or "❤".encode() in raw  # BMP emoji stay literal, like DCE's relaxed escaping
    assert re.search("[éöåłńü]".encode(), raw) or re.search("[а-я]".encode(), raw)  # non-ASCII written literally


def test_csv_parses_and_matches_json_messages(tmp_path):
    cfg = SynthConfig(messages=800, seed=5, channels=1, formats=("json", "csv"), era="text")
    json_path, csv_path = write_exports(tmp_path, cfg)
    messages = json.loads(json_path.read_bytes())["messages"]
    text = csv_path.read_text(encoding="utf-8")
    assert text.startswith("AuthorID,Author,Date,Content,Attachments,Reactions\n\"")
    rows = _csv_rows(csv_path)
    assert rows[0] == ["AuthorID", "Author", "Date", "Content", "Attachments", "Reactions"]
    assert len(rows) - 1 == len(messages)
    assert any("\n" in row[3] for row in rows[1:])  # multi-line quoted records
    for row, message in zip(rows[1:], messages, strict=True):
        author = message["author"]
        expected_author = author["name"] if author["discriminator"] == "0000" else (
            f"{author['name']}#{author['discriminator']}")
        assert row[0] == author["id"] and row[1] == expected_author
        assert ISO_O_DATE.match(row[2])
        assert datetime.fromisoformat(row[2]) == datetime.fromisoformat(message["timestamp"])
        assert row[3] == message["content"]
        assert row[4] == ",".join(a["url"] for a in message["attachments"])
        assert row[5] == ",".join(f"{r['emoji']['name']} ({r['count']})" for r in message["reactions"])
    every_field_quoted = text.splitlines()[1]
    assert every_field_quoted.startswith('"') and every_field_quoted.endswith('"')


@pytest.mark.parametrize(("style", "pattern"), [
    ("legacy", r"^\d\d-[A-Z][a-z]{2}-\d\d \d\d:\d\d [AP]M$"),
    ("us", r"^\d\d/\d\d/\d{4} \d{1,2}:\d\d [AP]M$"),
])
def test_csv_legacy_date_formats_and_crlf(tmp_path, style, pattern):
    cfg = SynthConfig(messages=50, channels=1, formats=("csv",), csv_date_format=style, csv_line_terminator="\r\n")
    (path,) = write_exports(tmp_path, cfg)
    assert path.read_bytes().startswith(b"AuthorID,Author,Date,Content,Attachments,Reactions\r\n")
    rows = _csv_rows(path)[1:]
    assert len(rows) == 50 and all(re.match(pattern, row[2]) for row in rows)


def test_format_csv_date_values():
    ms = int(datetime.fromisoformat("2022-11-01T13:05:09.120+00:00").timestamp() * 1000)
    assert synth.format_json_timestamp(ms) == "2022-11-01T13:05:09.12+00:00"
    assert synth.format_json_timestamp(ms - 120) == "2022-11-01T13:05:09+00:00"
    assert synth.format_csv_date(ms) == "2022-11-01T13:05:09.1200000+00:00"
    assert synth.format_csv_date(ms, "legacy") == "01-Nov-22 01:05 PM"
    assert synth.format_csv_date(ms, "us") == "11/01/2022 1:05 PM"


def test_snowflakes_follow_timestamps_and_increase_per_channel():
    cfg = SynthConfig(messages=4000, seed=2, channels=2, era="mixed", mean_gap_s=0.05)
    channels = synth.plan_channels(cfg)
    users = synth.make_users(cfg.seed, cfg.users)
    for channel in channels:
        previous = 0
        for message in synth.iter_channel_messages(cfg, channel, users):
            message_id = int(message["id"])
            assert message_id > previous
            previous = message_id
            posted = datetime.fromisoformat(message["timestamp"])
            assert synth.snowflake_ms(message_id) == round(posted.timestamp() * 1000)
            for attachment in message["attachments"]:
                assert synth.snowflake_ms(attachment["id"]) == synth.snowflake_ms(message_id)
                assert attachment["url"].startswith(
                    f"https://cdn.discordapp.com/attachments/{channel.id}/{attachment['id']}/{attachment['fileName']}")


def test_templates_and_junk_of_both_eras():
    slash = [m["content"] for m in iter_messages(SynthConfig(messages=3000, seed=1, channels=1))]
    text = [m["content"] for m in iter_messages(SynthConfig(messages=3000, seed=1, channels=1, era="text"))]
    slash_template = re.compile(r"^Dreamt in `\d+\.\d\ds` for @.+?\.\.\. `/dream prompt:.* seed:\d+ cfg_scale:\d")
    assert sum(bool(slash_template.match(c)) for c in slash) > 2500
    assert any(c.startswith("Dreaming for @") for c in slash)
    assert any("```ERROR:" in c for c in slash)
    assert any(synth.NAUGHTY in c for c in slash)
    assert any(c.count("/dream prompt:") == 2 for c in slash)
    assert any("--ar " in c for c in slash) and any("cfg _ scale" in c for c in slash)
    assert any("negative_prompt:" in c for c in slash) and any("http" in c.split("`")[3] for c in slash
                                                                if c.startswith("Dreamt") and c.count("`") >= 4)
    text_template = re.compile(r'^Dreamt in `\d+\.\d\ds` for (@.+?\'s )?`!dream ".*" (.* )?-S \d+`', re.S)
    assert sum(bool(text_template.match(c)) for c in text) > 2500
    assert text[0].startswith("Dreamt in `") and " for `!dream " in text[0]  # the first ones name no user
    assert any("The seeds for each individual image are: [" in c for c in text)
    assert any(" \nThe commands for each individual image are: \n`!dream" in c for c in text)
    assert any(synth.MITIGATION in c for c in text)


def _share_of_retries(cfg: SynthConfig) -> float:
    """Share of generations whose prompt shares at least half its comma segments with one of the same user's
    attempts of the last 10 minutes."""
    history: dict[str, list[tuple[datetime, set[str]]]] = {}
    retries = total = 0
    for message in iter_messages(cfg):
        user = message["mentions"][0]["id"]
        prompt = message["content"].split("/dream prompt:", 1)[1].split(" seed:")[0].split(" negative_prompt:")[0]
        segments = set(prompt.split(", "))
        posted = datetime.fromisoformat(message["timestamp"])
        recent = [s for t, s in history.get(user, [])[-8:] if (posted - t).total_seconds() < 600]
        retries += any(len(segments & earlier) * 2 >= max(len(segments), len(earlier)) for earlier in recent)
        total += 1
        history.setdefault(user, []).append((posted, segments))
    return retries / total


def test_retry_bursts_repeat_a_users_prompt_within_minutes():
    with_bursts = _share_of_retries(SynthConfig(messages=2000, seed=4, channels=1, junk_rate=0.0,
                                                near_dup_rate=0.3))
    without = _share_of_retries(SynthConfig(messages=2000, seed=4, channels=1, junk_rate=0.0, near_dup_rate=0.0))
    assert 0.2 < with_bursts < 0.45
    assert without < 0.06


def test_partitions_and_date_folders_follow_dce_naming(tmp_path):
    cfg = SynthConfig(messages=230, channels=1, partition_size=100, formats=("json", "csv"))
    names = [p.name for p in write_exports(tmp_path / "parts", cfg)]
    channel = synth.plan_channels(cfg)[0]
    base = f"Stable Diffusion - Bots - dreambot-1 [{channel.id}]"
    assert names == [f"{base}.json", f"{base}.csv", f"{base} [part 2].json", f"{base} [part 2].csv",
                     f"{base} [part 3].json", f"{base} [part 3].csv"]
    counts = [json.loads((tmp_path / "parts" / n).read_bytes())["messageCount"] for n in names if n.endswith("json")]
    assert counts == [100, 100, 30]

    daily = SynthConfig(messages=200, channels=1, mean_gap_s=3000, date_partitioned=True)
    paths = write_exports(tmp_path / "daily", daily)
    assert len(paths) >= 3
    for path in paths:
        day = path.parent.name
        document = json.loads(path.read_bytes())
        assert path.name.startswith(base + f" ({day} to ")
        assert all(m["timestamp"].startswith(day) for m in document["messages"])
        assert document["dateRange"]["after"] == f"{day}T00:00:00+00:00"
        assert document["exportedAt"] > document["dateRange"]["before"]
    assert sum(json.loads(p.read_bytes())["messageCount"] for p in paths) == 200


def test_empty_channel_still_gets_a_file(tmp_path):
    paths = write_exports(tmp_path, SynthConfig(messages=1, channels=2, formats=("json", "csv")))
    assert len(paths) == 4
    empty = json.loads(paths[2].read_bytes())
    assert empty["messages"] == [] and empty["messageCount"] == 0
    assert paths[2].read_bytes().endswith(b'"messages": [],\n  "messageCount": 0\n}')
    assert paths[3].read_text(encoding="utf-8") == "AuthorID,Author,Date,Content,Attachments,Reactions\n"


def test_invalid_config_names_the_problem():
    with pytest.raises(ValueError, match="era"):
        SynthConfig(era="modern")
    with pytest.raises(ValueError, match="formats"):
        SynthConfig(formats=("json", "txt"))
    with pytest.raises(ValueError, match="near_dup_rate"):
        SynthConfig(near_dup_rate=1.5)


def test_iter_messages_is_lazy():
    """200k messages stream through with flat memory. tracemalloc slows every allocation ~20x, so it watches the
    stream's creation and first 20k messages only: a generator that built a list first would be caught there."""
    tracemalloc.start()
    try:
        stream = iter_messages(SynthConfig(messages=200_000, seed=9, channels=1))
        count = sum(1 for _ in islice(stream, 20_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    count += sum(1 for _ in stream)
    assert count == 200_000
    # 20k retained message dicts alone would take ~60 MB; the generator keeps a few bounded buffers and caches.
    assert peak < 5_000_000, peak


def test_bundled_samples_are_up_to_date(tmp_path):
    synth.build_samples(tmp_path)
    committed = _tree(SAMPLES)
    regenerated = _tree(tmp_path)
    assert committed.keys() == regenerated.keys()
    stale = [name for name in committed if committed[name] != regenerated[name]]
    assert not stale, f"stale samples, run `python -m tests.synth --samples {SAMPLES}`: {stale}"
    assert sum(len(data) for data in committed.values()) < 2_000_000


def test_bundled_samples_cover_the_promised_layouts():
    names = sorted(_tree(SAMPLES))
    assert sum(name.startswith("csv/") and name.endswith(".csv") for name in names) == 2
    assert any("[part 3].json" in name for name in names)
    assert len({name.split("/")[0] for name in names if re.match(r"2022-11-0\d/", name)}) >= 2
    with zipfile.ZipFile(SAMPLES / "archives" / "dreambot-4-export.zip") as archive:
        members = archive.namelist()
        assert {Path(m).suffix for m in members} == {".json", ".csv"}
        assert all(m.count("/") >= 3 for m in members)
        assert all(info.date_time == (2023, 1, 15, 9, 30, 0) for info in archive.infolist())
    text_era = json.loads(next(SAMPLES.glob("json/*dream-7*.json")).read_bytes())
    assert text_era["messages"][0]["content"].startswith("Dreamt in `")


def test_cli_writes_files(tmp_path, capsys):
    assert main([str(tmp_path), "--messages", "40", "--seed", "3", "--era", "mixed",
                 "--formats", "json,csv"]) == 0
    assert len(list(tmp_path.iterdir())) == 4
    assert "messages/s" in capsys.readouterr().err
    assert main([str(tmp_path), "--messages", "40", "--era", "nope"][:3] + ["--junk-rate", "2"]) == 2
