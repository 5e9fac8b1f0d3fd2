"""DiscordChatExporter export readers: find export files (folders, zip archives) and stream their messages.

    for item in discover(["landing"]):
        if isinstance(item, ExportError):
            ...  # record item.source / item.reason, go on
            continue
        header, messages = read_export(item)  # raises ExportError (also while iterating)

Formats: JSON (any DCE version since 2.18) and CSV; see docs/export-formats.md.
"""

from promptmill.exports.archives import DEFAULT_MAX_MEMBER_BYTES, DEFAULT_MAX_RATIO, DEFAULT_RATIO_MIN_BYTES
from promptmill.exports.discovery import discover
from promptmill.exports.errors import ExportError
from promptmill.exports.naming import ExportFileName, parse_export_file_name
from promptmill.exports.reading import read_export
from promptmill.exports.sources import Source

__all__ = [
    "DEFAULT_MAX_MEMBER_BYTES",
    "DEFAULT_MAX_RATIO",
    "DEFAULT_RATIO_MIN_BYTES",
    "ExportError",
    "ExportFileName",
    "Source",
    "discover",
    "parse_export_file_name",
    "read_export",
]
