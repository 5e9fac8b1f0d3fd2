from __future__ import annotations

import hashlib
import os
import re

import pytest
from promptmill.exports import ExportError, Source, discover, read_export

from .dce import START, csv_bytes, dumps_dce, export_doc, iso_o, message_218
from .zips import patch_sizes, write_zip

GOOD_JSON = dumps_dce(export_doc([message_218(i) for i in range(3)]))
GOOD_CSV = csv_bytes([("1", "bot#0001", iso_o(START), "hello", "", "")])


def split(items):
    items = list(items)
    return [i for i in items if isinstance(i, ExportError)], [i for i in items if isinstance(i, Source)]


def test_folders_are_searched_recursively_in_sorted_order(tmp_path):
    for name in ["b/2024-01-02/y [2].json", "a/x [1].CSV", "b/2024-01-02/a [3].JSON", "c.json"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(GOOD_CSV if name.lower().endswith(".csv") else GOOD_JSON)
    for skipped in [".hidden/h [4].json", ".h [5].json", "x [1].json_Files/media.json", "notes.md", "img.png"]:
        (tmp_path / skipped).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / skipped).write_bytes(GOOD_JSON)
    errors, sources = split(discover([tmp_path]))
    assert errors == []
    assert [os.path.relpath(s.display_path, tmp_path) for s in sources] == [
        "a/x [1].CSV", "b/2024-01-02/a [3].JSON", "b/2024-01-02/y [2].json", "c.json"]
    assert [(s.format, s.partition_date) for s in sources] == [
        ("csv", None), ("json", "2024-01-02"), ("json", "2024-01-02"), ("json", None)]
    assert sources[3].size == len(GOOD_JSON)
    assert split(discover([tmp_path]))[1] == sources  # deterministic


def test_a_file_reached_twice_is_listed_once_and_symlink_loops_end(tmp_path):
    (tmp_path / "a [1].json").write_bytes(GOOD_JSON)
    (tmp_path / "loop").symlink_to(tmp_path)
    errors, sources = split(discover([tmp_path, tmp_path / "a [1].json"]))
    assert errors == [] and len(sources) == 1


def test_missing_paths_and_explicit_files_of_other_types(tmp_path):
    (tmp_path / "notes.md").write_text("x")
    errors, sources = split(discover([tmp_path / "missing.json", tmp_path / "notes.md"]))
    assert sources == []
    assert [(e.source, e.reason) for e in errors] == [
        (str(tmp_path / "missing.json"), "no such file or directory"),
        (str(tmp_path / "notes.md"), "not an export: expected a .json, .csv, .html, .txt or .zip file or a folder"),
    ]


def test_unreadable_file(tmp_path):
    path = tmp_path / "locked [1].json"
    path.write_bytes(GOOD_JSON)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as root: permissions do not stop reads (the corpus test uses a broken symlink)")
        errors, sources = split(discover([tmp_path]))
        assert sources == [] and [e.reason for e in errors] == ["cannot open: Permission denied"]
    finally:
        path.chmod(0o644)


def test_source_open_failures_are_export_errors(tmp_path):
    path = tmp_path / "gone [1].json"
    path.write_bytes(GOOD_JSON)
    [source] = discover([path])
    path.unlink()
    for action in (source.open, source.content_hash, lambda: read_export(source)):
        with pytest.raises(ExportError) as caught:
            action()
        assert str(caught.value) == f"{path}: cannot open: No such file or directory"


def build_corpus(folder):
    """Every kind of bad input next to one good file; returns {display path: expected reason pattern}."""
    folder.mkdir()
    (folder / "good [1].json").write_bytes(GOOD_JSON)
    full = dumps_dce(export_doc([message_218(i) for i in range(50)]))
    files = {
        "truncated [2].json": (full[: len(full) // 2], r"truncated JSON: the document ends unexpectedly at byte \d+"),
        "invalid [3].json": (full.replace(b'"content":', b'"content";', 1), r"invalid JSON at byte \d+ \(.+\)"),
        "not dce [4].json": (b'{"hello": "world"}', r"not a DCE export: no top-level 'messages' array"),
        "no id [5].json": (full.replace(b'\n      "id": "', b'\n      "idx": "', 1),
                           r"message #0: missing 'id'"),
        "empty [6].json": (b"", r"empty file"),
        "empty [7].csv": (b"", r"empty file"),
        "header [8].csv": (b"a,b,c\n", r"not a DCE CSV export: header is 'a,b,c'"),
        "quote [9].csv": (GOOD_CSV + b'"1","a","2023-01-01T00:00:00+00:00","open\n',
                          r"unterminated quoted field: the record starting at line 3"),
        "fields [10].csv": (GOOD_CSV + b'"1","a"\n', r"line 3: expected 6 fields, found 2"),
        "latin1 [11].csv": (GOOD_CSV + '"1","a","2023-01-01T00:00:00+00:00","café","",""\n'.encode("latin-1"),
                            r"line 3: invalid UTF-8 byte 0xe9 at byte offset \d+"),
        "date [12].csv": (GOOD_CSV + b'"1","a","someday","x","",""\n', r"line 3: unrecognised Date value 'someday'"),
        "corrupt.zip": (b"PK\x03\x04 definitely not a zip", r"corrupt or unreadable zip archive: File is not a zip file"),
        "deep [17].json": (full.replace(b'"content":', b'"embeds": ' + b"[" * 100_000 + b"]" * 100_000 + b',"content":', 1),
                           r"JSON nested deeper than 1024 levels at byte \d+"),
        "huge [18].json": (full.replace(b'"content": "', b'"content": "' + b"x" * (9 << 20), 1),
                           r"message #0 starting near byte \d+ is larger than 8 MiB"),
    }
    expected = {}
    for name, (data, reason) in files.items():
        (folder / name).write_bytes(data)
        expected[str(folder / name)] = reason
    (folder / "broken [13].json").symlink_to(folder / "nowhere.json")
    expected[str(folder / "broken [13].json")] = r"broken symbolic link"
    evil = write_zip(folder / "evil.zip", {"../evil.json": GOOD_JSON, "/abs.json": GOOD_JSON,
                                           "inner/ok [14].json": GOOD_JSON})
    expected[f"{evil}!../evil.json"] = r"refused: '..' path component"
    expected[f"{evil}!/abs.json"] = r"refused: absolute path inside the archive"
    bomb = write_zip(folder / "bomb.zip", {"bomb [15].json": b" " * (30 << 20)})
    expected[f"{bomb}!bomb [15].json"] = r"zip bomb protection: member declares a compression ratio of [\d,]+:1"
    liar = patch_sizes(write_zip(folder / "liar.zip", {"liar [16].json": b" " * (3 << 20)}), uncompressed=900_000)
    expected[f"{liar}!liar [16].json"] = r"corrupt archive member: Bad CRC-32"
    return expected, {str(folder / "good [1].json"), f"{evil}!inner/ok [14].json"}


def test_bad_input_corpus_never_stops_the_run(tmp_path):
    expected_errors, expected_good = build_corpus(tmp_path / "landing")
    errors: dict[str, ExportError] = {}
    good = {}
    for item in discover([tmp_path / "landing"]):
        if isinstance(item, ExportError):
            errors[item.source] = item
            continue
        try:
            header, messages = read_export(item)
            good[item.display_path] = len(list(messages))
        except ExportError as exc:
            assert exc.source == item.display_path
            errors[exc.source] = exc
    assert good == {path: 3 for path in expected_good}
    assert sorted(errors) == sorted(expected_errors)
    for path, pattern in expected_errors.items():
        error = errors[path]
        assert str(error) == f"{path}: {error.reason}"
        assert re.match(pattern, error.reason), (path, error.reason)


def test_file_and_folder_names_that_are_not_utf8_are_shown_escaped_and_read_by_their_bytes(tmp_path):
    """Names in another locale's bytes (os.fsdecode gives lone surrogates): displayed with the bytes escaped
    (``caf\\xe9``), opened by the real bytes, never an error."""
    root = os.fsencode(tmp_path)
    with open(root + b"/caf\xe9 [123].json", "wb") as handle:
        handle.write(GOOD_JSON)
    os.mkdir(root + b"/d\xfcr")
    with open(root + b"/d\xfcr/G - C - na\xefve [7].csv", "wb") as handle:
        handle.write(GOOD_CSV)
    os.symlink(root + b"/nowhere", root + b"/gon\xe9 [9].json")
    errors, sources = split(discover([tmp_path]))
    assert [(e.source, e.reason) for e in errors] == [(f"{tmp_path}/gon\\xe9 [9].json", "broken symbolic link")]
    assert [s.display_path for s in sources] == [f"{tmp_path}/caf\\xe9 [123].json",
                                                 f"{tmp_path}/d\\xfcr/G - C - na\\xefve [7].csv"]
    for source in sources:
        source.display_path.encode("utf-8")  # storable as text
    json_source, csv_source = sources
    assert json_source.content_hash() == hashlib.sha256(GOOD_JSON).hexdigest()
    assert len(list(read_export(json_source)[1])) == 3
    header, messages = read_export(csv_source)
    assert (header.channel_id, header.channel_name, len(list(messages))) == ("7", "na\\xefve", 1)
    # given explicitly, as the command line passes it (os.fsdecode of argv)
    [explicit] = discover([os.fsdecode(root + b"/caf\xe9 [123].json")])
    assert explicit.display_path == json_source.display_path and explicit.content_hash() == json_source.content_hash()
