"""manifest.json: what a publication holds, how it was made, and a checksum of every file.

Only ``created_at`` and ``run_id`` vary between two publications of the same store state; everything else is a
function of the store, so the content hash (over the data files alone) identifies "the same publication". The
quality report (``quality``) is not part of that hash: a store whose rejections moved while the published rows did
not makes no new version, and the report describes the store as it was when the version was made.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FORMAT = "promptmill-publication/1"
VOLATILE_FIELDS = ("created_at", "run_id")


@dataclass(frozen=True, slots=True)
class FileInfo:
    name: str
    sha256: str
    size: int
    rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        info: dict[str, Any] = {"sha256": self.sha256, "bytes": self.size}
        if self.rows is not None:
            info["rows"] = self.rows
        return info


def file_info(path: Path, rows: int | None = None) -> FileInfo:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return FileInfo(path.name, digest.hexdigest(), size, rows)


def content_sha256(data_files: list[FileInfo]) -> str:
    """The identity of a publication's data: a hash over every data file's name and hash, in name order."""
    listing = {info.name: info.sha256 for info in sorted(data_files, key=lambda i: i.name)}
    return hashlib.sha256(orjson.dumps(listing, option=orjson.OPT_SORT_KEYS)).hexdigest()


def build_manifest(
    *,
    version: str,
    content: str,
    created_at: str,
    run_id: str | None,
    settings: dict[str, Any],
    counts: dict[str, Any],
    label_versions: list[dict[str, Any]],
    watermark: dict[str, Any],
    files: list[FileInfo],
    quality: dict[str, Any] | None = None,
) -> dict[str, Any]:
    manifest = {
        "format": FORMAT,
        "version": version,
        "content_sha256": content,
        "created_at": created_at,
        "run_id": run_id,
        "settings": settings,
        "counts": counts,
        "label_versions": label_versions,
        "watermark": watermark,
        "files": {info.name: info.as_dict() for info in sorted(files, key=lambda i: i.name)},
    }
    if quality is not None:  # the quality report (report.py): rejections, merges, label statistics
        manifest["quality"] = quality
    return manifest


def dump_manifest(manifest: dict[str, Any]) -> bytes:
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"


def stable_part(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without the fields that name the moment and the run."""
    return {key: value for key, value in manifest.items() if key not in VOLATILE_FIELDS}
