"""Zip member benchmark: one archive of many tiny exports, ingested end to end through `promptmill ingest`.

Each archive holds N distinct one-message CSV exports (a few hundred bytes each, as a partitioned channel export
zipped up); each is ingested into a new SQLite store with `--no-dedupe` (and, with --dedupe, once more with the
dedupe), in a subprocess, and the table gives members/s. Opening a member used to re-read the archive's whole
central directory (twice per member: hash, then parse), so the time grew with the square of the member count.

Usage: .venv/bin/python benchmarks/zip_members.py [--members 1000 10000] [--dedupe] [--workers N]
                                                  [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.exports.zips import write_many_member_zip  # noqa: E402


def ingest_seconds(archive: Path, store: Path, *, dedupe: bool, workers: int | None, timeout: float) -> float:
    env = dict(os.environ)
    if workers is not None:
        env["PROMPTMILL_INGEST_WORKERS"] = str(workers)
    command = [sys.executable, "-m", "promptmill.cli", "ingest", str(archive), "--json", "-q", "--db",
               f"sqlite:///{store}"]
    if not dedupe:
        command.append("--no-dedupe")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ingest failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    members = int(archive.stem.split("-")[0])
    if report["files_ingested"] != members:
        raise SystemExit(f"{report['files_ingested']} of {members} members ingested: {report}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--dedupe", action="store_true", help="also time an ingest with the dedupe")
    parser.add_argument("--workers", type=int, help="PROMPTMILL_INGEST_WORKERS (default: the settings' default)")
    parser.add_argument("--timeout", type=float, default=3600, help="per ingest, seconds")
    args = parser.parse_args(argv)
    print("| members | zip MB | dedupe | seconds | members/s |")
    print("|---:|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="promptmill-zip-bench-") as tmp:
        for members in args.members:
            archive = write_many_member_zip(Path(tmp) / f"{members}-members.zip", members)
            for dedupe in (False, True) if args.dedupe else (False,):
                store = Path(tmp) / f"{members}-{dedupe}.sqlite"
                seconds = ingest_seconds(archive, store, dedupe=dedupe, workers=args.workers, timeout=args.timeout)
                print(f"| {members:,} | {archive.stat().st_size / 1e6:.1f} | {'yes' if dedupe else 'no'} | "
                      f"{seconds:.1f} | {members / seconds:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
