"""Dataset quality against human judgement: the hand-judged development set, ingested with each configuration.

For each configuration: a new SQLite store, `promptmill ingest` of the development exports (real August 2022
`!dream` messages), `promptmill export-cleaned`, then the set's own scorer (`score.py KEPT.tsv neardup|rules`).
Prints a Markdown table: near-duplicate precision / recall / F1 and the share of distinct prompts lost, usable
prompts kept, usable prompts the original rules rejected and this configuration keeps, judged junk kept, and the
number of kept prompts.

Usage: .venv/bin/python benchmarks/quality.py [--dev ../shared/data/quality-dev] [--only NAME ...]
The set stays outside the repository (see its README); nothing here depends on it at test time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DEV = REPO.parent / "shared" / "data" / "quality-dev"
PROMPTMILL = [sys.executable, "-m", "promptmill.cli"]

# name -> ingest options; the first two are the figures of the set's own README (today's code)
CONFIGURATIONS: dict[str, list[str]] = {
    "parity": ["--profile", "parity"],
    "improved + token_set 0.8": ["--profile", "improved", "--near-dup-metric", "token_set",
                                 "--near-dup-threshold", "0.8"],
    "improved": ["--profile", "improved"],
    "improved + content_words 0.8": ["--profile", "improved", "--near-dup-metric", "content_words",
                                     "--near-dup-threshold", "0.8"],
}


def _run(args: list[str]) -> str:
    out = subprocess.run([*PROMPTMILL, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"promptmill {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def measure(dev: Path, options: list[str], workdir: Path) -> dict:
    store = f"sqlite:///{workdir / 'store.sqlite'}"
    started = time.perf_counter()
    report = json.loads(_run(["ingest", str(next(dev.glob("*.zip"))), "--db", store, "-q", "--json", *options]))
    elapsed = time.perf_counter() - started
    kept_tsv = workdir / "kept.tsv"
    _run(["export-cleaned", str(kept_tsv), "--db", store, "-q"])
    scores = {}
    for what in ("neardup", "rules"):
        out = subprocess.run([sys.executable, str(dev / "score.py"), str(kept_tsv), what],
                             capture_output=True, text=True, check=True)
        scores[what] = json.loads(out.stdout)
    return {"kept": report["kept"], "rejected": report["rejected"], "elapsed_s": elapsed, **scores}


def row(name: str, m: dict) -> str:
    n, r = m["neardup"], m["rules"]
    return (f"| {name} | {n['precision']:.2f} | {n['recall']:.2f} | {n['f1']:.2f} | {n['distinct_prompts_lost']:.0%} "
            f"| {r['usable_kept']} / {r['usable']} | {r['of_them_kept_now']} / {r['usable_rejected_by_parity']} "
            f"| {r['junk_kept']} / {r['junk']} | {m['kept']:,} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV, help="the development set's folder")
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    parser.add_argument("--json", action="store_true", help="also print every measurement as JSON")
    args = parser.parse_args()
    if not (args.dev / "score.py").exists():
        print(f"quality.py: no development set at {args.dev} (see its README)", file=sys.stderr)
        return 2
    names = args.only or list(CONFIGURATIONS)
    results = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix="promptmill-quality-") as tmp:
            print(f"{name}: ingesting ...", file=sys.stderr, flush=True)
            results[name] = measure(args.dev, CONFIGURATIONS[name], Path(tmp))
    print("| configuration | near-dup precision | recall | F1 | distinct prompts lost | usable kept "
          "| usable rejected by parity, kept now | junk kept | kept prompts |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        print(row(name, results[name]))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
