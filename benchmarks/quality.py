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
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DEV = REPO.parent / "shared" / "data" / "quality-dev"
PROMPTMILL = [sys.executable, "-m", "promptmill.cli"]

# name -> ingest options. The parity row and the token_set row are the configurations of the set's own README
# (the original rules, and the best option of the code before the quality profile).
CONFIGURATIONS: dict[str, list[str]] = {
    "parity (jaro 0.6)": ["--profile", "parity"],
    "parity rules + token_set 0.8": ["--profile", "parity", "--near-dup-metric", "token_set", "--near-dup-threshold",
                                     "0.8"],
    "quality rules + jaro 0.6": ["--profile", "quality", "--near-dup-metric", "jaro", "--near-dup-threshold", "0.6"],
    "quality rules + token_set 0.8": ["--profile", "quality", "--near-dup-metric", "token_set",
                                      "--near-dup-threshold", "0.8"],
    "quality (content_words 0.8)": ["--profile", "quality"],
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
    scores["rules"]["of_them_kept_url_aware"] = _rescued_url_aware(dev, kept_tsv, options)
    return {"kept": report["kept"], "rejected": report["rejected"], "elapsed_s": elapsed, **scores}


def _norm(text: str) -> str:
    return "".join(re.findall(r"[a-z0-9]", text.lower()))  # as score.py compares texts


def _rescued_url_aware(dev: Path, kept_tsv: Path, options: list[str]) -> int:
    """score.py's "usable rejected by parity, kept now", counting a prompt as kept also when its cleaned text is:
    the scorer compares the whole raw prompt, so a prompt whose URL the quality rules removed reads as lost."""
    from promptmill.cleaning import clean

    profile = options[options.index("--profile") + 1] if "--profile" in options else "quality"
    csv.field_size_limit(1 << 30)
    with open(kept_tsv, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t")
        column = next(rows).index("content")
        kept = {_norm(row[column]) for row in rows}
    rescued = 0
    with open(dev / "prompt_usability.tsv", encoding="utf-8") as handle:
        for line in list(handle)[1:]:
            _, parity_verdict, raw, judgement, *_ = line.rstrip("\n").split("\t")
            if judgement == "keep" and parity_verdict != "kept":
                cleaned = clean(raw, profile=profile).text
                rescued += _norm(raw) in kept or (cleaned is not None and _norm(cleaned) in kept)
    return rescued


def row(name: str, m: dict) -> str:
    n, r = m["neardup"], m["rules"]
    return (f"| {name} | {n['precision']:.2f} | {n['recall']:.2f} | {n['f1']:.2f} | {n['distinct_prompts_lost']:.0%} "
            f"| {r['usable_kept']} / {r['usable']} | {r['of_them_kept_now']} ({r['of_them_kept_url_aware']}) / "
            f"{r['usable_rejected_by_parity']} "
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
          "| usable rejected by parity, kept now (URL removed counted) | junk kept | kept prompts |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        print(row(name, results[name]))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
