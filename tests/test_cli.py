"""The `promptmill` command as users and other tools call it (a real subprocess, real stores)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.exports.zips import write_zip_raw_names
from tests.helpers import slash, write_csv_export


def run(*args, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "promptmill.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_usage_errors_exit_2_with_one_line():
    out = run("frobnicate")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "invalid choice" in out.stderr
    out = run("ingest")
    assert out.returncode == 2 and "PATH" in out.stderr


def test_unreachable_database_is_one_clear_line_without_password():
    out = run("status", "--db", "postgresql://alice:s3cret@127.0.0.1:9/nowhere")
    assert out.returncode == 1
    assert "s3cret" not in out.stderr and "alice:***@127.0.0.1:9/nowhere" in out.stderr
    assert "Traceback" not in out.stderr


def test_ingest_json_status_and_export_cleaned(store_url, tmp_path):
    landing = tmp_path / "landing"
    write_csv_export(
        landing / "Stable Diffusion - Bots - dreambot-1 [101].csv",
        [slash("ann", "a cat, 4 k", 0, seq=1), slash("bob", "a house by a lake", 2, seq=2), slash("bob", "a cat, 4 k", 5, seq=3)],
    )
    (landing / "junk [9].json").write_text("{", encoding="utf-8")
    out = run("ingest", str(landing), "--json", "--db", store_url)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert set(report) >= {"files_seen", "files_ingested", "files_skipped", "files_quarantined", "messages",
                           "generations", "kept", "rejected", "elapsed_s"}
    assert report["files_ingested"] == 1 and report["messages"] == 3 and report["kept"] == 2
    assert report["rejected"] == {"duplicate": 1}
    assert report["files_quarantined"][0]["path"].endswith("junk [9].json")

    out = run("status", "--json", "--db", store_url)
    status = json.loads(out.stdout)
    assert {k: status[k] for k in ("messages", "generations", "kept", "near_duplicates", "unique_prompts")} == {
        "messages": 3, "generations": 3, "kept": 2, "near_duplicates": 0, "unique_prompts": 2,
    }

    tsv = tmp_path / "cleaned_discord_prompts.tsv"
    out = run("export-cleaned", str(tsv), "--db", store_url)
    assert out.returncode == 0, out.stderr
    with open(tsv, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert rows[0] == ["", "content", "attachments", "username"]
    assert [r[1] for r in rows[1:]] == ["a cat, 4k", "a house by a lake"]
    assert [r[3] for r in rows[1:]] == ["ann", "bob"]
    assert rows[1][0] == "0" and rows[1][2].startswith("https://cdn.discordapp.com/")


def test_ingest_of_names_that_are_not_utf8_reports_them_escaped_and_a_rerun_skips_them(store_url, tmp_path):
    """Issue #15: a file name in another locale's bytes aborted the whole run with a UnicodeEncodeError."""
    landing = tmp_path / "landing"
    write_csv_export(landing / "good [101].csv", [slash("ann", "a cat", 0, seq=1)])
    root = os.fsencode(landing)
    write_csv_export(Path(os.fsdecode(root + b"/caf\xe9 [123].csv")), [slash("bob", "a dog", 0, seq=2)])
    os.mkdir(root + b"/d\xfcr")
    write_csv_export(Path(os.fsdecode(root + b"/d\xfcr/x [124].csv")), [slash("cy", "a frog", 0, seq=3)])
    member = (landing / "good [101].csv").read_bytes().replace(b"a cat", b"an owl")
    write_zip_raw_names(landing / "dump.zip", {b"\xe0 la carte [125].csv": member})
    write_zip_raw_names(landing / "bad.zip", {b"na\xefve [126].csv": member}, utf8_flag=True)  # a lying flag
    explicit = root + b"/caf\xe9 [123].csv"  # also given on the command line, as bytes
    out = run("ingest", str(landing), os.fsdecode(explicit), "--json", "--db", store_url)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["files_ingested"], report["messages"]) == (4, 4)
    assert [(q["path"], q["reason"].split(": ")[1]) for q in report["files_quarantined"]] == [
        (f"{landing}/bad.zip", "corrupt or unreadable zip archive")]
    assert "Traceback" not in out.stderr and "\\udc" not in out.stderr  # no surrogate printed as such
    again = run("ingest", str(landing), "--json", "--db", store_url)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["files_seen"], report["files_ingested"], report["files_skipped"]) == (5, 0, 4)
