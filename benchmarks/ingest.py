"""Ingest benchmark: generated DiscordChatExporter exports -> PostgreSQL, end to end through `promptmill ingest`.

Prints a table (copy it into the README with the machine it ran on). Measures:
  1. messages/s end to end for N messages (both eras, JSON and CSV, many users, near-duplicate bursts),
     partitioned into about --files files, the median of --load-trials runs (each into a new database); peak RSS
     of the ingest process;
  2. a re-run over the already-ingested files (seconds per 1,000 files; the median of --trials runs);
  3. the incremental cost: 10,000 new messages into the full store vs into an empty store, each case the median
     of --trials runs, every run on its own copy of the full store (CREATE DATABASE ... TEMPLATE);
  4. peak RSS while ingesting one single large JSON export (--big-json-mb);
  5. the original notebook's algorithm (tests/reference/notebook.py, faithful for pandas 3) against promptmill
     on the same slash-era CSV messages (--notebook-messages).

Usage: .venv/bin/python benchmarks/ingest.py [--messages 1000000] [--files 1000] [--big-json-mb 1000]
       [--notebook-messages 100000] [--quick]
Needs PostgreSQL (PROMPTMILL_BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/postgres); creates and
drops throwaway databases. Each timed run starts after a CHECKPOINT (when the role may run one), so that it does
not pay for flushing what the run before it wrote; on a 2-core VM single runs of the same work vary by 20-50 %.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

# Run as `python benchmarks/ingest.py`, Python puts benchmarks/ on sys.path, not the repository root: add the root
# so that the test-data generator (tests/synth/) imports as `tests.synth`.
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.synth import SynthConfig, write_exports  # noqa: E402

PROMPTMILL = [sys.executable, "-m", "promptmill.cli"]


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    """Run a command; return (wall seconds, peak RSS in MB of that very process, stdout)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        # wait4 reports the rusage of this child alone (RUSAGE_CHILDREN would be a running maximum)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err.read()[-4000:]}")
        return elapsed, usage.ru_maxrss // 1024, out.read()


# The cleaning profile of every timed ingest (--profile): its near-duplicate metric differs (quality: content_words)
PROFILE = ["--profile", "quality"]


def ingest(url: str, path: Path, profile: list[str] | None = None) -> tuple[float, int, dict]:
    options = PROFILE if profile is None else profile
    elapsed, peak, out = run_measured([*PROMPTMILL, "-q", "ingest", str(path), "--json", "--db", url, *options])
    return elapsed, peak, json.loads(out)


class Database:
    def __init__(self, server_url: str):
        self.admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
        self.server_url = server_url
        self.names: list[str] = []

    def new(self, template_url: str | None = None) -> str:
        """A new empty database, or a copy of the one at ``template_url`` (which must have no connections)."""
        name = f"pm_bench_{secrets.token_hex(4)}"
        copy = ""
        if template_url is not None:
            # FILE_COPY: a file-level copy, instead of writing the whole store through the WAL
            copy = f' TEMPLATE "{sa.engine.make_url(template_url).database}" STRATEGY = FILE_COPY'
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
        self.names.append(name)
        return sa.engine.make_url(self.server_url).set(database=name).render_as_string(hide_password=False)

    def checkpoint(self) -> None:
        """Flush what earlier runs wrote, so that the next timed run does not pay for it (superuser only)."""
        try:
            with self.admin.connect() as conn:
                conn.execute(sa.text("CHECKPOINT"))
        except sa.exc.DBAPIError:
            pass

    def drop(self, url: str) -> None:
        name = sa.engine.make_url(url).database
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.names.remove(name)

    def drop_all(self) -> None:
        with self.admin.connect() as conn:
            for name in self.names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def generate(out: Path, messages: int, files: int, seed: int, first_channel: int = 1, start=None) -> float:
    started = time.perf_counter()
    channels = 8
    per_format = max(1, messages // 2)
    for fmt, era, offset in (("json", "mixed", 0), ("csv", "slash", 40)):
        cfg = SynthConfig(
            messages=per_format,
            seed=seed + offset,
            channels=channels // 2,
            users=max(50, messages // 200),
            era=era,
            formats=(fmt,),
            partition_size=max(100, messages // max(files, 1)),
            first_channel=first_channel + offset,
            start=start,
        )
        write_exports(out / fmt, cfg)
    return time.perf_counter() - started


def increment(dbs: Database, store_url: str, path: Path, trials: int) -> tuple[float, float, list[float]]:
    """Median seconds to ingest ``path`` into a copy of the store and into an empty store; the trials' ratios."""
    full: list[float] = []
    empty: list[float] = []
    for _ in range(trials):
        copy = dbs.new(template_url=store_url)
        dbs.checkpoint()
        full.append(ingest(copy, path)[0])
        dbs.drop(copy)
        fresh = dbs.new()
        dbs.checkpoint()
        empty.append(ingest(fresh, path)[0])
        dbs.drop(fresh)
    return statistics.median(full), statistics.median(empty), [f / e for f, e in zip(full, empty, strict=True)]


def ratio_row(full_s: float, empty_s: float, ratios: list[float]) -> str:
    trials = ", ".join(f"{r:.2f}" for r in ratios)
    return f"{full_s:.2f} s / {empty_s:.2f} s = {full_s / empty_s:.2f}x (trials: {trials})"


def count_files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def notebook_vs_promptmill(url: str, workdir: Path, messages: int) -> tuple[float, float, int, int]:
    import pandas as pd

    from tests.reference.notebook import clean_like_notebook

    cfg = SynthConfig(messages=messages, seed=99, channels=1, users=max(50, messages // 200), era="slash", formats=("csv",))
    folder = workdir / "notebook"
    paths = write_exports(folder, cfg)
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    df.columns = [c.lower() for c in df.columns]
    started = time.perf_counter()
    result = clean_like_notebook(df)
    notebook_s = time.perf_counter() - started
    elapsed, _, report = ingest(url, folder, ["--profile", "parity"])  # the notebook's rules, to compare
    return notebook_s, elapsed, len(result), report["kept"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--big-json-mb", type=int, default=1000)
    parser.add_argument("--notebook-messages", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=5, help="runs of the re-run and increment cases (median)")
    parser.add_argument("--load-trials", type=int, default=3, help="runs of the first load (median)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--profile", choices=("quality", "parity"), default="quality",
                        help="cleaning profile of the timed ingests (the notebook comparison always uses parity)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files and databases")
    args = parser.parse_args(argv)
    PROFILE[:] = ["--profile", args.profile]
    if args.quick:
        args.messages, args.files, args.big_json_mb, args.notebook_messages = 20_000, 100, 20, 5_000
        args.load_trials = 1

    server = os.environ.get("PROMPTMILL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    dbs = Database(server)
    workdir = Path(tempfile.mkdtemp(prefix="promptmill-bench-"))
    rows: list[tuple[str, str, str]] = []
    try:
        data = workdir / "history"
        gen_s = generate(data, args.messages, args.files, seed=1)
        nfiles = count_files(data)
        size_mb = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) / 1e6
        print(f"generated {args.messages:,} messages in {nfiles} files ({size_mb:,.0f} MB) in {gen_s:.0f}s", file=sys.stderr)

        # The first load, --load-trials times, each into a new database: the median, and every run. Each run starts
        # after the generated files are on disk and a CHECKPOINT, so it pays neither for the generator's writes nor
        # for the previous run's (single runs of the same load varied by 15-20 % on the 2-core VM).
        os.sync()
        loads: list[tuple[float, int, dict, str]] = []
        for trial in range(args.load_trials):
            url = dbs.new()
            dbs.checkpoint()
            loads.append((*ingest(url, data), url))
            if trial < args.load_trials - 1:
                dbs.drop(url)
        elapsed, peak, report, _ = sorted(loads, key=lambda load: load[0])[len(loads) // 2]
        url = loads[-1][3]  # the store the rest of the benchmark builds on
        rate = report["messages"] / elapsed
        runs = ", ".join(f"{load[0]:.1f}" for load in loads)
        rows.append((f"ingest {report['messages']:,} messages ({nfiles} files, {size_mb:,.0f} MB) into PostgreSQL "
                     f"(median of {len(loads)})",
                     f"{elapsed:,.1f} s = {rate:,.0f} messages/s (runs: {runs} s)", ">= 25,000 messages/s"))
        rows.append(("  peak RSS of that ingest (the largest of the runs)", f"{max(load[1] for load in loads)} MB", ""))

        reruns = []
        for _ in range(args.trials):
            dbs.checkpoint()
            elapsed, _, report2 = ingest(url, data)
            assert report2["files_ingested"] == 0, report2
            reruns.append(elapsed)
        elapsed = statistics.median(reruns)
        rows.append((f"re-run over the {nfiles} already-ingested files (median of {args.trials})",
                     f"{elapsed:.2f} s = {elapsed / nfiles * 1000:.2f} s per 1,000 files", "< 2 s per 1,000 files"))

        extra = workdir / "extra"
        generate(extra, 10_000, 10, seed=777, first_channel=200)
        rows.append((f"add 10,000 messages to the full store / to an empty store (median of {args.trials})",
                     ratio_row(*increment(dbs, url, extra, args.trials)), "<= 2x"))
        rows.append(("  (new channels' history, in the same hours as the stored messages of the same users)", "", ""))
        ingest(url, extra)  # the store holds that history too from here on, as it would in production
        # The daily case: the next export of the same channels, after everything stored.
        # no pooled connection may stay open: the store is copied as a template below
        with sa.create_engine(url, poolclass=sa.pool.NullPool).connect() as conn:
            last = conn.execute(sa.text("SELECT MAX(posted_at) FROM messages")).scalar()
        next_day = (last + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        daily = workdir / "daily"
        generate(daily, 10_000, 10, seed=778, start=next_day)
        rows.append((f"add the next day's 10,000 messages of the same channels: full store / empty store "
                     f"(median of {args.trials})", ratio_row(*increment(dbs, url, daily, args.trials)), "<= 2x"))

        big = workdir / "big"
        target = args.big_json_mb * 1_000_000
        probe = workdir / "probe"
        write_exports(probe, SynthConfig(messages=20_000, seed=5, channels=1, era="mixed"))
        per_message = sum(p.stat().st_size for p in probe.rglob("*.json")) / 20_000
        n_big = int(target / per_message)
        write_exports(big, SynthConfig(messages=n_big, seed=6, channels=1, era="mixed", users=5000))
        big_mb = sum(p.stat().st_size for p in big.rglob("*.json")) / 1e6
        elapsed, peak, report = ingest(dbs.new(), big)
        rows.append((f"one {big_mb:,.0f} MB JSON export ({report['messages']:,} messages)",
                     f"peak RSS {peak} MB, {report['messages'] / elapsed:,.0f} messages/s", "< 500 MB"))
        shutil.rmtree(big, ignore_errors=True)

        nb_s, pm_s, nb_rows, pm_rows = notebook_vs_promptmill(dbs.new(), workdir, args.notebook_messages)
        rows.append((f"original notebook algorithm on {args.notebook_messages:,} slash-era CSV messages",
                     f"{nb_s:,.1f} s ({nb_rows:,} prompts)", ""))
        rows.append(("promptmill ingest of the same messages into PostgreSQL",
                     f"{pm_s:,.1f} s ({pm_rows:,} prompts), {nb_s / pm_s:,.1f}x faster", "same prompts"))
    finally:
        if not args.keep:
            dbs.drop_all()
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nmachine: {platform.node()} | {os.cpu_count()} cores | {platform.processor() or platform.machine()} | "
          f"Python {platform.python_version()} | profile {PROFILE[1]}")
    width = max(len(r[0]) for r in rows)
    print(f"| {'measurement':<{width}} | result | target |")
    print(f"|{'-' * (width + 2)}|--------|--------|")
    for what, result, target in rows:
        print(f"| {what:<{width}} | {result} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
