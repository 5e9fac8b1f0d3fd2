"""Where publications go: any fsspec filesystem (the layer Airflow's ObjectStoragePath is built on).

Layout under the root::

    <root>/v0007-1a2b3c4d5e6f/   one complete publication (manifest.json present = complete)
    <root>/LATEST                the name of the current publication, one line

A publication becomes visible only when complete, so a crash leaves the previous one intact and current:

* local disk: files are written to ``<root>/.staging-<random>/``, synced, then the folder is renamed (atomic
  on one filesystem); LATEST is replaced with ``os.replace``.
* object storage (no atomic folder rename): files are uploaded straight to ``<root>/<version>/`` with
  ``manifest.json`` last; a folder without a manifest is incomplete and ignored by readers. LATEST is a single
  object PUT, itself atomic.

One publisher per destination at a time: ``publish`` holds a store lock named by ``Destination.lock_name`` from
reading LATEST to cleaning leftovers, so that version numbers stay unique and no publisher removes another's
staging folder, whichever front door (DAG runs, the CLI) started them.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
import urllib.parse
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import fsspec
import orjson
from fsspec.implementations.local import LocalFileSystem

from promptmill.publishing.errors import PublishError

LATEST = "LATEST"
MANIFEST = "manifest.json"
VERSION_RE = re.compile(r"^v(\d{4,})-([0-9a-f]{12})$")
_STAGING_PREFIX = ".staging-"


def version_name(sequence: int, content_sha256: str) -> str:
    return f"v{sequence:04d}-{content_sha256[:12]}"


def version_sequence(version: str) -> int:
    match = VERSION_RE.match(version)
    if not match:
        raise PublishError(f"{version!r} is not a publication version (v<sequence>-<content hash>)")
    return int(match.group(1))


def redact_uri(uri: str) -> str:
    """The URI without user info or query (where credentials could hide); safe for logs and asset extras."""
    parts = urllib.parse.urlsplit(str(uri))
    if not parts.scheme or len(parts.scheme) == 1:  # a plain path (or a Windows drive letter)
        return str(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass(frozen=True, slots=True)
class StoredPublication:
    version: str
    sequence: int


class Destination:
    """One publication root on any fsspec filesystem."""

    def __init__(self, uri: str, *, storage_options: dict | None = None) -> None:
        self.display_uri = redact_uri(uri).rstrip("/")
        try:
            self.fs, root = fsspec.core.url_to_fs(str(uri), **(storage_options or {}))
        except (ImportError, ValueError) as exc:  # unknown protocol, or its package (e.g. s3fs) is not installed
            raise PublishError(f"cannot open the publish destination {self.display_uri}: {exc}") from None
        self.root = root.rstrip("/") or "/"
        self.is_local = isinstance(self.fs, LocalFileSystem)

    @property
    def lock_name(self) -> str:
        """One name per destination however it was spelled (relative path, file:// URL, symbolic link)."""
        if self.is_local:
            return "file://" + os.path.realpath(self.root)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{self.root}"

    # --- paths --------------------------------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts]) if self.root != "/" else "/" + "/".join(parts)

    def uri_of(self, version: str) -> str:
        return f"{self.display_uri}/{version}"

    # --- reading ------------------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        if not self.is_local:
            self.fs.invalidate_cache()  # object-store listings are cached per filesystem instance

    def _names(self) -> list[str]:
        self._refresh()
        try:
            entries = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return []
        return sorted(str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries)

    def is_complete(self, version: str) -> bool:
        return self.fs.exists(self.path(version, MANIFEST))

    def publications(self) -> list[StoredPublication]:
        """Complete publications, oldest first."""
        found = []
        for name in self._names():
            match = VERSION_RE.match(name)
            if match and self.is_complete(name):
                found.append(StoredPublication(name, int(match.group(1))))
        return sorted(found, key=lambda p: (p.sequence, p.version))

    def latest_version(self) -> str | None:
        """The version LATEST names, if it names a complete publication."""
        self._refresh()
        try:
            text = self.fs.cat_file(self.path(LATEST)).decode("utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise PublishError(f"cannot read {self.display_uri}/{LATEST}: {exc}") from None
        if not VERSION_RE.match(text) or not self.is_complete(text):
            return None
        return text

    def read_manifest(self, version: str) -> dict | None:
        try:
            return orjson.loads(self.fs.cat_file(self.path(version, MANIFEST)))
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise PublishError(f"{self.uri_of(version)}/{MANIFEST} is not valid JSON: {exc}") from None

    def read_file(self, version: str, name: str) -> bytes:
        return self.fs.cat_file(self.path(version, name))

    # --- writing ------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def staging(self) -> Generator[Path, None, None]:
        """A local folder to write a publication into; removed on exit unless committed (renamed away)."""
        if self.is_local:
            os.makedirs(self.root, exist_ok=True)
            folder = Path(self.root) / f"{_STAGING_PREFIX}{secrets.token_hex(6)}"
            folder.mkdir()
        else:
            folder = Path(tempfile.mkdtemp(prefix="promptmill-publish-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, staged: Path, version: str, names: Sequence[str]) -> None:
        """Make the staged files the publication ``version``; ``names`` are uploaded in order (manifest last)."""
        if names[-1] != MANIFEST:
            raise PublishError("the manifest must be the last file of a publication")
        try:
            if self.is_local:
                self._commit_local(staged, version)
            else:
                self._commit_remote(staged, version, names)
        except OSError as exc:
            raise PublishError(f"cannot write the publication {self.uri_of(version)}: {exc}") from exc

    def _commit_local(self, staged: Path, version: str) -> None:
        for item in staged.iterdir():
            _fsync_path(item)
        _fsync_path(staged)
        final = Path(self.path(version))
        if final.exists():  # never complete here (the caller reuses complete ones): a foreign leftover
            shutil.rmtree(final)
        os.rename(staged, final)
        _fsync_path(Path(self.root))

    def _commit_remote(self, staged: Path, version: str, names: Sequence[str]) -> None:
        target = self.path(version)
        self._refresh()
        if self.fs.exists(target):  # an incomplete upload of an earlier attempt
            self.fs.rm(target, recursive=True)
        for name in names:
            self.fs.put_file(str(staged / name), self.path(version, name))

    def point_latest(self, version: str) -> None:
        data = f"{version}\n".encode()
        try:
            if self.is_local:
                tmp = Path(self.path(f".{LATEST}.{secrets.token_hex(6)}"))
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path(LATEST))
                _fsync_path(Path(self.root))
            else:
                self.fs.pipe_file(self.path(LATEST), data)
        except OSError as exc:
            raise PublishError(f"cannot update {self.display_uri}/{LATEST}: {exc}") from exc

    # --- housekeeping -------------------------------------------------------------------------------------------

    def apply_retention(self, keep: int, protect: Sequence[str] = ()) -> list[str]:
        """Delete complete publications beyond the ``keep`` newest (0 = keep all); never one in ``protect``."""
        if keep <= 0:
            return []
        doomed = [p.version for p in self.publications()[:-keep] if p.version not in protect]
        for version in doomed:
            # the manifest goes first: a half-deleted folder then reads as incomplete, never as a broken publication
            self.fs.rm(self.path(version, MANIFEST))
            self.fs.rm(self.path(version), recursive=True)
        return doomed

    def remove_leftovers(self, protect: Sequence[str] = ()) -> list[str]:
        """Remove what crashed publishers left: staging folders and (object storage) manifest-less versions."""
        removed = []
        for name in self._names():
            if name in protect:
                continue
            leftover = name.startswith(_STAGING_PREFIX) or name.startswith(f".{LATEST}.")
            if VERSION_RE.match(name) and not self.is_complete(name):
                leftover = True
            if leftover:
                self.fs.rm(self.path(name), recursive=True)
                removed.append(name)
        return removed


def _fsync_path(path: Path) -> None:
    """Flush a file or folder to disk so a rename after it cannot expose unwritten data after a power loss."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
