"""Destinations: crashes never expose a half publication, object storage (memory://) and file:// behave alike."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid

import fsspec
import pytest
from promptmill.publishing import PublishError, publish
from promptmill.publishing.destination import Destination, redact_uri
from promptmill.publishing.formats import read_jsonl

from tests.publishing.conftest import add_dataset
from tests.publishing.test_publish import REPO_ROOT, settings_for


def _visible_state(root) -> tuple[str, dict[str, bytes]]:
    latest = (root / "LATEST").read_text().strip()
    return latest, {p.name: p.read_bytes() for p in sorted((root / latest).iterdir())}


def test_a_killed_publisher_leaves_the_previous_publication_current(sqlite_engine, tmp_path):
    add_dataset(sqlite_engine, 20)
    first = publish(sqlite_engine, settings_for(tmp_path / "pub"))
    before = _visible_state(tmp_path / "pub")
    add_dataset(sqlite_engine, 10, start=20)
    # a real crash: the process dies (no finally blocks, no cleanup) in the middle of writing a file
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from promptmill.publishing import formats, publish
        from promptmill.store import db
        from tests.publishing.test_publish import settings_for
        from pathlib import Path

        def dying_writer(rows, split, out):
            out.write(b"PAR1 half a file")
            out.flush()
            os._exit(9)

        formats.write_parquet = dying_writer
        publish(db.connect({str(sqlite_engine.url)!r}), settings_for(Path({str(tmp_path / "pub")!r})))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert any(p.name.startswith(".staging-") for p in (tmp_path / "pub").iterdir())  # it did die mid-way
    assert _visible_state(tmp_path / "pub") == before
    assert Destination((tmp_path / "pub").as_uri()).latest_version() == first.version

    second = publish(sqlite_engine, settings_for(tmp_path / "pub"))
    assert second.status == "published" and second.counts["total"] == 30
    names = sorted(p.name for p in (tmp_path / "pub").iterdir())
    assert names == sorted(["LATEST", first.version, second.version])  # the leftover staging folder is gone


def test_a_failure_before_latest_is_repaired_by_the_next_run(sqlite_engine, tmp_path, monkeypatch):
    add_dataset(sqlite_engine, 10)
    first = publish(sqlite_engine, settings_for(tmp_path / "pub"))
    add_dataset(sqlite_engine, 5, start=10)

    def fail(self, version):
        raise PublishError("simulated crash before LATEST")

    monkeypatch.setattr(Destination, "point_latest", fail)
    with pytest.raises(PublishError):
        publish(sqlite_engine, settings_for(tmp_path / "pub"))
    monkeypatch.undo()
    assert (tmp_path / "pub" / "LATEST").read_text().strip() == first.version

    repaired = publish(sqlite_engine, settings_for(tmp_path / "pub"))
    assert repaired.status == "published" and repaired.version.startswith("v0002-")
    assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == sorted(["LATEST", first.version, repaired.version])


def test_memory_object_storage_with_a_crash_mid_upload(sqlite_engine, monkeypatch):
    root = f"memory://promptmill-test-{uuid.uuid4().hex[:8]}/published"
    fs = fsspec.filesystem("memory")
    add_dataset(sqlite_engine, 20)
    first = publish(sqlite_engine, settings_for(root))
    assert first.uri == f"{root}/{first.version}"
    base = root[len("memory://"):]
    assert fs.cat_file(f"/{base}/LATEST").decode().strip() == first.version
    manifest = json.loads(fs.cat_file(f"/{base}/{first.version}/manifest.json"))
    assert manifest["counts"]["total"] == 20
    assert len(read_jsonl(fs.cat_file(f"/{base}/{first.version}/train.jsonl"))) == manifest["counts"]["train"]

    add_dataset(sqlite_engine, 10, start=20)
    real_put = fs.put_file
    calls = []

    def flaky_put(lpath, rpath, *args, **kwargs):
        calls.append(rpath)
        if len(calls) == 4:
            raise OSError("connection reset by peer")
        return real_put(lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(type(fs), "put_file", lambda self, *a, **k: flaky_put(*a, **k))
    with pytest.raises(PublishError, match="connection reset"):
        publish(sqlite_engine, settings_for(root))
    monkeypatch.undo()
    destination = Destination(root)
    assert destination.latest_version() == first.version  # readers still see the previous publication
    assert [p.version for p in destination.publications()] == [first.version]  # the partial one is not complete

    second = publish(sqlite_engine, settings_for(root))
    assert second.status == "published" and second.counts["total"] == 30
    assert [p.version for p in Destination(root).publications()] == [first.version, second.version]
    assert sorted(fs.ls(f"/{base}/{second.version}", detail=False))[-1].endswith("val_strings.csv")
    assert publish(sqlite_engine, settings_for(root)).status == "unchanged"


def test_file_uri_and_plain_path_are_the_same_destination(sqlite_engine, tmp_path):
    add_dataset(sqlite_engine, 8)
    by_uri = publish(sqlite_engine, settings_for((tmp_path / "pub").as_uri()))
    by_path = publish(sqlite_engine, settings_for(str(tmp_path / "pub")))
    assert by_path.status == "unchanged" and by_path.version == by_uri.version


def test_publishing_through_the_same_memory_and_file_roots_gives_identical_files(sqlite_engine, tmp_path):
    add_dataset(sqlite_engine, 12)
    local = publish(sqlite_engine, settings_for(tmp_path / "pub"))
    root = f"memory://promptmill-test-{uuid.uuid4().hex[:8]}/pub"
    remote = publish(sqlite_engine, settings_for(root))
    assert local.version == remote.version
    destination = Destination(root)
    for path in sorted((tmp_path / "pub" / local.version).iterdir()):
        if path.name != "manifest.json":
            assert destination.read_file(remote.version, path.name) == path.read_bytes(), path.name


def test_unknown_protocol_is_a_clear_error(sqlite_engine, tmp_path):
    add_dataset(sqlite_engine, 2)
    with pytest.raises(PublishError, match="nosuchproto://bucket/x"):
        publish(sqlite_engine, settings_for("nosuchproto://bucket/x"))


def test_redact_uri_drops_credentials():
    assert redact_uri("s3://AKIA:secret@bucket/path?token=x") == "s3://bucket/path"
    assert redact_uri("/plain/path") == "/plain/path"
    assert redact_uri("file:///tmp/x") == "file:///tmp/x"
