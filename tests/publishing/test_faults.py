"""Publishing onto a destination that fails: read-only, full (real tmpfs mounts in a private mount namespace made
with `unshare`, so no root is needed and nothing outlives the test). One line and exit 1; the previous
publication stays complete and current (issue #15, 7)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from tests.publishing.conftest import LABEL_VERSION, SALT, add_dataset

_LIST_DESTINATION = """
import json, os, sys
root = sys.argv[1]
latest = open(os.path.join(root, "LATEST")).read().strip() if os.path.exists(os.path.join(root, "LATEST")) else None
manifest = json.load(open(os.path.join(root, latest, "manifest.json"))) if latest else {}
sizes = {name: os.path.getsize(os.path.join(root, latest, name)) for name in manifest.get("files", {})}
print(json.dumps({"names": sorted(os.listdir(root)), "latest": latest,
                  "intact": all(sizes[n] == info["bytes"] for n, info in manifest.get("files", {}).items())}))
"""


def _publish_command(store_url: str, out: Path, ratio: float) -> str:
    return shlex.join([sys.executable, "-m", "promptmill.cli", "--db", store_url, "-q", "publish", "--out", str(out),
                       "--test-ratio", str(ratio), "--label-version", LABEL_VERSION])


def _in_namespace(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROMPTMILL_PUBLISH_USERNAME_SALT": SALT}
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env=env)


def test_a_read_only_destination_is_one_line(engine, store_url, tmp_path):
    add_dataset(engine, 10)
    out = tmp_path / "pub"
    out.mkdir()
    result = _in_namespace(f"mount -t tmpfs -o ro none {out} && {_publish_command(store_url, out, 0.2)}; echo rc=$?")
    assert result.stdout.strip() == "rc=1", result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"promptmill: error: cannot publish to {out}: Read-only file system"), result.stderr


def test_a_full_disk_keeps_the_previous_publication_current(engine, store_url, tmp_path):
    add_dataset(engine, 80)
    probe = tmp_path / "probe"
    probe_run = _in_namespace(_publish_command(store_url, probe, 0.2))
    assert probe_run.returncode == 0, probe_run.stderr
    one_version = sum(p.stat().st_size for p in probe.rglob("*") if p.is_file())
    out = tmp_path / "pub"
    out.mkdir()
    size_kb = (one_version * 3 // 2) // 1024 + 24  # room for one publication (and its files' blocks), not two
    script = (f"mount -t tmpfs -o size={size_kb}k none {out} && "
              f"{_publish_command(store_url, out, 0.2)}; echo rc=$?; "
              f"{_publish_command(store_url, out, 0.35)}; echo rc=$?; "
              f"{shlex.join([sys.executable, '-c', _LIST_DESTINATION, str(out)])}")
    result = _in_namespace(script)
    lines = result.stdout.strip().splitlines()
    assert [line for line in lines if line.startswith("rc=")] == ["rc=0", "rc=1"], result
    assert result.stderr.count("\n") == 1 and "No space left on device" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    state = json.loads(lines[-1])
    assert state["latest"].startswith("v0001-") and state["intact"]
    assert state["names"] == ["LATEST", state["latest"]]  # no half-written version, no staging folder
