from __future__ import annotations

import hashlib
import os
import random
import zipfile
from pathlib import Path

import pytest
from promptmill.exports import ExportError, Source, archives, discover, read_export
from promptmill.exports.archives import ArchiveLimits

from .dce import START, csv_bytes, dumps_dce, export_doc, iso_o, message_218
from .zips import patch_sizes, write_symlink_zip, write_zip, write_zip_raw_names

JSON_A = dumps_dce(export_doc([message_218(i) for i in range(3)], channel_id="111"))
JSON_B = dumps_dce(export_doc([message_218(i) for i in range(2)], channel_id="222"))
CSV_C = csv_bytes([("1", "bot#0001", iso_o(START), "hello", "", "")])


def errors_and_sources(path, **caps):
    items = list(discover([path], **caps))
    return ([i for i in items if isinstance(i, ExportError)], [i for i in items if isinstance(i, Source)])


def test_nested_folders_and_several_channels(tmp_path):
    archive = write_zip(tmp_path / "dump.zip", {
        "exports/2024-01-31/G - C - b [222].json": JSON_B,
        "exports/G - C - a [111].json": JSON_A,
        "exports/2024-02-01/deeper/G - C - c [333].CSV": CSV_C,
        "exports/notes.md": b"ignored",
        "exports/G - C - a [111].json_Files/avatar.json": b"media, skipped",
        "__MACOSX/exports/._G - C - a [111].json": b"resource fork",
        "exports/": b"",
    })
    errors, sources = errors_and_sources(archive)
    assert errors == []
    assert [s.display_path for s in sources] == [
        f"{archive}!exports/2024-01-31/G - C - b [222].json",
        f"{archive}!exports/2024-02-01/deeper/G - C - c [333].CSV",
        f"{archive}!exports/G - C - a [111].json",
    ]
    assert [(s.format, s.partition_date) for s in sources] == [("json", "2024-01-31"), ("csv", "2024-02-01"),
                                                                ("json", None)]
    assert [s.size for s in sources] == [len(JSON_B), len(CSV_C), len(JSON_A)]
    assert sources[2].content_hash() == hashlib.sha256(JSON_A).hexdigest()
    results = {}
    for source in sources:
        header, messages = read_export(source)
        results[header.channel_id] = len(list(messages))
    assert results == {"222": 2, "333": 1, "111": 3}


def test_archive_named_like_a_date_partitions_its_members(tmp_path):
    _, sources = errors_and_sources(write_zip(tmp_path / "2024-03-05.zip", {"a [1].json": JSON_A}))
    assert sources[0].partition_date == "2024-03-05"


def test_each_open_is_a_fresh_stream(tmp_path):
    _, [source] = errors_and_sources(write_zip(tmp_path / "d.zip", {"a [1].json": JSON_A}))
    with source.open() as first, source.open() as second:
        assert first.read(10) == JSON_A[:10] and second.read() == JSON_A


@pytest.mark.parametrize(("member", "reason"), [
    ("../evil.json", "refused: '..' path component (would escape the archive folder)"),
    ("a/../../evil.csv", "refused: '..' path component (would escape the archive folder)"),
    ("/abs.json", "refused: absolute path inside the archive"),
    ("C:/abs.json", "refused: absolute path inside the archive"),
    ("inner/more.zip", "nested archive: not supported, extract it first"),
])
def test_unsafe_members_are_refused_and_the_archive_goes_on(tmp_path, member, reason):
    archive = write_zip(tmp_path / "d.zip", {member: JSON_A, "good [1].json": JSON_A})
    errors, sources = errors_and_sources(archive)
    assert [(e.source, e.reason) for e in errors] == [(f"{archive}!{member}", reason)]
    assert [s.display_path for s in sources] == [f"{archive}!good [1].json"]


def test_symlink_member_is_refused(tmp_path):
    archive = write_symlink_zip(tmp_path / "d.zip", "link.json", "/etc/passwd")
    errors, sources = errors_and_sources(archive)
    assert sources == [] and [e.reason for e in errors] == ["refused: symbolic link inside the archive"]


def test_unsupported_compression_is_refused(tmp_path):
    archive = write_zip(tmp_path / "d.zip", {"a [1].json": JSON_A}, compression=zipfile.ZIP_BZIP2)
    errors, _ = errors_and_sources(archive)
    assert errors[0].reason.startswith("compression method 12 not supported")


def test_duplicate_member_names(tmp_path):
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("a [1].json", JSON_A)
        archive.writestr("a [1].json", JSON_B)
    errors, sources = errors_and_sources(path)
    assert len(sources) == 1 and [e.reason for e in errors] == ["refused: duplicate member name inside the archive"]


def test_zip_bomb_over_the_ratio_cap(tmp_path):
    archive = write_zip(tmp_path / "bomb.zip", {"bomb [1].json": b"0" * (20 << 20), "small [2].json": b" " * 50_000})
    errors, sources = errors_and_sources(archive)
    assert [s.display_path for s in sources] == [f"{archive}!small [2].json"]  # small members may compress well
    assert errors[0].source == f"{archive}!bomb [1].json"
    assert "zip bomb protection: member declares a compression ratio of" in errors[0].reason
    assert "over the 200:1 cap" in errors[0].reason


def test_caps_are_overridable(tmp_path):
    archive = write_zip(tmp_path / "d.zip", {"a [1].json": JSON_A})
    errors, _ = errors_and_sources(archive, max_member_bytes=100)
    assert "over the 100-byte cap" in errors[0].reason
    _, sources = errors_and_sources(write_zip(tmp_path / "b.zip", {"b [1].json": b"0" * (20 << 20)}), max_ratio=10_000)
    assert len(sources) == 1


def test_header_lying_about_the_compressed_size_is_caught_while_streaming(tmp_path):
    archive = write_zip(tmp_path / "liar.zip", {"liar [1].json": b"0" * (5 << 20)})
    patch_sizes(archive, compressed=(5 << 20) // 100)  # declares a harmless 100:1
    errors, [source] = errors_and_sources(archive)
    assert errors == []
    with pytest.raises(ExportError) as caught:
        source.content_hash()
    assert caught.value.source == source.display_path
    assert caught.value.reason == ("corrupt archive member: member data ends before the size its header declares "
                                   "(truncated or lying header)")


def test_streaming_limits_count_what_is_produced():
    limits = ArchiveLimits(max_member_bytes=10 << 20, max_ratio=200, ratio_min_bytes=1 << 20)
    assert limits.streaming_problem(900_000, 10, declared_size=900_000) is None  # small: ratio not checked
    assert limits.streaming_problem(2 << 20, 20_000, declared_size=2 << 20) is None
    assert limits.streaming_problem(2 << 20, 10_000, declared_size=2 << 20).startswith(
        "zip bomb protection: member expanded 2,097,152 bytes from 10,000 compressed bytes")
    assert limits.streaming_problem(1001, 1000, declared_size=1000) == (
        "member produced more bytes than the 1,000 its header declares")
    assert limits.streaming_problem((10 << 20) + 1, 1 << 20, declared_size=20 << 20).startswith(
        "zip bomb protection: member produced more than 10,485,760 bytes")


def test_header_understating_the_size_never_yields_more(tmp_path):
    archive = write_zip(tmp_path / "liar.zip", {"liar [1].json": b"0" * (5 << 20)})
    patch_sizes(archive, uncompressed=500_000)  # under the ratio threshold
    _, [source] = errors_and_sources(archive)
    assert source.size == 500_000
    with pytest.raises(ExportError) as caught:
        source.content_hash()
    assert caught.value.reason.startswith("corrupt archive member: Bad CRC-32")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_archive(tmp_path, damage):
    path = tmp_path / "d.zip"
    if damage == "garbage":
        path.write_bytes(b"this is not a zip archive" * 100)
    else:
        data = write_zip(path, {"a [1].json": JSON_A, "b [2].json": JSON_B}).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    errors, sources = errors_and_sources(path)
    assert sources == []
    assert [(e.source, e.reason) for e in errors] == [
        (str(path), "corrupt or unreadable zip archive: File is not a zip file")]


def test_member_damaged_after_listing_is_an_export_error(tmp_path):
    archive = write_zip(tmp_path / "d.zip", {"a [1].json": JSON_A * 1})
    _, [source] = errors_and_sources(archive)
    data = bytearray(archive.read_bytes())
    start = data.index(b"PK\x03\x04") + 30 + len("a [1].json")
    data[start + 5: start + 40] = b"\x00" * 35
    archive.write_bytes(bytes(data))
    with pytest.raises(ExportError) as caught:
        header, messages = read_export(source)
        list(messages)
    assert caught.value.source == source.display_path


def test_member_names_that_are_not_utf8(tmp_path):
    """A name without the UTF-8 flag is raw bytes of some code page (zipfile decodes it as cp437): shown as UTF-8
    when it is (Linux zip, many tools), else with the bytes escaped like a file name; read by zipfile's name."""
    archive = write_zip_raw_names(tmp_path / "d.zip", {
        b"2024-01-31/caf\xe9 [1].json": JSON_A,  # latin-1
        "b\u00fcro - n\u00e4me [222].csv".encode(): CSV_C,  # UTF-8 bytes, no flag
    })
    errors, sources = errors_and_sources(archive)
    assert errors == []
    assert [s.display_path for s in sources] == [f"{archive}!2024-01-31/caf\\xe9 [1].json",
                                                 f"{archive}!b\u00fcro - n\u00e4me [222].csv"]
    assert [(s.file_name, s.partition_date) for s in sources] == [("caf\\xe9 [1].json", "2024-01-31"),
                                                                   ("b\u00fcro - n\u00e4me [222].csv", None)]
    assert sources[0].content_hash() == hashlib.sha256(JSON_A).hexdigest()
    header, messages = read_export(sources[1])
    assert (header.channel_id, header.guild_name, len(list(messages))) == ("222", "b\u00fcro", 1)


def test_member_name_flagged_utf8_but_not_utf8_refuses_the_archive_with_the_reason(tmp_path):
    archive = write_zip_raw_names(tmp_path / "d.zip", {b"caf\xe9 [1].json": JSON_A}, utf8_flag=True)
    errors, sources = errors_and_sources(archive)
    assert sources == []
    assert [(e.source, e.reason) for e in errors] == [(str(archive), (
        "corrupt or unreadable zip archive: a member name is flagged as UTF-8 but is not valid UTF-8 "
        "(byte 0xe9 at position 3 of b'caf\\xe9 [1].json')"))]


def test_archive_whose_own_name_is_not_utf8(tmp_path):
    path = os.fsdecode(os.fsencode(tmp_path) + b"/d\xfcmp.zip")
    write_zip(Path(path), {"a [1].json": JSON_A})
    errors, [source] = errors_and_sources(tmp_path)
    assert errors == [] and source.display_path == f"{tmp_path}/d\\xfcmp.zip!a [1].json"
    assert source.content_hash() == hashlib.sha256(JSON_A).hexdigest()


def _read_interleaved(streams: dict[str, object], chunk: int = 256 * 1024) -> dict[str, bytes | ExportError]:
    """Read the streams a chunk each in turn until each ends (or fails); what each gave, or its error."""
    data: dict[str, bytes | ExportError] = {name: b"" for name in streams}
    active = dict(streams)
    while active:
        for name, stream in list(active.items()):
            try:
                piece = stream.read(chunk)
            except ExportError as exc:
                data[name] = exc
                piece = b""
            if not piece:
                stream.close()
                del active[name]
            else:
                data[name] += piece
    return data


def test_members_of_one_archive_read_interleaved_give_their_own_bytes_and_bombs_are_still_refused(tmp_path):
    """Members of one archive share its opened central directory: reading two at once gives each its own bytes,
    and the compressed bytes one member reads never count for another (which would let a bomb through): a member
    whose first 4 MB of zeros come from a few KB is refused while streaming, although its header declares 5:1."""
    noise = random.Random(15).randbytes
    bomb, big, small = b"\0" * (4 << 20) + noise(1 << 20), noise(3 << 20), JSON_A * 50
    archive = write_zip(tmp_path / "d.zip", {"bomb [1].json": bomb, "big [2].json": big, "small [3].json": small})
    errors, sources = errors_and_sources(archive, max_ratio=10)
    assert errors == [] and [s.file_name for s in sources] == ["big [2].json", "bomb [1].json", "small [3].json"]
    got = _read_interleaved({s.file_name: s.open() for s in sources})
    assert got["big [2].json"] == big and got["small [3].json"] == small
    refused = got["bomb [1].json"]
    assert isinstance(refused, ExportError) and refused.source == f"{archive}!bomb [1].json"
    assert refused.reason.startswith("zip bomb protection: member expanded") and "over the 10:1 cap" in refused.reason
    # alone, the same
    assert _read_interleaved({"bomb": sources[1].open()})["bomb"].reason == refused.reason
    assert sources[0].content_hash() == hashlib.sha256(big).hexdigest()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_archives_are_not_kept_open_without_bound(tmp_path):
    sources = []
    for i in range(40):
        archive = write_zip(tmp_path / f"d{i}.zip", {f"a [{i}].json": JSON_A, f"b [{i}].json": JSON_B})
        sources += errors_and_sources(archive)[1]
    before = _open_fds()
    for source in sources:
        with source.open() as first, source.open() as second:
            assert first.read() == second.read() == (JSON_A if source.file_name.startswith("a") else JSON_B)
    assert _open_fds() - before <= 8


def test_an_archive_rewritten_since_it_was_opened_is_opened_again(tmp_path):
    archive = write_zip(tmp_path / "d.zip", {"a [1].json": JSON_A})
    [source] = errors_and_sources(archive)[1]
    assert source.content_hash() == hashlib.sha256(JSON_A).hexdigest()
    write_zip(archive, {"a [1].json": JSON_B})  # rewritten in place: the member moved and changed
    [source] = errors_and_sources(archive)[1]
    assert source.content_hash() == hashlib.sha256(JSON_B).hexdigest()


def _hash_in_child(source, parents, results) -> None:
    from promptmill.exports import archives

    digest = source.content_hash()
    results.put((digest, parents.file.closed, archives._cache.entries[source.location.archive_path] is not parents))


def test_a_forked_child_does_not_share_the_parents_opened_archive(tmp_path):
    """A child forked while the parent holds an archive open must not read through the parent's file offset."""
    import multiprocessing

    big = random.Random(4).randbytes(2 << 20)
    archive = write_zip(tmp_path / "d.zip", {"a [1].json": big, "b [2].json": JSON_B})
    first, second = errors_and_sources(archive)[1]
    context = multiprocessing.get_context("fork")
    results = context.SimpleQueue()
    with first.open() as parent_stream:  # the parent's archive is open (and its offset mid-member) at the fork
        head = parent_stream.read(1 << 20)
        parents = archives._cache.entries[str(archive)]
        child = context.Process(target=_hash_in_child, args=(first, parents, results))
        child.start()
        rest = parent_stream.read()
        child.join(60)
    # the child closed its copy of the parent's file and read through its own
    assert child.exitcode == 0 and results.get() == (hashlib.sha256(big).hexdigest(), True, True)
    assert not parents.file.closed
    assert head + rest == big and second.content_hash() == hashlib.sha256(JSON_B).hexdigest()
