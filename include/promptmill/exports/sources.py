"""``Source``: one export file to read, either a plain file or a member of a zip archive."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from promptmill.exports.errors import ExportError

_HASH_CHUNK = 1 << 20


def shown(path: str) -> str:
    """``path`` as it is displayed and stored: valid UTF-8 text whatever the name's bytes.

    A file name in another locale's bytes (``caf\\xe9``) comes from os.fsdecode with its undecodable bytes as lone
    surrogates, which no UTF-8 text (database, JSON, log) can hold: they are shown as ``\\xe9`` instead. The real
    path (with the surrogates) is what opens the file.
    """
    if path.isascii():
        return path
    try:
        return os.fsencode(path).decode(sys.getfilesystemencoding(), "backslashreplace")
    except UnicodeEncodeError:  # surrogates that no bytes decode to (a str built by hand)
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


class Location(Protocol):
    """Where a source's bytes live; ``open`` returns a fresh binary stream or raises ExportError."""

    @property
    def file_name(self) -> str: ...

    @property
    def disk_path(self) -> str: ...

    def open(self, display_path: str) -> BinaryIO: ...


@dataclass(frozen=True, slots=True)
class FileLocation:
    path: str

    @property
    def file_name(self) -> str:
        return shown(os.path.basename(self.path))

    @property
    def disk_path(self) -> str:
        return self.path

    def open(self, display_path: str) -> BinaryIO:
        try:
            return open(self.path, "rb")  # noqa: SIM115 - the caller owns (and closes) the stream
        except IsADirectoryError:
            raise ExportError(display_path, "is a directory, not a file") from None
        except OSError as exc:
            raise ExportError(display_path, f"cannot open: {exc.strerror or exc}") from None


@dataclass
class Source:
    """One export file to read (see discovery.discover)."""

    display_path: str  # "landing/a [123].json" or "landing/dump.zip!inner/b [456].csv"
    format: str  # "json" | "csv"
    size: int  # bytes (uncompressed size for zip members)
    partition_date: str | None  # "YYYY-MM-DD" of the deepest date-named folder, else None
    location: Location = field(repr=False, compare=False, kw_only=True)

    @property
    def file_name(self) -> str:
        """Base name of the file (of the member, for archive members), as displayed (see ``shown``)."""
        return self.location.file_name

    @property
    def disk_path(self) -> str:
        """The file on disk holding the bytes (the archive, for a member): its real name, for os.stat."""
        return self.location.disk_path

    def open(self) -> BinaryIO:
        """A fresh binary stream each call; raises ExportError when the bytes cannot be read."""
        return self.location.open(self.display_path)

    def content_hash(self) -> str:
        """sha256 hex of the bytes, streamed (never the whole file in memory)."""
        digest = hashlib.sha256()
        with self.open() as stream:
            try:
                while chunk := stream.read(_HASH_CHUNK):
                    digest.update(chunk)
            except OSError as exc:
                raise ExportError(self.display_path, f"read failed: {exc.strerror or exc}") from None
        return digest.hexdigest()
