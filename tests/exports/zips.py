"""Zip archives for the tests, including hostile ones built byte by byte."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_symlink_zip(path: Path, name: str, target: str) -> Path:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, target)
    return path


def patch_sizes(path: Path, *, compressed: int | None = None, uncompressed: int | None = None) -> Path:
    """Make the (single-member) archive's headers lie: rewrite the sizes in the local header and the central
    directory entry."""
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    for offset, field in ((local + 18, compressed), (local + 22, uncompressed),
                          (central + 20, compressed), (central + 24, uncompressed)):
        if field is not None:
            struct.pack_into("<I", data, offset, field)
    path.write_bytes(bytes(data))
    return path
