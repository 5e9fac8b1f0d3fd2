"""What DiscordChatExporter file and folder names say.

DCE names a file ``<Guild> - <Parent> - <Channel> [<channelId>]<range>[ [part N]].<ext>`` (`` - <Parent>`` is
left out when the channel has none). The ``[<channelId>]`` token is the only reliable part: guild, parent and
channel names may themselves contain `` - `` (thread names often do), so splitting the title is a best guess.
CSV exports carry no channel metadata inside the file, which is why the CSV reader needs this; JSON readers
must take everything from the JSON header instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

_DATE = r"\d{4}-\d{2}-\d{2}"
_EXPORT_FILE_NAME = re.compile(
    rf"""
    ^(?P<title>.*)\ \[(?P<channel_id>\d+)\]
    (?:\ \((?:(?P<after>{_DATE})\ to\ (?P<before>{_DATE})|after\ (?P<after_only>{_DATE})|before\ (?P<before_only>{_DATE}))\))?
    (?:\ \[part\ (?P<part>\d+)\])?
    \.(?P<extension>[^.]+)$
    """,
    re.VERBOSE,
)
_PART_SUFFIX = re.compile(r" \[part \d+\]$")
_TITLE_SEPARATOR = " - "
# A folder named like a date partitions the landing area: "2024-01-31", or Hive style "date=2024-01-31".
_DATE_FOLDER = re.compile(rf"^(?:[A-Za-z_]+=)?({_DATE})$")


@dataclass(frozen=True, slots=True)
class ExportFileName:
    """The parts of a DCE default file name."""

    title: str  # "<Guild> - <Parent> - <Channel>", exactly as in the name
    channel_id: str
    guild_name: str | None  # best guess from the title (see module docstring)
    parent_name: str | None  # best guess
    channel_name: str  # best guess
    after: str | None  # "YYYY-MM-DD" bounds of the export's date range, as DCE printed them
    before: str | None
    part: int  # 1 for the first (or only) file of a partitioned export
    extension: str


def parse_export_file_name(file_name: str) -> ExportFileName | None:
    """Parse a DCE default file name (base name only); None when it has no ``[<channelId>]`` token."""
    match = _EXPORT_FILE_NAME.match(file_name)
    if match is None:
        return None
    title = match["title"]
    # Guild and category names rarely contain " - ", thread and channel names more often: give the first two
    # segments to guild and parent and keep the rest together as the channel name.
    segments = title.split(_TITLE_SEPARATOR)
    if len(segments) == 1:
        guild, parent, channel = None, None, title
    elif len(segments) == 2:
        guild, parent, channel = segments[0], None, segments[1]
    else:
        guild, parent, channel = segments[0], segments[1], _TITLE_SEPARATOR.join(segments[2:])
    return ExportFileName(
        title=title,
        channel_id=match["channel_id"],
        guild_name=guild,
        parent_name=parent,
        channel_name=channel,
        after=match["after"] or match["after_only"],
        before=match["before"] or match["before_only"],
        part=int(match["part"]) if match["part"] else 1,
        extension=match["extension"],
    )


def channel_id_mismatch(file_name: str, channel_id: str) -> str | None:
    """A warning when a DCE file name's ``[<channelId>]`` names another channel than the export's header does.

    The header wins (it is what DCE read from Discord; a name can be edited or copied), but a mismatch usually
    means a renamed or mixed-up file, which the operator should hear about."""
    name = parse_export_file_name(file_name)
    if name is None or name.channel_id == channel_id:
        return None
    return (f"the file name says channel {name.channel_id} but the export's header says {channel_id}: "
            f"stored under {channel_id}")


def fallback_channel_id(file_name: str) -> str:
    """Channel id for an export whose name has no ``[<channelId>]`` token (renamed files, custom ``-o`` templates).

    ``"name:" + stem`` with any `` [part N]`` removed, so every partition of one export lands in one channel.
    """
    stem = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
    return "name:" + _PART_SUFFIX.sub("", stem)


def partition_date(folders: list[str]) -> str | None:
    """The date of the deepest folder named like a date (``YYYY-MM-DD`` or ``key=YYYY-MM-DD``), else None."""
    for folder in reversed(folders):
        match = _DATE_FOLDER.match(folder)
        if match is None:
            continue
        try:
            date.fromisoformat(match[1])
        except ValueError:  # "2024-13-45" is not a date
            continue
        return match[1]
    return None
