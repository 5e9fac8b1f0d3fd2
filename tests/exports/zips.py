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


def write_zip_raw_names(path: Path, members: dict[bytes, bytes], *, utf8_flag: bool = False) -> Path:
    """A zip whose member names are the given raw bytes (not necessarily valid UTF-8), with the UTF-8 name flag
    (general purpose bit 11) set or not, as another platform's zip tool writes them."""
    placeholders = {f"member-{i:04d}-".ljust(len(name), "x")[: len(name)]: (name, data)
                    for i, (name, data) in enumerate(members.items())}
    assert all(len(p) == len(n) and len(p) > 11 for p, (n, _) in placeholders.items()), "names too short"
    write_zip(path, {p: data for p, (_, data) in placeholders.items()})
    raw = bytearray(path.read_bytes())
    for signature, flags_at, name_length_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", raw, start + name_length_at)[0]
            placeholder = raw[start + name_at: start + name_at + length].decode("ascii")
            raw[start + name_at: start + name_at + length] = placeholders[placeholder][0]
            flags = struct.unpack_from("<H", raw, start + flags_at)[0]
            struct.pack_into("<H", raw, start + flags_at, flags | 0x800 if utf8_flag else flags & ~0x800)
            start += name_at + length
    path.write_bytes(bytes(raw))
    return path


def write_many_member_zip(path: Path, members: int) -> Path:
    """A zip of ``members`` tiny, valid and distinct CSV exports (one message each) of one channel, as DCE
    partitions a channel export (``[part N]``)."""
    header = b"AuthorID,Author,Date,Content,Attachments,Reactions\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(members):
            day, second = divmod(i, 86_400)
            row = (f'"1034481460838531074","DreamBot#0357","2022-11-{1 + day:02d}T{second // 3600:02d}:'
                   f'{second // 60 % 60:02d}:{second % 60:02d}.0000000+00:00","Dreamt in `4.2s` for @ann... '
                   f'`/dream prompt:a fox number {i} seed:{i}`","https://cdn.discordapp.com/attachments/1/{i}/a.png",""\n')
            archive.writestr(f"exports/Stable Diffusion - Bots - dreambot-1 [101] [part {i + 1}].csv",
                             header + row.encode())
    return path
