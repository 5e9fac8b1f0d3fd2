"""``Source``: one export file to read, either a plain file or a member of a zip archive."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from promptmill.exports.errors import ExportError

_HASH_CHUNK = 1 << 20


class Location(Protocol):
    """Where a source's bytes live; ``open`` returns a fresh binary stream or raises ExportError."""

    @property
    def file_name(self) -> str: ...

    def open(self, display_path: str) -> BinaryIO: ...


@dataclass(frozen=True, slots=True)
class FileLocation:
    path: str

    @property
    def file_name(self) -> str:
        return os.path.basename(self.path)

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
        """Base name of the file (of the member, for archive members)."""
        return self.location.file_name

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
