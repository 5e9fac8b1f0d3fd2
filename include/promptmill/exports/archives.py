"""Zip archives of exports: list their .json/.csv members as Sources, refuse unsafe ones, stream them capped.

Nothing is ever extracted to disk, but member names still become display paths and feed the partition date, so
names that would escape an extraction folder (absolute, ``..``) and symbolic links are refused like an
extractor would. Zip bombs are refused from the central directory (declared size and ratio) and, because a
header can lie, again while streaming: the bytes actually produced are counted against the same caps, and the
ratio is taken against the compressed bytes actually read from the archive file for that very member.

Each process keeps the few archives it read last open, central directory parsed and indexed, so that reading
every member of an archive costs its own bytes, not a parse of the whole directory each time (which made the
time grow with the square of the member count); see _ArchiveCache.

A member name without the UTF-8 flag is raw bytes of whatever code page the zip tool used (zipfile decodes it as
cp437, the format's historical default): it is displayed as UTF-8 when its bytes are (what most tools that leave
the flag unset write), else with the bytes escaped as ``\\xe9``, like a file name in another locale's bytes.
"""

from __future__ import annotations

import io
import os
import re
import stat
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from promptmill.exports.errors import ExportError
from promptmill.exports.naming import partition_date
from promptmill.exports.sources import Source

# Module-level defaults; discover() takes keyword overrides.
DEFAULT_MAX_MEMBER_BYTES = 8 * 1024**3  # uncompressed size cap per member
DEFAULT_MAX_RATIO = 200.0  # uncompressed / compressed, per member ...
DEFAULT_RATIO_MIN_BYTES = 1024**2  # ... only checked for members larger than this (small files compress well)

EXPORT_FORMATS = {".json": "json", ".csv": "csv", ".html": "html", ".htm": "html", ".txt": "txt"}
# Archives inside archives are refused loudly (they may hold exports) rather than ignored.
NESTED_ARCHIVE_EXTENSIONS = (".zip", ".7z", ".rar", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst")
# bzip2/lzma members decompress without an output bound in zipfile (one read can explode in memory).
SUPPORTED_COMPRESSION = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}

_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
               RuntimeError, zlib.error)
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
_STREAM_BUFFER = 256 * 1024
_MAX_OPEN_ARCHIVES = 4  # per process: archives kept open between reads of their members (one fd each)


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
    max_ratio: float = DEFAULT_MAX_RATIO
    ratio_min_bytes: int = DEFAULT_RATIO_MIN_BYTES

    def declared_problem(self, info: zipfile.ZipInfo) -> str | None:
        """Why the central directory entry alone is enough to refuse the member, or None."""
        if info.file_size > self.max_member_bytes:
            return (f"zip bomb protection: member declares {info.file_size:,} bytes uncompressed, "
                    f"over the {self.max_member_bytes:,}-byte cap")
        if info.file_size > self.ratio_min_bytes and info.file_size > self.max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            return (f"zip bomb protection: member declares a compression ratio of {ratio:,.0f}:1 "
                    f"({info.file_size:,} from {info.compress_size:,} bytes), over the {self.max_ratio:g}:1 cap")
        return None

    def streaming_problem(self, produced: int, compressed_read: int, declared_size: int) -> str | None:
        """Why the bytes produced so far prove the header wrong or the member a bomb, or None."""
        if produced > self.max_member_bytes:
            return (f"zip bomb protection: member produced more than {self.max_member_bytes:,} bytes "
                    f"(cap), its header declared {declared_size:,}")
        if produced > declared_size:
            return f"member produced more bytes than the {declared_size:,} its header declares"
        if produced > self.ratio_min_bytes and produced > self.max_ratio * max(compressed_read, 1):
            return (f"zip bomb protection: member expanded {produced:,} bytes from {compressed_read:,} "
                    f"compressed bytes, over the {self.max_ratio:g}:1 cap")
        return None


class _CountingFile(io.FileIO):
    """The archive file, counting the bytes zipfile reads from it (compressed data, local headers)."""

    bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


class _OpenArchive:
    """An archive opened with its central directory read once, indexed, and shared by its members' streams."""

    def __init__(self, path: str, identity: tuple[int, int, int, int], bookkeeping: threading.Lock) -> None:
        self.identity = identity  # (device, inode, size, mtime): a rewritten archive is opened again
        self.archive, self.file = _open_archive(path)
        self.members = {(info.filename, info.header_offset): info for info in self.archive.infolist()}
        # Reads of the shared file are serialized, so that the bytes read during one member's read are its own.
        self.lock = threading.Lock()
        self._bookkeeping = bookkeeping  # the cache's lock, over the two fields below
        self.streams = 0  # member streams open
        self.cached = True

    def read_counted(self, read):
        """``read()``'s result and how many bytes of the archive file it read (under the lock)."""
        with self.lock:
            before = self.file.bytes_read
            result = read()
            return result, self.file.bytes_read - before

    def release(self) -> None:
        with self._bookkeeping:
            self.streams -= 1
            self._close_if_unused()

    def evict(self) -> None:
        """(with the cache's lock held)"""
        self.cached = False
        self._close_if_unused()

    def _close_if_unused(self) -> None:
        if not self.cached and self.streams <= 0:
            self._close()

    def _close(self) -> None:
        self.archive.close()  # (zipfile leaves a file it was given open)
        self.file.close()

    def forget_after_fork(self) -> None:
        """In a forked child: close its copy of the parent's file at once, never to read through it (streams the
        parent had open are the parent's); the locks may have been held by another of the parent's threads."""
        self.lock = threading.Lock()
        self._bookkeeping = threading.Lock()
        self.cached = False
        self._close()


class _ArchiveCache:
    """The archives this process read last, kept open (at most _MAX_OPEN_ARCHIVES; the least recently used is
    closed once its streams are). A forked child never uses its parent's: they share the parent's file offsets
    (zipfile seeks before each read, but two processes' seek and read can interleave), so a child closes its copies
    as it starts, and opens its own."""

    def __init__(self) -> None:
        self.entries: OrderedDict[str, _OpenArchive] = OrderedDict()
        self.lock = threading.Lock()

    def acquire(self, path: str) -> _OpenArchive:
        """The archive at ``path``, open, with one more stream counted (release it); raises what opening raises."""
        info = os.stat(path)
        identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        with self.lock:
            entry = self.entries.pop(path, None)
            if entry is not None and entry.identity != identity:
                entry.evict()
                entry = None
            if entry is None:
                entry = _OpenArchive(path, identity, self.lock)
            self.entries[path] = entry  # the most recently used last
            while len(self.entries) > _MAX_OPEN_ARCHIVES:
                self.entries.popitem(last=False)[1].evict()
            entry.streams += 1
            return entry

    def forget_after_fork(self) -> None:
        self.lock = threading.Lock()
        for entry in self.entries.values():
            entry.forget_after_fork()
        self.entries.clear()

    def close_all(self) -> None:
        with self.lock:
            for entry in self.entries.values():
                entry.evict()
            self.entries.clear()


_cache = _ArchiveCache()
os.register_at_fork(after_in_child=_cache.forget_after_fork)


def close_archives() -> None:
    """Close the archives this process keeps open (each as soon as its last member stream is closed): at the end of
    a run, so that a long-lived process neither holds their files (a deleted archive's space) nor their directories."""
    _cache.close_all()


class _MemberStream(io.RawIOBase):
    """Raw stream of one member that enforces the limits on what is actually produced."""

    def __init__(self, opened: _OpenArchive, info: zipfile.ZipInfo, limits: ArchiveLimits, display_path: str) -> None:
        super().__init__()
        self._opened = opened
        self._info = info
        self._limits = limits
        self._display_path = display_path
        try:
            self._member, self._compressed_read = opened.read_counted(lambda: opened.archive.open(info))  # its header
        except BaseException:
            super().close()  # closed, so that close() (also when collected) never releases: the caller does
            raise
        self._produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data, compressed = self._opened.read_counted(lambda: self._member.read(len(buffer)))
        except _ZIP_ERRORS as exc:
            raise ExportError(self._display_path, f"corrupt archive member: {_describe(exc)}") from None
        self._produced += len(data)
        self._compressed_read += compressed
        problem = self._limits.streaming_problem(self._produced, self._compressed_read, self._info.file_size)
        if problem is not None:
            raise ExportError(self._display_path, problem)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._member.close()
            finally:
                self._opened.release()
        super().close()


def _describe(error: BaseException) -> str:
    if isinstance(error, UnicodeDecodeError):  # zipfile decodes a name flagged as UTF-8 strictly
        return (f"a member name is flagged as UTF-8 but is not valid UTF-8 (byte 0x{error.object[error.start]:02x} "
                f"at position {error.start} of {bytes(error.object)!r})")
    if isinstance(error, EOFError):  # zipfile raises a bare EOFError when member data runs past the file end
        return "member data ends before the size its header declares (truncated or lying header)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _open_archive(archive_path: str) -> tuple[zipfile.ZipFile, _CountingFile]:
    archive_file = _CountingFile(archive_path, "rb")
    try:
        return zipfile.ZipFile(archive_file), archive_file
    except BaseException:
        archive_file.close()
        raise


@dataclass(frozen=True, slots=True)
class ArchiveMemberLocation:
    archive_path: str
    member_name: str  # as zipfile decodes it
    header_offset: int  # tells apart members that share a name
    limits: ArchiveLimits
    file_name: str  # the base name, as displayed (see _shown_member_name)

    @property
    def disk_path(self) -> str:
        return self.archive_path

    def open(self, display_path: str) -> BinaryIO:
        try:
            opened = _cache.acquire(self.archive_path)
        except _ZIP_ERRORS as exc:
            raise ExportError(display_path, f"cannot open the archive: {_describe(exc)}") from None
        try:
            info = opened.members.get((self.member_name, self.header_offset))
            if info is None:
                raise ExportError(display_path, "member not found: the archive changed since it was listed")
            problem = self.limits.declared_problem(info)
            if problem is not None:
                raise ExportError(display_path, problem)
            raw = _MemberStream(opened, info, self.limits, display_path)
        except ExportError:
            opened.release()
            raise
        except _ZIP_ERRORS as exc:
            opened.release()
            raise ExportError(display_path, f"corrupt archive member: {_describe(exc)}") from None
        return io.BufferedReader(raw, buffer_size=_STREAM_BUFFER)


def _unsafe_member_reason(info: zipfile.ZipInfo, parts: list[str]) -> str | None:
    name = info.filename
    if name.startswith(("/", "\\")) or _DRIVE_LETTER.match(name):
        return "refused: absolute path inside the archive"
    if ".." in parts:
        return "refused: '..' path component (would escape the archive folder)"
    if info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16):
        return "refused: symbolic link inside the archive"
    return None


def _member_unsupported_reason(info: zipfile.ZipInfo) -> str | None:
    if info.flag_bits & 0x1:
        return "encrypted archive member: not supported"
    if info.compress_type not in SUPPORTED_COMPRESSION:
        return (f"compression method {info.compress_type} not supported "
                f"(only {', '.join(SUPPORTED_COMPRESSION.values())}): re-create the archive with deflate")
    return None


def _shown_member_name(info: zipfile.ZipInfo, name: str) -> str:
    """The member's name (or a part of it) as displayed and stored (see the module docstring)."""
    if name.isascii() or info.flag_bits & 0x800:
        return name
    try:
        raw = name.encode("cp437")  # the bytes back (list_archive opens archives without a metadata_encoding)
    except UnicodeEncodeError:
        return name
    return raw.decode("utf-8", "backslashreplace")


def _is_skipped_folder(folder: str) -> bool:
    # Hidden folders, DCE media folders ("X [123].json_Files") and macOS resource-fork folders.
    return folder.startswith(".") or folder.endswith("_Files") or folder == "__MACOSX"


def list_archive(archive_path: str, display_path: str, outer_folders: list[str],
                 limits: ArchiveLimits) -> Iterator[Source | ExportError]:
    """The export members of a zip archive as Sources, in name order; problems are yielded, never raised.

    ``outer_folders`` are the folders of the archive's own path plus the archive's stem (an archive named
    like a date partitions like a folder would).
    """
    try:
        archive, archive_file = _open_archive(archive_path)
    except _ZIP_ERRORS as exc:
        yield ExportError(display_path, f"corrupt or unreadable zip archive: {_describe(exc)}")
        return
    with archive, archive_file:
        seen: set[str] = set()
        for info in sorted(archive.infolist(), key=lambda i: (i.filename, i.header_offset)):
            if info.is_dir():
                continue
            parts = re.split(r"[/\\]", info.filename)
            extension = os.path.splitext(parts[-1])[1].lower()
            is_export = extension in EXPORT_FORMATS
            if not is_export and not parts[-1].lower().endswith(NESTED_ARCHIVE_EXTENSIONS):
                continue  # other files are ignored silently, as in folders
            member_display = f"{display_path}!{_shown_member_name(info, info.filename)}"
            unsafe = _unsafe_member_reason(info, parts)
            if unsafe is not None:
                yield ExportError(member_display, unsafe)
                continue
            if any(_is_skipped_folder(folder) for folder in parts[:-1]) or parts[-1].startswith("."):
                continue
            if not is_export:
                yield ExportError(member_display, "nested archive: not supported, extract it first")
                continue
            if info.filename in seen:
                yield ExportError(member_display, "refused: duplicate member name inside the archive")
                continue
            seen.add(info.filename)
            problem = _member_unsupported_reason(info) or limits.declared_problem(info)
            if problem is not None:
                yield ExportError(member_display, problem)
                continue
            yield Source(
                display_path=member_display,
                format=EXPORT_FORMATS[extension],
                size=info.file_size,
                partition_date=partition_date(outer_folders + parts[:-1]),
                location=ArchiveMemberLocation(archive_path, info.filename, info.header_offset, limits,
                                               _shown_member_name(info, parts[-1])),
            )
