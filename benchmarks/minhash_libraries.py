"""Which MinHash library finds near-identical prompts (clusters.py): rensa against datasketch, on real prompts.

The prompts: every distinct prompt of the development exports (ingested into a new SQLite store), padded to
--count with one-word edits of them (a word dropped, added or the words shuffled: many more near-identical pairs
than real kept prompts have, a hard case for the candidate count). For each library the same pipeline as
clusters.py (character 3-grams, --bands x --rows min-hashes, band equality, exact verification with rapidfuzz):
the time to sketch, the time of the whole clustering, and the recall of the pairs at normalised indel similarity
>= 0.9 on a sample, against rapidfuzz's exhaustive cdist.

datasketch is not a dependency of promptmill: install it beside to compare
(`.venv/bin/uv pip install --python .venv/bin/python datasketch==2.0.0`).

Usage: .venv/bin/python benchmarks/minhash_libraries.py [--dev ../shared/data/quality-dev] [--count 100000]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from promptmill.publishing import clusters
from rapidfuzz import process
from rapidfuzz.distance import Indel

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DEV = REPO.parent / "shared" / "data" / "quality-dev"


def rensa_signatures(norms: list[str], bands: int, rows: int) -> np.ndarray:
    return clusters.signatures(norms, bands=bands, rows=rows)


def datasketch_signatures(norms: list[str], bands: int, rows: int) -> np.ndarray:
    from datasketch import MinHash

    sketches = MinHash.bulk([[s.encode() for s in clusters.shingles(n)] for n in norms], num_perm=bands * rows,
                            seed=clusters.SEED)
    return np.array([m.hashvalues for m in sketches], dtype=np.uint64)


LIBRARIES = {"rensa": rensa_signatures, "datasketch": datasketch_signatures}


def corpus(dev: Path, count: int, seed: int = 1) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="promptmill-minhash-") as tmp:
        store = Path(tmp) / "store.sqlite"
        subprocess.run([sys.executable, "-m", "promptmill.cli", "ingest", str(next(dev.glob("*.zip"))), "--db",
                        f"sqlite:///{store}", "-q"], check=True, capture_output=True)
        with sqlite3.connect(store) as conn:
            base = [text for (text,) in conn.execute("SELECT text FROM prompts ORDER BY id")]
    rng = random.Random(seed)
    texts = list(base)
    while len(texts) < count:
        words = rng.choice(base).split()
        edit = rng.random()
        if edit < 0.4 and len(words) > 2:
            del words[rng.randrange(len(words))]
        elif edit < 0.8:
            words.insert(rng.randrange(len(words) + 1), rng.choice(rng.choice(base).split() or ["x"]))
        else:
            rng.shuffle(words)
        texts.append(" ".join(words))
    return texts[:count]


def exhaustive(norms: list[str]) -> set[tuple[int, int]]:
    pairs = set()
    for start in range(0, len(norms), 2_000):
        scores = process.cdist(norms[start:start + 2_000], norms, scorer=Indel.normalized_similarity,
                               score_cutoff=clusters.THRESHOLD, dtype=np.float64, workers=-1)
        pairs |= {(start + i, j) for i, j in np.argwhere(scores >= clusters.THRESHOLD).tolist() if start + i < j}
    return pairs


def found(norms: list[str], library: str, bands: int, rows: int) -> set[tuple[int, int]]:
    signature = LIBRARIES[library](norms, bands, rows)
    pairs = clusters.verify(norms, clusters.candidate_pairs(signature, bands=bands, rows=rows))
    return {tuple(p) for p in pairs.tolist()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV, help="the development set's folder")
    parser.add_argument("--count", type=int, default=100_000, help="prompts to cluster (default 100,000)")
    parser.add_argument("--sample", type=int, default=20_000, help="prompts compared exhaustively for recall")
    parser.add_argument("--bands", type=int, default=clusters.BANDS)
    parser.add_argument("--rows", type=int, default=clusters.ROWS)
    args = parser.parse_args()
    if not (args.dev.is_dir() and any(args.dev.glob("*.zip"))):
        print(f"minhash_libraries.py: no development exports (*.zip) at {args.dev} (see its README; --dev FOLDER)",
              file=sys.stderr)
        return 2
    try:
        import datasketch  # noqa: F401
    except ImportError:
        print("minhash_libraries.py: datasketch is not installed (see the docstring)", file=sys.stderr)
        return 2
    texts = corpus(args.dev, args.count)
    norms = [clusters.normalise(t) for t in texts]
    sample = random.Random(5).sample(norms, min(args.sample, len(norms)))
    truth = exhaustive(sample)
    print(f"{len(texts):,} prompts; {args.bands} bands x {args.rows} rows; recall on {len(sample):,} of them "
          f"({len(truth):,} pairs at >= {clusters.THRESHOLD})")
    print("| library | sketch | candidates | whole clustering | recall on the sample |")
    print("|---|---:|---:|---:|---:|")
    for library in LIBRARIES:
        started = time.perf_counter()
        signature = LIBRARIES[library](norms, args.bands, args.rows)
        sketched = time.perf_counter()
        candidates = clusters.candidate_pairs(signature, bands=args.bands, rows=args.rows)
        pairs = clusters.verify(norms, candidates)
        clusters.components(len(norms), pairs)
        done = time.perf_counter()
        hits = found(sample, library, args.bands, args.rows) & truth
        print(f"| {library} | {sketched - started:.1f} s | {len(candidates):,} | {done - started:.1f} s "
              f"| {len(hits) / max(len(truth), 1):.4%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
