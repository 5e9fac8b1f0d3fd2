"""Concurrent publishers to one destination (issue #15): real `promptmill publish` processes started at once.

Whatever the interleaving, every run exits 0 (it waited its turn) or 1 with one line, never a traceback;
LATEST names a complete publication; version numbers are unique at the destination and in the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from promptmill.publishing.destination import MANIFEST, VERSION_RE, Destination
from promptmill.publishing.tables import publications

from tests.publishing.conftest import LABEL_VERSION, SALT, add_dataset

PUBLISHERS = 4


def _start(db_url: str, out: Path, ratio: float, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PROMPTMILL_PUBLISH_USERNAME_SALT": SALT, **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "promptmill.cli", "--db", db_url, "publish", "--out", str(out),
         "--test-ratio", str(ratio), "--label-version", LABEL_VERSION, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _check_destination(engine, out: Path) -> list[str]:
    destination = Destination(str(out))
    latest = destination.latest_version()
    assert latest is not None, (out / "LATEST").read_text() if (out / "LATEST").exists() else "no LATEST"
    manifest = destination.read_manifest(latest)
    for name in manifest["files"]:
        assert (out / latest / name).is_file(), f"{latest}/{name} missing"
    assert (out / latest / MANIFEST).is_file()
    versions = [p.version for p in destination.publications()]
    sequences = [VERSION_RE.match(v).group(1) for v in versions]
    assert len(set(sequences)) == len(sequences), versions
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert leftovers == [], leftovers
    with engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.select(publications.c.destination, publications.c.version))]
    assert len(set(stored)) == len(stored), stored
    return versions


def test_concurrent_publishers_serialise(engine, store_url, tmp_path):
    add_dataset(engine, 200)
    out = tmp_path / "pub"
    for round_ in range(3):
        # every run its own username salt (so its own hashes: a published row's side never moves, its hash does),
        # so every run is a new version
        procs = [_start(store_url, out, 0.05 + 0.06 * (round_ * PUBLISHERS + i),
                        {"PROMPTMILL_PUBLISH_USERNAME_SALT": f"{SALT}-{round_}-{i}"}) for i in range(PUBLISHERS)]
        results = [(p.wait(timeout=240), *p.communicate()) for p in procs]
        for code, stdout, stderr in results:
            assert "Traceback" not in stderr, stderr
            assert code == 0, stderr  # each waited its turn and published its own split
            assert json.loads(stdout)["status"] == "published"
        versions = _check_destination(engine, out)
        assert len(versions) == min(PUBLISHERS * (round_ + 1), 10)  # every run a distinct version (retention 10)


def test_a_publisher_that_waits_too_long_exits_1_with_one_line(engine, store_url, tmp_path):
    from promptmill.publishing.publish import publish_lock

    add_dataset(engine, 10)
    out = tmp_path / "pub"
    with publish_lock(engine, Destination(str(out)), timeout_s=5):
        proc = _start(store_url, out, 0.2, {"PROMPTMILL_PUBLISH_LOCK_TIMEOUT_S": "1"})
        code, (stdout, stderr) = proc.wait(timeout=120), proc.communicate()
    assert code == 1 and stdout == ""
    assert stderr.strip().count("\n") == 0 and "another publish" in stderr and str(out) in stderr, stderr
    assert not out.exists() or not (out / "LATEST").exists()
