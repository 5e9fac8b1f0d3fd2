"""``read_export``: one Source -> its header and a stream of messages, whatever the format."""

from __future__ import annotations

from collections.abc import Iterator

from promptmill.exports.csv_reader import read_csv_export
from promptmill.exports.errors import ExportError
from promptmill.exports.html_reader import read_html_export
from promptmill.exports.json_reader import read_json_export
from promptmill.exports.sources import Source
from promptmill.exports.txt_reader import read_txt_export
from promptmill.records import ExportHeader, RawMessage

_READERS = {"json": read_json_export, "csv": read_csv_export, "html": read_html_export, "txt": read_txt_export}


def read_export(source: Source) -> tuple[ExportHeader, Iterator[RawMessage]]:
    """Header eagerly, messages streamed.

    Any problem, at header time or while iterating, raises ExportError; the caller then discards everything it
    got from that file (a half-read file must leave nothing behind). For JSON, ``header.declared_count``
    (``messageCount``, written after the messages) is set once the iterator is exhausted.
    """
    reader = _READERS.get(source.format)
    if reader is None:
        raise ExportError(source.display_path, f"unsupported export format {source.format!r}")
    return reader(source)
