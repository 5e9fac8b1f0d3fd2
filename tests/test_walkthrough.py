"""The README's getting-started walk-through, followed literally (issue #20): its promptmill lines run as written, in a
fresh folder, on exports made from the bundled samples' JSON, with the label step against the local fake server set
up as the local model the README names. The block is the one after the README's `walkthrough` marker."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from tests.fake_openai.server import FakeOpenAI

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "include" / "promptmill" / "samples" / "landing"


def walkthrough_lines() -> list[str]:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:[^\n]*-->\n```bash\n(.*?)```", readme, re.S)
    assert block, "the README lost its walk-through block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()
            and not line.lstrip().startswith("#")]


def test_the_readme_walkthrough_as_written(tmp_path):
    lines = walkthrough_lines()
    assert [line.split()[0] for line in lines if not line.startswith("export ")] == [".venv/bin/promptmill"] * 5
    work = tmp_path / "me"
    (work / "exports").mkdir(parents=True)
    (work / ".venv").symlink_to(REPO / ".venv")
    for export in SAMPLES.rglob("*.json"):  # the user's own exports: the samples' JSON files
        shutil.copy(export, work / "exports" / export.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMPTMILL_", "OPENAI_"))}
    env["PROMPTMILL_DATA_DIR"] = str(work / "data")  # what "data/" is in a checkout
    model = next(line for line in lines if "PROMPTMILL_LABEL_MODEL=" in line).split("=", 1)[1]
    server = FakeOpenAI(api_key=None, models=(model,)).start()
    try:
        outputs = []
        for line in lines:
            if line.startswith("export "):
                name, _, _value = line[len("export "):].partition("=")
                env[name] = server.base_url if name == "OPENAI_BASE_URL" else _value  # the local model: the fake
                continue
            done = subprocess.run(shlex.split(line), cwd=work, env=env, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, (line, done.stderr[-2000:])
            outputs.append(done.stdout)
    finally:
        server.stop()
    ingest, status, estimate, label, publish = outputs
    assert "ingested" in ingest and f"store: sqlite:///{work / 'data' / 'promptmill.sqlite'}" in status
    assert "prompts pending" in estimate and "labeled" in label and "0 failed" in label
    assert publish.startswith("published: v0001-")
    latest = (work / "data" / "published" / "LATEST").read_text().strip()
    for name in ("result.csv", "train_strings.txt", "train_strings.csv", "val_strings.csv", "train.jsonl",
                 "train.parquet", "manifest.json", "README.md"):
        assert (work / "data" / "published" / latest / name).stat().st_size > 0, name
