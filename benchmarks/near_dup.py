"""Near-duplicate metric benchmark: how often each metric/threshold merges a user's retry of a prompt (wanted)
and two unrelated prompts (not wanted). Prompts come from tests.synth's vocabulary and its retry edits
(the same text re-rolled, a modifier added or dropped, a style swapped, the scene changed).

Usage: .venv/bin/python benchmarks/near_dup.py [--pairs 20000] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

# Run as `python benchmarks/near_dup.py`, Python puts benchmarks/ on sys.path, not the repository root: add the
# root so that the test-data generator (tests/synth/) imports as `tests.synth`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from promptmill.similarity import similarity_function  # noqa: E402

from tests.synth import PromptWriter  # noqa: E402

METRICS = {"jaro": (0.6, 0.8, 0.9), "token_set": (0.6, 0.8, 0.9), "indel": (0.6, 0.75, 0.85)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    writer = PromptWriter(random.Random(args.seed))
    retries, unrelated = [], []
    for _ in range(args.pairs):
        base = writer.fresh()
        edited = writer.retry(base)
        if edited != base:  # identical re-submissions are exact duplicates (rule 12), not this rule's job
            retries.append((", ".join(base), ", ".join(edited)))
        unrelated.append((", ".join(writer.fresh()), ", ".join(writer.fresh())))
    print(f"{len(retries):,} edited retries, {len(unrelated):,} unrelated pairs (seed {args.seed})\n")
    print("| metric | threshold | retries merged (wanted) | unrelated merged (false merges) |")
    print("|---|---|---|---|")
    for metric, thresholds in METRICS.items():
        sim = similarity_function(metric)
        for threshold in thresholds:
            hit = sum(sim(a, b) > threshold for a, b in retries) / len(retries)
            false = sum(sim(a, b) > threshold for a, b in unrelated) / len(unrelated)
            mark = " (original)" if (metric, threshold) == ("jaro", 0.6) else ""
            print(f"| {metric}{mark} | {threshold} | {hit:.1%} | {false:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
