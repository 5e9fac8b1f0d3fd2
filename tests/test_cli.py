"""The `promptmill` command as users and other tools call it (a real subprocess, real stores)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.exports.zips import write_many_member_zip, write_zip_raw_names
from tests.helpers import slash, write_csv_export


def run(*args, env_extra=None, timeout=300):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "promptmill.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
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
        [slash("ann", "a cat on a mat, 4 k", 0, seq=1), slash("bob", "a house by a lake", 2, seq=2),
         slash("bob", "a cat on a mat, 4 k", 5, seq=3)],
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
    assert [r[1] for r in rows[1:]] == ["a cat on a mat, 4k", "a house by a lake"]
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


def test_ingest_of_a_zip_of_10000_members_is_linear(sqlite_url, tmp_path):
    """Issue #15: each member re-read the archive's whole central directory (twice), so 10,000 tiny members
    took 9 minutes here (19 members/s). ~36 s now; over 120 s the subprocess times out and the test fails."""
    archive = write_many_member_zip(tmp_path / "many.zip", 10_000)
    out = run("ingest", str(archive), "--json", "--no-dedupe", "-q", "--db", sqlite_url, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert (report["files_ingested"], report["messages"], report["files_quarantined"]) == (10_000, 10_000, [])


def test_mistakes_with_paths_are_one_line_exit_1_and_create_nothing(tmp_path):
    """A folder that does not exist is an error, never created (issue #15, 7)."""
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    cases = [
        (("export-cleaned", str(tmp_path / "no" / "such" / "out.tsv"), "--db", store), "no such folder"),
        (("status", "--db", f"sqlite:///{tmp_path / 'no' / 'such' / 'x.sqlite'}"), "does not exist"),
        (("status", "--db", "sqlite://tmp/x.sqlite"), "invalid SQLite URL"),
    ]
    for args, reason in cases:
        out = subprocess.run([sys.executable, "-m", "promptmill.cli", *args], capture_output=True, text=True,
                             cwd=tmp_path, timeout=120)
        assert out.returncode == 1, (args, out.stderr)
        assert out.stderr.count("\n") == 1 and reason in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert out.stdout == ""
    created = sorted(p.name for p in tmp_path.iterdir())
    assert created == ["store.sqlite", "store.sqlite.migrate.lock"]  # no "no" folder, no stray "tmp" folder


def test_export_cleaned_into_a_full_disk_leaves_nothing_behind(tmp_path):
    landing = tmp_path / "landing"
    write_csv_export(landing / "Stable Diffusion - Bots - dreambot-1 [101].csv",
                     [slash("alice", f"a red fox number {i}", minutes=i * 90) for i in range(300)])
    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    assert run("ingest", str(landing), "--db", db, "-q").returncode == 0
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f"mount -t tmpfs -o size=8k none {disk} && "
              f"{sys.executable} -m promptmill.cli export-cleaned {disk}/out.tsv --db {db}; "
              f"echo rc=$?; ls -A {disk}")
    out = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines() == ["rc=1"], out  # nothing left in the folder, not even the temporary file
    assert out.stderr.count("\n") == 1 and "No space left on device" in out.stderr and "Traceback" not in out.stderr


def test_exit_codes_are_documented_and_bad_values_are_usage_errors(tmp_path):
    assert "exit codes: 0 success; 1 a runtime error" in run("--help").stdout
    db = f"sqlite:///{tmp_path / 'store.sqlite'}"
    out = run("publish", "--db", db, "--test-ratio", "1.5")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "test_ratio" in out.stderr
    out = run("status", "--db", db, env_extra={"PROMPTMILL_INGEST_WORKERS": "many"})
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "ingest_workers" in out.stderr


def test_a_mistyped_path_exits_1_and_records_nothing(tmp_path):
    """Issue #20.3: a mistyped path was recorded as a quarantined file and the command exited 0."""
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    out = run("ingest", str(tmp_path / "exprots"), "--db", store)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"promptmill ingest: {tmp_path / 'exprots'}: no such file or directory"]
    assert not (tmp_path / "store.sqlite").exists()  # nothing recorded, not even a store


def test_a_missing_path_beside_real_ones_is_reported_and_the_rest_ingested(tmp_path):
    landing = tmp_path / "landing"
    write_csv_export(landing / "dreambot [7].csv", [slash("ann", "a red fox in the snow", 0, seq=1)])
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    out = run("ingest", str(landing), str(tmp_path / "typo"), "--db", store, "--json")
    assert out.returncode == 1
    assert f"{tmp_path / 'typo'}: no such file or directory" in out.stderr
    report = json.loads(out.stdout)
    assert (report["files_ingested"], report["files_quarantined"]) == (1, [])


def test_a_folder_with_nothing_to_ingest_says_what_it_found(tmp_path):
    """Issue #20.3: a folder of exports promptmill cannot read said `files: 0 seen` and exited 0."""
    exports = tmp_path / "exports"
    exports.mkdir()
    for n in range(12):
        (exports / f"Stable Diffusion - dream-{n} [10{n}].pdf").write_text("%PDF-1.4")
    (exports / "notes.md").write_text("x")
    out = run("ingest", str(exports), "--db", f"sqlite:///{tmp_path / 'store.sqlite'}")
    assert out.returncode == 1
    assert "12 .pdf files: not a DiscordChatExporter format; export with -f Json" in out.stderr
    assert "1 .md file" in out.stderr


def test_the_demo_has_its_own_store_and_destination(tmp_path):
    """Issue #20.2: the demo's synthetic samples landed in the default store, so a user's first publish shipped
    synthetic prompts."""
    user_store = tmp_path / "mine.sqlite"
    env = {"PROMPTMILL_DATA_DIR": str(tmp_path / "data"), "PROMPTMILL_DATABASE_URL": f"sqlite:///{user_store}",
           "PROMPTMILL_PUBLISH_OUT_URI": str(tmp_path / "my-published"), "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    out = run("demo", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert f"demo store: sqlite:///{tmp_path / 'data' / 'demo' / 'promptmill.sqlite'}" in out.stdout
    assert (tmp_path / "data" / "demo" / "promptmill.sqlite").exists()
    assert not user_store.exists() and not (tmp_path / "my-published").exists()
    status = run("status", "--json", env_extra=env)
    assert json.loads(status.stdout)["messages"] == 0  # the user's store: nothing of the demo's


def test_every_command_has_a_description_an_example_and_documented_options():
    """Issue #20.5: several commands had no description, options no help, defaults shown inconsistently."""
    import argparse

    from promptmill.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"ingest", "dedupe", "reprocess", "status", "demo", "label", "estimate", "publish", "audit",
            "export-cleaned", "evaluate-labels"} <= set(commands)
    for name, command in commands.items():
        assert command.description and "example" in (command.epilog or ""), name
        assert not command.allow_abbrev, name
        for action in command._actions:
            if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
                continue
            assert action.help, (name, action.dest)
            if action.option_strings and action.dest not in ("json", "quiet", "gold", "retry_failed", "sample",
                                                             "seed", "base_url", "no_dedupe", "full", "limit"):
                assert "default:" in action.help, (name, action.dest)
    label_help = " ".join(commands["label"].format_help().split())
    assert "OPENAI_API_KEY" in label_help and "OPENAI_BASE_URL" in label_help and "gpt-6-luna" in label_help
    assert "env PROMPTMILL_LABEL_MAX_USD" in label_help


def test_version_and_no_abbreviated_options():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("promptmill ")
    out = run("ingest", "x", "--no-dedup")
    assert out.returncode == 2 and "unrecognized arguments: --no-dedup" in out.stderr


def test_output_says_each_thing_once_in_its_place(tmp_path):
    """Issue #20.6: a quarantined file went to stdout and stderr (and -q kept it); the salt warning came twice per
    publish with two prefixes, even when nothing was published."""
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x [1].json").write_text('{"guild":')
    store = f"sqlite:///{tmp_path / 'store.sqlite'}"
    out = run("ingest", str(bad), "--db", store, "-q")
    assert out.stdout.count("quarantined: ") == 1 and out.stderr == ""
    out = run("ingest", str(bad), "--db", store)
    assert "quarantined" not in out.stderr.replace("1 quarantined", "")  # already known: skipped, said once
    env = {"PROMPTMILL_PUBLISH_USERNAME_SALT": "", "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""}
    out = run("publish", "--db", store, "--out", str(tmp_path / "pub"), env_extra=env)
    assert "USERNAME_SALT" not in out.stderr  # nothing published: no usernames written, no warning
