from __future__ import annotations

import pytest
from promptmill.exports import parse_export_file_name
from promptmill.exports.naming import fallback_channel_id, partition_date


def test_channel_with_parent():
    name = parse_export_file_name("My server - Text channels - general [123].json")
    assert (name.guild_name, name.parent_name, name.channel_name, name.channel_id) == (
        "My server", "Text channels", "general", "123")
    assert (name.after, name.before, name.part, name.extension) == (None, None, 1, "json")


def test_direct_messages_have_no_parent():
    name = parse_export_file_name("Direct Messages - alice, bob [456].csv")
    assert (name.guild_name, name.parent_name, name.channel_name, name.channel_id) == (
        "Direct Messages", None, "alice, bob", "456")


def test_thread_with_separator_in_its_name_and_a_range():
    name = parse_export_file_name("My server - general - Bug - crash on start [789] (after 2024-01-31).json")
    assert name.channel_id == "789" and name.title == "My server - general - Bug - crash on start"
    assert (name.guild_name, name.parent_name, name.channel_name) == ("My server", "general", "Bug - crash on start")
    assert (name.after, name.before) == ("2024-01-31", None)


@pytest.mark.parametrize(("suffix", "after", "before", "part"), [
    (" (2024-01-01 to 2024-01-31)", "2024-01-01", "2024-01-31", 1),
    (" (before 2024-02-01)", None, "2024-02-01", 1),
    (" (2024-01-01 to 2024-01-31) [part 12]", "2024-01-01", "2024-01-31", 12),
    (" [part 2]", None, None, 2),
])
def test_date_ranges_and_parts(suffix, after, before, part):
    name = parse_export_file_name(f"G - C [1032443284947075073]{suffix}.csv")
    assert (name.channel_id, name.after, name.before, name.part) == ("1032443284947075073", after, before, part)


def test_last_bracketed_number_is_the_channel_id():
    name = parse_export_file_name("G - room [7] - thread [99].json")
    assert (name.channel_id, name.channel_name) == ("99", "thread")


@pytest.mark.parametrize("file_name", ["export.csv", "G - C [abc].csv", "G - C [123] (1).csv", "G - C [123]"])
def test_names_without_a_channel_token(file_name):
    assert parse_export_file_name(file_name) is None


def test_fallback_channel_id_ignores_the_part():
    assert fallback_channel_id("my export [part 3].csv") == "name:my export" == fallback_channel_id("my export.csv")


@pytest.mark.parametrize(("folders", "expected"), [
    (["landing", "2024-01-31"], "2024-01-31"),
    (["2023-12-01", "x", "date=2024-01-31", "y"], "2024-01-31"),  # the deepest wins
    (["landing", "2024-13-45"], None),
    (["landing", "2024-01-31-extra"], None),
    ([], None),
])
def test_partition_date(folders, expected):
    assert partition_date(folders) == expected
