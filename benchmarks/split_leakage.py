"""Train/test leakage on the real development exports: the former per-row split against the cluster split.

Ingests the development set's zip into a new SQLite store (`promptmill ingest --profile P`), gives every kept
prompt a synthetic `ok` label (the fake labeling server's deterministic description, inserted directly: no server,
no cost), then publishes:

- old split: every row on the side of the hash of its prompt (the split before the clusters), through the same
  publish() and writers;
- cluster split, all at once: the default now;
- cluster split, in two publications: the rows posted in the first half of the exports, then all of them (the rows
  of the first publication keep their sides; new rows tied to both sides are held out);
- cluster split with --one-per-cluster.

For each: rows, test rows, held out, clusters, the leakage measured exhaustively (the share of test rows with a train
row at normalised indel similarity >= 0.9, every test x train pair compared with rapidfuzz's cdist) and as the
manifest records it (as the LSH finds them), rows left out by --one-per-cluster, and the publish time. Then the
LSH's recall of the near-identical pairs of a sample of published prompts against an exhaustive comparison.

Usage: .venv/bin/python benchmarks/split_leakage.py [--dev ../shared/data/quality-dev] [--profile quality]
The set stays outside the repository (see its README); nothing here depends on it at test time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
# Run as `python benchmarks/split_leakage.py`, Python puts benchmarks/ on sys.path, not the repository root: add the
# root for tests.fake_openai (the synthetic labels).
sys.path.insert(0, str(REPO))

from promptmill.labeling.tables import label_versions, labels  # noqa: E402
from promptmill.publishing import PublishSettings, clusters, publish  # noqa: E402
from promptmill.publishing.formats import read_jsonl  # noqa: E402
from promptmill.publishing.split import SplitPlan, assign_split, split_key_of  # noqa: E402
from promptmill.store import db  # noqa: E402
from promptmill.store.schema import messages, prompts  # noqa: E402
from rapidfuzz import process  # noqa: E402
from rapidfuzz.distance import Indel  # noqa: E402

from tests.fake_openai.server import NO_OBJECT, describe  # noqa: E402

# the module (the package's `publish` attribute is the function): the old split is plugged in as its plan_for
publish_module = importlib.import_module("promptmill.publishing.publish")
DEFAULT_DEV = REPO.parent / "shared" / "data" / "quality-dev"
LABEL_VERSION = "lv-synthetic"
CHUNK = 2_000


def ingest(zip_path: Path, store_url: str, profile: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "promptmill.cli", "ingest", str(zip_path), "--db", store_url,
                          "--profile", profile, "-q", "--json"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"split_leakage.py: ingest failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def kept_prompts(engine) -> list[tuple[int, str, dt.datetime]]:
    query = (sa.select(prompts.c.id, prompts.c.text, messages.c.posted_at)
             .join(messages, messages.c.key == prompts.c.kept_message_key)
             .where(prompts.c.kept.is_(True)).order_by(messages.c.posted_at, prompts.c.id))
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def label(engine, rows: list[tuple[int, str, dt.datetime]]) -> None:
    """A synthetic ok label per prompt: the fake server's description (or _no_object)."""
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        if conn.execute(sa.select(label_versions.c.version).where(label_versions.c.version == LABEL_VERSION)).first() \
                is None:
            conn.execute(sa.insert(label_versions).values(version=LABEL_VERSION, model="synthetic",
                                                          instructions_sha256="0" * 64, created_at=now))
        values = []
        for prompt_id, text, _ in rows:
            description = describe(text)
            no_object = description == NO_OBJECT
            values.append({"prompt_id": prompt_id, "version": LABEL_VERSION, "status": "ok",
                           "description": None if no_object else description, "no_object": no_object,
                           "model": "synthetic", "labeled_at": now})
        for start in range(0, len(values), 5_000):
            conn.execute(sa.insert(labels), values[start:start + 5_000])


def old_plan(rows, settings, recorded=None) -> SplitPlan:
    """The split before the clusters: each row on the side of the hash of its key, nothing held out."""
    return SplitPlan(sides={row.row_id: assign_split(split_key_of(row.prompt, row.description, settings.split_key),
                                                     settings.test_ratio) for row in rows})


def published_sides(root: Path, version: str) -> dict[str, str]:
    folder = root / version
    records = read_jsonl((folder / "train.jsonl").read_bytes()) + read_jsonl((folder / "test.jsonl").read_bytes())
    return {record["prompt"]: record["split"] for record in records}


def exhaustive_leakage(sides: dict[str, str]) -> tuple[int, int]:
    """Test rows with a train row at normalised indel similarity >= 0.9, comparing every test x train pair."""
    test = [clusters.normalise(p) for p, side in sides.items() if side == "test"]
    train = [clusters.normalise(p) for p, side in sides.items() if side == "train"]
    leaking = 0
    for start in range(0, len(test), CHUNK):
        scores = process.cdist(test[start:start + CHUNK], train, scorer=Indel.normalized_similarity,
                               score_cutoff=clusters.THRESHOLD, dtype=np.float64, workers=-1)
        leaking += int((scores >= clusters.THRESHOLD).any(axis=1).sum())
    return leaking, len(test)


def lsh_recall(prompts_: list[str], sample: int, seed: int = 5) -> dict:
    texts = random.Random(seed).sample(prompts_, min(sample, len(prompts_)))
    norms = [clusters.normalise(t) for t in texts]
    truth = set()
    for start in range(0, len(norms), CHUNK):
        scores = process.cdist(norms[start:start + CHUNK], norms, scorer=Indel.normalized_similarity,
                               score_cutoff=clusters.THRESHOLD, dtype=np.float64, workers=-1)
        truth |= {(start + i, j) for i, j in np.argwhere(scores >= clusters.THRESHOLD).tolist() if start + i < j}
    started = time.perf_counter()
    found = {tuple(pair) for pair in clusters.near_identical_pairs(texts).tolist()}
    return {"sample": len(texts), "pairs": len(truth), "found": len(found & truth), "false": len(found - truth),
            "lsh_s": time.perf_counter() - started}


def run_publish(engine, root: Path, *, old: bool = False, **overrides) -> tuple[dict, dict[str, str], float]:
    settings = PublishSettings(out_uri=root.as_uri(), label_version=LABEL_VERSION, username_salt="benchmark",
                               **overrides)
    original = publish_module.plan_for
    if old:
        publish_module.plan_for = old_plan
    try:
        started = time.perf_counter()
        result = publish(engine, settings)
        elapsed = time.perf_counter() - started
    finally:
        publish_module.plan_for = original
    return result.counts, published_sides(root, result.version), elapsed


def measure(name: str, counts: dict, sides: dict[str, str], elapsed: float) -> dict:
    print(f"{name}: measuring the leakage exhaustively ...", file=sys.stderr, flush=True)
    leaking, test_rows = exhaustive_leakage(sides)
    return {"name": name, "rows": len(sides), "test": test_rows, "leaking": leaking,
            "held_out": counts.get("held_out", 0), "clusters": counts.get("clusters", {}),
            "lsh_leakage": counts.get("leakage", {}), "one_per_cluster_removed": counts.get("one_per_cluster_removed",
                                                                                           0),
            "publish_s": elapsed}


def table(results: list[dict]) -> str:
    lines = ["| split | published rows | test rows | test rows with a near-identical train row (exhaustive) "
             "| the same, as the LSH finds them (manifest) | held out | clusters of near-identical prompts "
             "(rows in them; clusters across users) | left out by --one-per-cluster | publish time |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lsh, found = r["lsh_leakage"], r["clusters"]
        lsh_cell = (f"{lsh['test_rows_with_near_identical_train_row']:,} ({lsh['share']:.2%})" if lsh else "")
        cluster_cell = f"{found['clusters']:,} ({found['rows']:,}; {found['cross_user']:,})" if found else ""
        lines.append(
            f"| {r['name']} | {r['rows']:,} | {r['test']:,} | {r['leaking']:,} ({r['leaking'] / max(r['test'], 1):.2%}) "
            f"| {lsh_cell} | {r['held_out']:,} | {cluster_cell} | {r['one_per_cluster_removed']:,} "
            f"| {r['publish_s']:.1f} s |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV, help="the development set's folder")
    parser.add_argument("--profile", default="quality", help="cleaning profile of the ingest (default quality)")
    parser.add_argument("--test-ratio", type=float, default=0.2)
    parser.add_argument("--recall-sample", type=int, default=10_000,
                        help="published prompts compared exhaustively for the LSH's recall (0 = skip)")
    parser.add_argument("--json", action="store_true", help="also print every measurement as JSON")
    args = parser.parse_args()
    zips = sorted(args.dev.glob("*.zip")) if args.dev.is_dir() else []
    if not zips:
        print(f"split_leakage.py: no development exports (*.zip) at {args.dev} (see its README; --dev FOLDER)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="promptmill-split-") as tmp:
        work = Path(tmp)
        store = f"sqlite:///{work / 'store.sqlite'}"
        print(f"ingesting {zips[0].name} (--profile {args.profile}) ...", file=sys.stderr, flush=True)
        report = ingest(zips[0], store, args.profile)
        engine = db.connect(store)
        rows = kept_prompts(engine)
        half = len(rows) // 2
        label(engine, rows[:half])  # the rows posted first: for the publication in two steps
        results = []
        print("publishing ...", file=sys.stderr, flush=True)
        first_counts, first_sides, first_s = run_publish(engine, work / "two-steps", test_ratio=args.test_ratio)
        label(engine, rows[half:])
        results.append(measure("old: hash of each prompt", *run_publish(engine, work / "old", old=True,
                                                                         test_ratio=args.test_ratio)))
        results.append(measure("clusters, one publication", *run_publish(engine, work / "new",
                                                                          test_ratio=args.test_ratio)))
        counts, sides, elapsed = run_publish(engine, work / "two-steps", test_ratio=args.test_ratio)
        moved = sum(1 for prompt, side in first_sides.items() if sides.get(prompt, side) != side)
        results.append(measure("clusters, first half of the rows", first_counts, first_sides, first_s))
        results.append(measure("clusters, then all rows (sticky)", counts, sides, elapsed))
        results.append(measure("clusters, --one-per-cluster", *run_publish(engine, work / "one",
                                                                            test_ratio=args.test_ratio,
                                                                            one_per_cluster=True)))
        old_sides, new_sides = latest_sides(work / "old"), latest_sides(work / "new")
        changed = sum(1 for prompt, side in old_sides.items() if new_sides.get(prompt) not in (None, side))
        recall = lsh_recall(list(new_sides), args.recall_sample) if args.recall_sample else None
        engine.dispose()
    print(f"development exports: {report['messages']:,} messages, {report['kept']:,} kept prompts "
          f"(--profile {args.profile}); every kept prompt labeled ok (synthetic); test ratio {args.test_ratio}")
    print()
    print(table(results))
    print()
    print(f"rows of the first publication that moved in the second: {moved}")
    print(f"rows on another side than the old split put them (the one-time move of an upgrade): {changed:,} of "
          f"{len(new_sides):,}")
    if recall:
        print(f"LSH recall on {recall['sample']:,} published prompts: {recall['found']:,} of {recall['pairs']:,} "
              f"near-identical pairs ({recall['found'] / max(recall['pairs'], 1):.2%}), {recall['false']} false; "
              f"{recall['lsh_s']:.1f} s")
    if args.json:
        print(json.dumps({"results": results, "moved": moved, "changed": changed, "recall": recall}, indent=2,
                         default=str))
    return 0


def latest_sides(root: Path) -> dict[str, str]:
    return published_sides(root, (root / "LATEST").read_text().strip())


if __name__ == "__main__":
    sys.exit(main())
