"""Find the export files under the paths a run was given."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator

from promptmill.exports import archives
from promptmill.exports.archives import EXPORT_FORMATS, ArchiveLimits, list_archive
from promptmill.exports.errors import ExportError
from promptmill.exports.naming import partition_date
from promptmill.exports.sources import FileLocation, Source, shown

_ARCHIVE_EXTENSION = ".zip"


def discover(
    paths: Iterable[str | os.PathLike],
    *,
    max_member_bytes: int | None = None,
    max_ratio: float | None = None,
    ratio_min_bytes: int | None = None,
) -> Iterator[Source | ExportError]:
    """Every export under ``paths``, as Sources, in a deterministic (sorted) order.

    ``paths`` are files (.json/.csv/.html/.txt/.zip, any case) or folders searched recursively; zip archives are expanded
    to their .json/.csv members. A problem with a path or an archive member is YIELDED as an ExportError (never
    raised) so the run goes on. Inside folders, other extensions are ignored silently, and hidden files/folders
    and DCE ``*_Files`` media folders are skipped; a path given explicitly is always looked at.
    Names that are not valid UTF-8 are read by their real bytes and displayed escaped (see ``sources.shown``).
    The zip-bomb caps default to the module-level values of ``archives`` (read at call time).
    """
    limits = ArchiveLimits(
        max_member_bytes=archives.DEFAULT_MAX_MEMBER_BYTES if max_member_bytes is None else max_member_bytes,
        max_ratio=archives.DEFAULT_MAX_RATIO if max_ratio is None else max_ratio,
        ratio_min_bytes=archives.DEFAULT_RATIO_MIN_BYTES if ratio_min_bytes is None else ratio_min_bytes,
    )
    walker = _Walker(limits)
    for path in sorted({os.fspath(p) for p in paths}):
        yield from walker.path(path)


class _Walker:
    def __init__(self, limits: ArchiveLimits) -> None:
        self._limits = limits
        self._seen_files: set[tuple[int, int]] = set()  # (device, inode): a file reached twice is read once
        self._seen_folders: set[tuple[int, int]] = set()  # symlinked folders must not loop

    def path(self, path: str) -> Iterator[Source | ExportError]:
        try:
            info = os.stat(path)
        except FileNotFoundError:
            reason = "broken symbolic link" if os.path.islink(path) else "no such file or directory"
            yield ExportError(shown(path), reason)
            return
        except OSError as exc:
            yield ExportError(shown(path), f"cannot access: {exc.strerror or exc}")
            return
        if stat.S_ISDIR(info.st_mode):
            yield from self._folder(path, info)
            return
        extension = os.path.splitext(path)[1].lower()
        if extension not in EXPORT_FORMATS and extension != _ARCHIVE_EXTENSION:
            yield ExportError(shown(path), "not an export: expected a .json, .csv, .html, .txt or .zip file or a folder")
            return
        yield from self._file(path, info)

    def _folder(self, folder: str, info: os.stat_result) -> Iterator[Source | ExportError]:
        identity = (info.st_dev, info.st_ino)
        if identity in self._seen_folders:
            return
        self._seen_folders.add(identity)
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            yield ExportError(shown(folder), f"cannot list folder: {exc.strerror or exc}")
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            extension = os.path.splitext(entry.name)[1].lower()
            wanted = extension in EXPORT_FORMATS or extension == _ARCHIVE_EXTENSION
            try:
                entry_info = entry.stat()  # follows symbolic links
            except FileNotFoundError:
                if wanted:
                    yield ExportError(shown(entry.path), "broken symbolic link")
                continue
            except OSError as exc:
                if wanted:
                    yield ExportError(shown(entry.path), f"cannot access: {exc.strerror or exc}")
                continue
            if stat.S_ISDIR(entry_info.st_mode):
                if not entry.name.endswith("_Files"):  # DCE media folder ("X [123].json_Files")
                    yield from self._folder(entry.path, entry_info)
            elif wanted:
                yield from self._file(entry.path, entry_info)

    def _file(self, path: str, info: os.stat_result) -> Iterator[Source | ExportError]:
        if not stat.S_ISREG(info.st_mode):
            yield ExportError(shown(path), "not a regular file")
            return
        identity = (info.st_dev, info.st_ino)
        if identity in self._seen_files:
            return
        self._seen_files.add(identity)
        # Fail here rather than mid-run: a file the process may not read is reported at discovery.
        try:
            os.close(os.open(path, os.O_RDONLY))
        except OSError as exc:
            yield ExportError(shown(path), f"cannot open: {exc.strerror or exc}")
            return
        folders = _folders_of(path)
        extension = os.path.splitext(path)[1].lower()
        if extension == _ARCHIVE_EXTENSION:
            stem = os.path.splitext(os.path.basename(path))[0]
            yield from list_archive(path, shown(path), folders + [stem], self._limits)
            return
        yield Source(
            display_path=shown(path),
            format=EXPORT_FORMATS[extension],
            size=info.st_size,
            partition_date=partition_date(folders),
            location=FileLocation(path),
        )


def _folders_of(path: str) -> list[str]:
    folder = os.path.dirname(path)
    return [part for part in folder.replace("\\", "/").split("/") if part]


# What users find in a folder of exports that promptmill cannot read, and what to do about it.
_HINTS = {
    ".xlsx": "not a DiscordChatExporter format; export with -f Json",
    ".pdf": "not a DiscordChatExporter format; export with -f Json",
}
_LOOK_AT_MOST = 100_000  # files: what a hint needs, bounded for a path that is a whole disk


def what_is_here(paths: Iterable[str | os.PathLike]) -> list[str]:
    """For a run that found nothing to ingest: the kinds of files under ``paths``, most common first, each with a
    hint when there is one ("12 .html files: DiscordChatExporter's HTML exports cannot be read yet; ..."), or
    ["no files"]. Hidden files and folders are left out, as discovery leaves them."""
    counts: dict[str, int] = {}
    looked = 0
    for root in paths:
        root = os.fspath(root)
        walk = [(root, [], [os.path.basename(root)])] if os.path.isfile(root) else os.walk(root)
        for _folder, subfolders, files in walk:
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            for name in files:
                if name.startswith(".") or looked >= _LOOK_AT_MOST:
                    continue
                looked += 1
                extension = os.path.splitext(name)[1].lower() or "(no extension)"
                counts[extension] = counts.get(extension, 0) + 1
    if not counts:
        return ["no files"]
    lines = []
    for extension, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        kind = f"{count:,} {extension} file{'s' if count != 1 else ''}"
        lines.append(f"{kind}: {_HINTS[extension]}" if extension in _HINTS else kind)
    return lines
