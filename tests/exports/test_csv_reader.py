from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from promptmill.exports import ExportError, Source, discover, read_export
from promptmill.exports.csv_reader import parse_csv_date, split_attachments

from .dce import BOT, USER, csv_bytes, iso_o

NAME = "Stable Diffusion - Bots - dreambot-1 [1032443284947075073].csv"
T0 = datetime(2023, 9, 23, 10, 15, 48, 379000, tzinfo=UTC)
URL1 = "https://cdn.discordapp.com/attachments/1/2/a.png?ex=65&is=66&hm=ab&"
URL2 = "https://cdn.discordapp.com/attachments/1/3/b,c.png"


def row(i: int, content: str | None = None, when: datetime | None = None, attachments: str = "", author=BOT):
    when = when or T0 + timedelta(seconds=7 * i)
    full_name = author["name"] + ("" if author["discriminator"] == "0000" else "#" + author["discriminator"])
    return (author["id"], full_name, iso_o(when), f"prompt {i}" if content is None else content, attachments,
            "👍 (3),lemon_blush (1)")


def write(path, rows, newline="\n"):
    path.write_bytes(csv_bytes(rows, newline))
    return path


def source_of(path) -> Source:
    items = list(discover([path]))
    assert len(items) == 1 and isinstance(items[0], Source), items
    return items[0]


def read_all(path):
    header, messages = read_export(source_of(path))
    return header, list(messages)


def read_error(path) -> ExportError:
    with pytest.raises(ExportError) as caught:
        _, messages = read_export(source_of(path))
        list(messages)
    assert caught.value.source == str(path) and str(caught.value).startswith(f"{path}: ")
    return caught.value


def test_header_fields_and_messages(tmp_path):
    path = write(tmp_path / NAME, [
        row(0, attachments=f"{URL1},{URL2}"),
        row(1, content='multi\nline "quoted", with commas\n\nand blank lines', author=USER),
        row(2, content=""),
    ])
    header, messages = read_all(path)
    assert (header.format, header.channel_id, header.channel_name, header.guild_name) == (
        "csv", "1032443284947075073", "dreambot-1", "Stable Diffusion")
    assert header.declared_count is None and header.guild_id is None
    first, second, third = messages
    assert (first.author_id, first.author, first.posted_at, first.channel_id) == (
        BOT["id"], "DreamBot#0357", T0, "1032443284947075073")
    assert first.attachments == (URL1, URL2)
    assert second.content == 'multi\nline "quoted", with commas\n\nand blank lines' and second.author == "mirapixel"
    assert second.attachments == () and third.content == ""
    assert all(m.key.startswith("csv:") for m in messages) and len({m.key for m in messages}) == 3
    assert (first.edited_at, first.is_bot, first.message_type) == (None, None, None)


def test_crlf_and_lf_files_read_the_same(tmp_path):
    rows = [row(0, content="line one\nline two"), row(1)]
    (tmp_path / "lf").mkdir()
    (tmp_path / "crlf").mkdir()
    _, lf = read_all(write(tmp_path / "lf" / NAME, rows, "\n"))
    _, crlf = read_all(write(tmp_path / "crlf" / NAME, rows, "\r\n"))
    assert b"\r\n" in (tmp_path / "crlf" / NAME).read_bytes()
    assert lf == crlf and lf[0].content == "line one\nline two"


def test_header_is_case_insensitive_and_bom_tolerated(tmp_path):
    data = csv_bytes([row(0)]).replace(b"AuthorID,Author", b"authorid,AUTHOR", 1)
    (tmp_path / NAME).write_bytes(b"\xef\xbb\xbf" + data)
    assert [m.content for m in read_all(tmp_path / NAME)[1]] == ["prompt 0"]


def test_header_only_is_a_valid_empty_export(tmp_path):
    header, messages = read_all(write(tmp_path / NAME, []))
    assert messages == [] and header.channel_id == "1032443284947075073"


@pytest.mark.parametrize(("text", "expected"), [
    ("2023-09-23T13:15:48.3790000+03:00", datetime(2023, 9, 23, 10, 15, 48, 379000, tzinfo=UTC)),
    ("2023-09-23T13:15:48.3790000+00:00", datetime(2023, 9, 23, 13, 15, 48, 379000, tzinfo=UTC)),
    ("23-Sep-22 01:15 PM", datetime(2022, 9, 23, 13, 15, tzinfo=UTC)),
    ("01-Jan-23 12:05 AM", datetime(2023, 1, 1, 0, 5, tzinfo=UTC)),
    ("09/23/2022 12:15 PM", datetime(2022, 9, 23, 12, 15, tzinfo=UTC)),
    ("10/6/2023 12:37 AM", datetime(2023, 10, 6, 0, 37, tzinfo=UTC)),
    ("10/6/2023 12:37\u202fPM", datetime(2023, 10, 6, 12, 37, tzinfo=UTC)),  # .NET on ICU >= 72
    ("1695464148", datetime(2023, 9, 23, 10, 15, 48, tzinfo=UTC)),
    ("1695464148379", datetime(2023, 9, 23, 10, 15, 48, 379000, tzinfo=UTC)),
])
def test_each_historical_date_format(tmp_path, text, expected):
    assert parse_csv_date(text) == expected
    path = write(tmp_path / NAME, [(BOT["id"], "DreamBot#0357", text, "x", "", "")])
    assert read_all(path)[1][0].posted_at == expected


@pytest.mark.parametrize("text", ["", "yesterday", "31-Feb-23 01:15 PM", "13/45/2023 1:00 PM", "10/6/2023 13:37 PM",
                                  "23-Sep-22 13:15", "2023-13-01T00:00:00+00:00"])
def test_unparseable_dates_name_the_line(tmp_path, text):
    path = write(tmp_path / NAME, [row(0), row(1, content="two\nlines"),
                                   (BOT["id"], "DreamBot#0357", text, "x", "", "")])
    assert read_error(path).reason == f"line 5: unrecognised Date value {text!r}"


def test_attachment_splitting():
    assert split_attachments("") == ()
    assert split_attachments(f"{URL1},{URL2},http://example.com/x,y") == (URL1, URL2, "http://example.com/x,y")
    assert split_attachments(r"media\a, b [1].png,media\c.png") == (r"media\a, b [1].png,media\c.png",)


def test_stable_key_formula_and_overlapping_exports(tmp_path):
    channel = "1032443284947075073"
    rows = [row(i) for i in range(6)]
    first = write(tmp_path / f"G - C - dreambot-1 [{channel}] (2023-09-01 to 2023-09-30).csv", rows[:4])
    second = write(tmp_path / f"G - C - dreambot-1 [{channel}] (after 2023-09-23).csv", rows[2:])
    _, a = read_all(first)
    _, b = read_all(second)
    assert {m.key for m in a} & {m.key for m in b} == {a[2].key, a[3].key} == {b[0].key, b[1].key}
    expected = "csv:" + hashlib.sha1("\x1f".join(
        (channel, BOT["id"], (T0 + timedelta(seconds=14)).isoformat(), "prompt 2", "0")).encode()).hexdigest()
    assert a[2].key == expected


def test_repeated_identical_messages_get_distinct_keys_in_every_export(tmp_path):
    same = row(0, content="again", when=T0)
    rows = [same, same, row(1, when=T0), same]
    _, first = read_all(write(tmp_path / "x [1].csv", rows))
    _, again = read_all(write(tmp_path / "y [1].csv", rows))  # another export of the same channel
    assert len({m.key for m in first}) == 4
    assert [m.key for m in first] == [m.key for m in again]
    other_channel = read_all(write(tmp_path / "x [2].csv", rows))[1]
    assert not {m.key for m in first} & {m.key for m in other_channel}


def test_name_without_channel_token(tmp_path):
    header, messages = read_all(write(tmp_path / "renamed export [part 2].csv", [row(0)]))
    assert header.channel_id == "name:renamed export" == messages[0].channel_id
    assert header.channel_name is None


def test_rows_far_out_of_time_order_are_refused(tmp_path):
    rows = [row(i, when=T0 + timedelta(minutes=i)) for i in range(5000)] + [row(0, when=T0)]
    error = read_error(write(tmp_path / NAME, rows))
    assert error.reason.startswith("line 5002: rows are not in time order")


def test_dst_step_back_of_naive_times_is_fine(tmp_path):
    times = [f"10/29/2023 {h}:{m:02d} AM" for h in (1, 2) for m in range(0, 60, 1)] * 40  # repeated hour
    rows = [(BOT["id"], "DreamBot#0357", t, f"p{i}", "", "") for i, t in enumerate(times)]
    assert len(read_all(write(tmp_path / NAME, rows))[1]) == len(rows)


# --- bad input ------------------------------------------------------------------------------------------------


def test_zero_byte_file(tmp_path):
    (tmp_path / NAME).write_bytes(b"")
    assert read_error(tmp_path / NAME).reason == "empty file"


@pytest.mark.parametrize("header", ["AuthorID;Author;Date;Content;Attachments;Reactions",
                                    "AuthorID,Author,Date,Content,Attachments",
                                    "id,author,date,content,attachments,reactions"])
def test_wrong_header_is_named(tmp_path, header):
    (tmp_path / NAME).write_text(header + '\n"1","a","2023-01-01T00:00:00.0000000+00:00","x","",""\n')
    assert read_error(tmp_path / NAME).reason == (
        f"not a DCE CSV export: header is {header!r}, expected 'AuthorID,Author,Date,Content,Attachments,Reactions'")


def test_unterminated_quote_at_end_of_file(tmp_path):
    data = csv_bytes([row(0), row(1)]) + b'"1","a","2023-01-01T00:00:00.0000000+00:00","never closed\nmore\n'
    (tmp_path / NAME).write_bytes(data)
    assert read_error(tmp_path / NAME).reason == (
        "unterminated quoted field: the record starting at line 4 runs to the end of the file (line 5)")


def test_text_after_a_closing_quote(tmp_path):
    data = csv_bytes([row(0)]) + b'"1","a","2023-01-01T00:00:00.0000000+00:00","x"oops,"",""\n'
    (tmp_path / NAME).write_bytes(data)
    reason = read_error(tmp_path / NAME).reason
    assert reason.startswith("line 3: malformed CSV (',' expected after '\"')")


def test_wrong_number_of_fields(tmp_path):
    data = csv_bytes([row(0, content="a\nb")]) + b'"1","a","2023-01-01T00:00:00.0000000+00:00","x",""\n'
    (tmp_path / NAME).write_bytes(data)
    assert read_error(tmp_path / NAME).reason == "line 4: expected 6 fields, found 5"


def test_non_utf8_bytes_name_line_and_offset(tmp_path):
    good = csv_bytes([row(0), row(1)])
    bad_line = b'"1","a","2023-01-01T00:00:00.0000000+00:00","caf' + b"\xe9" + b'","",""\n'
    (tmp_path / NAME).write_bytes(good + bad_line)
    column = bad_line.index(b"\xe9")
    assert read_error(tmp_path / NAME).reason == (
        f"line 4: invalid UTF-8 byte 0xe9 at byte offset {len(good) + column} (column {column + 1})")
