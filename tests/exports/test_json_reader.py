from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from promptmill.exports import ExportError, Source, discover, read_export
from promptmill.exports.json_reader import message_of_doc, messages_of_batch

from tests.synth import SynthConfig, write_exports

from .dce import BOT, CHANNEL_ID, GUILD_ID, USER, dumps_dce, export_doc, message_218, message_247, write_json

LAYOUTS = ["dce", "compact"]  # DCE's own layout (fast path) and any other writer's (ijson path)


def only_source(path) -> Source:
    items = list(discover([path]))
    assert len(items) == 1 and isinstance(items[0], Source), items
    return items[0]


def read_all(path):
    header, messages = read_export(only_source(path))
    return header, list(messages)


def read_error(path) -> ExportError:
    with pytest.raises(ExportError) as caught:
        header, messages = read_export(only_source(path))
        list(messages)
    assert caught.value.source == str(path)
    assert str(caught.value) == f"{path}: {caught.value.reason}"
    return caught.value


@pytest.mark.parametrize("layout", LAYOUTS)
def test_218_minimal_keys(tmp_path, layout):
    path = write_json(tmp_path / "export.json", [message_218(i) for i in range(3)], full_header=False,
                      compact=layout == "compact")
    header, messages = read_all(path)
    assert (header.format, header.channel_id, header.channel_name) == ("json", CHANNEL_ID, "dreambot-1")
    assert (header.guild_id, header.guild_name, header.exported_at) == (GUILD_ID, "Stable Diffusion", None)
    assert header.declared_count == 3
    assert [m.content for m in messages] == ["prompt number 0", "prompt number 1", "prompt number 2"]
    first = messages[0]
    expected = message_218(0)
    assert first.key == expected["id"] and first.channel_id == CHANNEL_ID
    assert (first.author_id, first.author, first.is_bot) == (BOT["id"], "DreamBot#0357", True)
    assert first.posted_at == datetime.fromisoformat(expected["timestamp"]) and first.posted_at.tzinfo == UTC
    assert first.attachments == (expected["attachments"][0]["url"],)
    assert (first.edited_at, first.message_type) == (None, "Default")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_247_every_optional_key(tmp_path, layout):
    source = [message_247(i) for i in range(4)]
    path = write_json(tmp_path / "export.json", source, compact=layout == "compact")
    header, messages = read_all(path)
    assert header.exported_at == datetime(2023, 1, 1, 0, 7, 0, 123456, tzinfo=UTC)
    assert [m.key for m in messages] == [m["id"] for m in source]
    third = messages[2]
    assert third.message_type == "20" and third.author == "DreamBot#0357"
    assert third.edited_at == datetime.fromisoformat(source[2]["timestampEdited"])
    assert third.attachments == (source[2]["attachments"][0]["url"],)


def test_new_username_system_has_no_discriminator(tmp_path):
    legacy = dict(USER, discriminator="0")  # Discord's own "0", as some tools write it
    path = write_json(tmp_path / "e.json", [message_218(0, author=USER), message_218(1, author=legacy)])
    _, messages = read_all(path)
    assert [m.author for m in messages] == ["mirapixel", "mirapixel"]
    assert messages[0].is_bot is False


@pytest.mark.parametrize("layout", LAYOUTS)
def test_surrogate_escaped_emoji_decode(tmp_path, layout):
    path = write_json(tmp_path / "e.json", [message_218(0, content="a fox \U0001F98A and \U0001F642, ツ")],
                      compact=layout == "compact")
    assert b"\\uD83E\\uDD8A" in path.read_bytes()  # written as DCE does
    _, messages = read_all(path)
    assert messages[0].content == "a fox \U0001F98A and \U0001F642, ツ"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("text", "expected"), [
    ("2021-07-19T12:00:00+02:00", datetime(2021, 7, 19, 10, 0, tzinfo=UTC)),
    ("2025-12-28T22:52:42.175+00:00", datetime(2025, 12, 28, 22, 52, 42, 175000, tzinfo=UTC)),
    ("2025-12-28T22:52:42.1+00:00", datetime(2025, 12, 28, 22, 52, 42, 100000, tzinfo=UTC)),
    ("2023-09-23T13:15:48.3790000+03:00", datetime(2023, 9, 23, 10, 15, 48, 379000, tzinfo=UTC)),
    ("2023-03-26T01:30:00.1234567-05:30", datetime(2023, 3, 26, 7, 0, 0, 123456, tzinfo=UTC)),
    ("2023-03-26T01:30:00.123456Z", datetime(2023, 3, 26, 1, 30, 0, 123456, tzinfo=UTC)),
])
def test_timestamp_variants_normalise_to_utc(tmp_path, layout, text, expected):
    message = message_218(0)
    message["timestamp"] = text
    path = write_json(tmp_path / "e.json", [message], compact=layout == "compact")
    _, messages = read_all(path)
    assert messages[0].posted_at == expected
    assert messages[0].posted_at.utcoffset() == timedelta(0)


def test_mixed_offsets_across_dst_in_one_file(tmp_path):
    summer, winter = timezone(timedelta(hours=2)), timezone(timedelta(hours=1))
    first, second = message_218(0), message_218(1)
    first["timestamp"] = datetime(2023, 10, 29, 2, 59, tzinfo=summer).isoformat()
    second["timestamp"] = datetime(2023, 10, 29, 2, 1, tzinfo=winter).isoformat()  # later, despite the clock
    _, messages = read_all(write_json(tmp_path / "e.json", [first, second]))
    assert messages[0].posted_at < messages[1].posted_at


@pytest.mark.parametrize("layout", LAYOUTS)
def test_empty_messages_array_is_a_valid_export(tmp_path, layout):
    header, messages = read_all(write_json(tmp_path / "e.json", [], compact=layout == "compact"))
    assert messages == [] and header.declared_count == 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_many_messages_across_read_chunks(tmp_path, layout):
    source = [message_247(i) if i % 3 else message_218(i, attachments=i % 4) for i in range(2500)]  # ~5 MB
    path = write_json(tmp_path / "big.json", source, compact=layout == "compact")
    header, messages = read_all(path)
    assert [m.key for m in messages] == [m["id"] for m in source]
    assert [len(m.attachments) for m in messages] == [len(m["attachments"]) for m in source]
    assert header.declared_count == 2500


def test_json_metadata_comes_from_the_header_not_the_file_name(tmp_path):
    path = write_json(tmp_path / "Other guild - other [42] [part 3].json", [message_218(0)])
    header, messages = read_all(path)
    assert header.channel_id == CHANNEL_ID and messages[0].channel_id == CHANNEL_ID


def test_bom_is_tolerated(tmp_path):
    path = tmp_path / "e.json"
    path.write_bytes(b"\xef\xbb\xbf" + dumps_dce(export_doc([message_218(0)])))
    assert [m.content for m in read_all(path)[1]] == ["prompt number 0"]


def test_fast_path_anomaly_falls_back_without_duplicates(tmp_path, caplog):
    # orjson rejects a lone surrogate, yajl reads it as "?": the reader switches paths mid-file.
    source = [message_218(i) for i in range(3000)]
    path = write_json(tmp_path / "e.json", source)
    data = path.read_bytes().replace(b'"prompt number 2500"', b'"prompt number \\ud800"')
    path.write_bytes(data)
    with caplog.at_level(logging.DEBUG, logger="promptmill.exports.json_reader"):
        _, messages = read_all(path)
    assert "leaving the fast path" in caplog.text
    assert [m.key for m in messages] == [m["id"] for m in source]
    assert messages[2500].content == "prompt number ?"


def test_declared_count_mismatch_is_an_error(tmp_path):
    doc = export_doc([message_218(0), message_218(1)])
    doc["messageCount"] = 5
    (tmp_path / "e.json").write_bytes(dumps_dce(doc))
    error = read_error(tmp_path / "e.json")
    assert "'messageCount' says 5 but the file holds 2 messages" in error.reason


# --- bad input ------------------------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path):
    (tmp_path / "e.json").write_bytes(b"")
    assert read_error(tmp_path / "e.json").reason == "empty file"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("cut", [0.1, 0.5, 0.999])
def test_truncated_json_names_the_end_offset(tmp_path, layout, cut):
    data = dumps_dce(export_doc([message_247(i) for i in range(300)]), compact=layout == "compact")
    data = data[: int(len(data) * cut)].rstrip()
    (tmp_path / "e.json").write_bytes(data)
    error = read_error(tmp_path / "e.json")
    assert error.reason.startswith(f"truncated JSON: the document ends unexpectedly at byte {len(data)}")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_invalid_json_names_the_byte(tmp_path, layout):
    data = dumps_dce(export_doc([message_218(i) for i in range(2000)]), compact=layout == "compact")
    target = data.index(b'"prompt number 1500"') - 2  # a structural byte before the value
    while data[target:target + 1] not in (b":",):
        target -= 1
    broken = data[:target] + b";" + data[target + 1:]
    (tmp_path / "e.json").write_bytes(broken)
    error = read_error(tmp_path / "e.json")
    assert error.reason.startswith(f"invalid JSON at byte {target} ("), error.reason


def test_trailing_garbage(tmp_path):
    data = dumps_dce(export_doc([message_218(0)]))
    (tmp_path / "e.json").write_bytes(data + b"\n{}")
    error = read_error(tmp_path / "e.json")
    assert f"invalid JSON at byte {len(data) + 1}" in error.reason and "trailing garbage" in error.reason


def test_invalid_utf8_inside_a_string(tmp_path):
    data = dumps_dce(export_doc([message_218(0, content="caf\u00e9")]))
    offset = data.index("é".encode())
    (tmp_path / "e.json").write_bytes(data[:offset] + b"\xff" + data[offset + 2:])
    error = read_error(tmp_path / "e.json")
    assert error.reason.startswith("invalid JSON at byte ") and "UTF8" in error.reason


@pytest.mark.parametrize(("document", "reason"), [
    ({"foo": 1}, "not a DCE export: no top-level 'messages' array"),
    ([1, 2], "not a DCE export: the top-level JSON value is an array, not an object"),
    ("text", "not a DCE export: the top-level JSON value is a scalar, not an object"),
    ({"guild": {"id": "1"}, "messages": []}, "not a DCE export: no 'channel' object with an 'id' string before 'messages'"),
    ({"channel": {"id": "1"}, "messages": []}, "not a DCE export: no 'guild' object before 'messages'"),
    ({"guild": {"id": "1"}, "channel": {"id": "2"}, "messages": {}}, "not a DCE export: 'messages' is not an array"),
])
@pytest.mark.parametrize("compact", [False, True])
def test_non_dce_json(tmp_path, document, reason, compact):
    text = json.dumps(document, separators=(",", ":")) if compact else json.dumps(document, indent=2)
    (tmp_path / "e.json").write_text(text)
    assert read_error(tmp_path / "e.json").reason == reason


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("damage", "reason"), [
    (lambda m: m.pop("id"), "missing 'id'"),
    (lambda m: m.pop("timestamp"), "missing 'timestamp'"),
    (lambda m: m.pop("content"), "missing 'content'"),
    (lambda m: m.update(content=None), "'content' is not a string"),
    (lambda m: m.update(timestamp="yesterday"), "invalid 'timestamp' 'yesterday'"),
    (lambda m: m["author"].pop("id"), "'author' lacks an 'id' or 'name' string"),
])
def test_message_missing_required_keys(tmp_path, layout, damage, reason):
    messages = [message_218(i) for i in range(3)]
    damage(messages[1])
    path = write_json(tmp_path / "e.json", messages, compact=layout == "compact")
    error = read_error(path)
    assert error.reason.startswith("message #1") and reason in error.reason, error.reason


# --- the two conversions of the fast path: msgspec (fields read only) and orjson + message_of_doc (anything JSON allows)

def _general_conversion(batch_json: bytes) -> list:
    return [message_of_doc(doc, CHANNEL_ID) for doc in orjson.loads(batch_json)]


def test_msgspec_conversion_equals_the_general_one_on_generated_exports(tmp_path):
    paths = write_exports(tmp_path, SynthConfig(messages=3000, seed=11, channels=2, era="mixed"))
    checked = 0
    for path in paths:
        batch_json = orjson.dumps(orjson.loads(path.read_bytes())["messages"])
        assert messages_of_batch(batch_json, CHANNEL_ID) == _general_conversion(batch_json)
        checked += 1
    assert checked == len(paths) >= 2


@pytest.mark.parametrize("oddity", [
    lambda m: m["author"].update(isBot="yes"),          # not a boolean
    lambda m: m["author"].update(discriminator=357),    # a number
    lambda m: m.update(type=19),                        # a number
    lambda m: m.update(attachments=[{"url": 5}]),       # not a string
    lambda m: m["author"].update(name=42),              # a number
])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_values_msgspec_refuses_are_read_as_before(tmp_path, layout, oddity):
    messages = [message_247(i) for i in range(3)]
    oddity(messages[1])
    batch_json = orjson.dumps(messages)
    with pytest.raises((ValueError, TypeError)):  # msgspec.ValidationError is a ValueError
        messages_of_batch(batch_json, CHANNEL_ID)
    path = write_json(tmp_path / "e.json", messages, compact=layout == "compact")
    _, read = read_all(path)
    assert read == _general_conversion(batch_json)


# --- Hostile documents (issue #15): bounded depth and bounded memory per message, on both paths -----------------

_BOUNDED_READ = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from promptmill.exports import ExportError, discover, read_export
[source] = discover([sys.argv[1]])
try:
    header, messages = read_export(source)
    print("messages", sum(1 for _ in messages))
except ExportError as exc:
    print("error", exc.reason)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking parent (here the whole test run)
peak_kb = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("rss_mb", peak_kb >> 10)
"""


def read_bounded(path, limit_bytes: int = 1536 << 20) -> tuple[str, int]:
    """Read an export in a child process whose address space is capped (a blow-up fails there, not the machine);
    returns (what it printed: "messages N" or "error <reason>", peak RSS in MB)."""
    out = subprocess.run([sys.executable, "-c", _BOUNDED_READ.format(limit=limit_bytes), str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result, rss = out.stdout.strip().splitlines()
    return result, int(rss.split()[1])


def hostile_export(path, layout: str, middle_message: dict, replace: dict[bytes, bytes] | None = None):
    """A three-message export whose middle message is ``middle_message``; ``replace`` patches the bytes."""
    data = dumps_dce(export_doc([message_247(0), middle_message, message_247(2)]), compact=layout == "compact")
    for old, new in (replace or {}).items():
        assert old in data
        data = data.replace(old, new)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("layout", LAYOUTS)
def test_deep_nesting_is_refused_at_its_byte_with_bounded_memory(tmp_path, layout):
    depth = 100_000  # 205 KB of brackets drove the ijson path to 21.9 GB
    path = hostile_export(tmp_path / "deep [1].json", layout, {**message_247(1), "embeds": "NEST"},
                          {b'"NEST"': b"[" * depth + b"]" * depth})
    result, rss_mb = read_bounded(path)
    first_bracket = path.read_bytes().index(b"[" * 100)
    # the document, messages and the message are levels 1-3, so the first bracket is level 4 and the 1,025th
    # level, the first one too deep, is 1,021 brackets further
    assert result == f"error JSON nested deeper than 1024 levels at byte {first_bracket + 1025 - 4}"
    assert rss_mb < 300


@pytest.mark.parametrize("layout", LAYOUTS)
def test_nesting_a_dce_message_could_have_is_read(tmp_path, layout):
    path = hostile_export(tmp_path / "nested [1].json", layout, {**message_247(1), "embeds": "NEST"},
                          {b'"NEST"': b"[" * 200 + b"]" * 200})
    assert read_bounded(path)[0] == "messages 3"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("where", ["content", "embeds"])
def test_a_message_over_the_size_cap_is_refused_with_its_offset(tmp_path, layout, where):
    huge = "x" * (9 << 20) if where == "content" else [{"title": "y" * 1000}] * 9000
    middle = {**message_247(1), where: huge}
    path = hostile_export(tmp_path / "huge [1].json", layout, middle)
    result, rss_mb = read_bounded(path)
    start = path.read_bytes().index(b'"id": "' + middle["id"].encode() if layout == "dce" else
                                    b'"id":"' + middle["id"].encode())
    match = re.fullmatch(r"error message #1 starting near byte (\d+) is larger than 8 MiB \(no DCE message is\)",
                         result)
    assert match, result
    assert abs(int(match[1]) - start) < 1 << 20  # within one read of the message's first byte
    assert rss_mb < 300


def test_a_huge_value_before_the_messages_is_refused(tmp_path):
    path = hostile_export(tmp_path / "head [1].json", "compact", message_247(1),
                          {b'"dateRange":': b'"junk":"' + b"z" * (9 << 20) + b'","dateRange":'})
    result, rss_mb = read_bounded(path)
    assert re.fullmatch(r"error a value starting near byte \d+ is larger than 8 MiB \(no DCE message is\)", result)
    assert rss_mb < 300
