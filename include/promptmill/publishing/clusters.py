"""Near-identical prompts across users, channels and time, and their clusters.

Two prompts are near-identical when the normalised indel similarity of their normalised texts (NFKC, case folded,
runs of spaces as one space: :func:`normalise`) is at least :data:`THRESHOLD` (rapidfuzz's
``Indel.normalized_similarity``: 1 - (insertions + deletions) / (both lengths)), e.g. "A hydroelectric dam on
the surface of Pluto, highly detailed matte painting" and the same text plus ", full color" (0.93).

Comparing every pair is quadratic (25,000 prompts: 90 s on two cores), so candidates come from MinHash LSH
(rensa, pinned: another version may hash differently): each text's character 3-grams are sketched with
:data:`PERMUTATIONS` min-hashes cut into :data:`BANDS` bands of :data:`ROWS`; two texts equal on a whole band are
candidates, and every candidate is verified exactly. The LSH can miss a pair whose 3-grams differ too much, it
never adds one: measured recall of the pairs at >= 0.9, against an exhaustive comparison, 100 % of 498 pairs in
10,000 published prompts of the development exports, 100 % of 7,923 in 20,000 of a denser set
(benchmarks/split_leakage.py, benchmarks/minhash_libraries.py). The clusters are the connected components of the
verified pairs.

Everything here is a pure function of the texts, in any order: rensa's hashes are seeded, not Python's randomised
``hash``, so the same texts give the same pairs in every process.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import rensa
from rapidfuzz import process
from rapidfuzz.distance import Indel

THRESHOLD = 0.9
SHINGLE = 3  # characters per shingle
BANDS = 32
ROWS = 4
PERMUTATIONS = BANDS * ROWS
SEED = 17  # part of the format: another seed finds (almost) the same pairs, not exactly the same

_SPACES = re.compile(r"\s+")
_MIX = np.uint64(0x9E3779B97F4A7C15)


def normalise(text: str) -> str:
    """What near-identical compares: NFKC, case folded, runs of whitespace as one space, no outer spaces."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip().casefold()


def shingles(norm: str) -> list[str]:
    """The character 3-grams of a normalised text (a shorter text is its own single shingle)."""
    if len(norm) <= SHINGLE:
        return [norm]
    return [norm[i : i + SHINGLE] for i in range(len(norm) - SHINGLE + 1)]


def similarity(a: str, b: str) -> float:
    """The exact test, on texts already normalised."""
    return Indel.normalized_similarity(a, b)


def signatures(norms: Sequence[str], *, bands: int = BANDS, rows: int = ROWS, seed: int = SEED) -> np.ndarray:
    """The MinHash signatures of normalised texts: one row of ``bands * rows`` uint32 per text."""
    if not norms:
        return np.zeros((0, bands * rows), dtype=np.uint32)
    matrix = rensa.RMinHash.digest_matrix_from_token_sets([shingles(n) for n in norms], bands * rows, seed)
    return np.array(matrix.to_rows(), dtype=np.uint32).reshape(len(norms), bands * rows)


def _pairs_within_runs(order: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Every pair of members of each run ``order[start:start + size]`` (sizes >= 2), as (i, j) with i < j."""
    # position p of a run of size m is paired with the m - 1 - k later positions (k its rank in the run)
    rank_in_run = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    position = np.repeat(starts, sizes) + rank_in_run
    later = np.repeat(sizes, sizes) - 1 - rank_in_run
    first = np.repeat(position, later)
    offset = np.arange(later.sum()) - np.repeat(np.cumsum(later) - later, later) + 1
    a, b = order[first], order[first + offset]
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)


def _band_keys(signature: np.ndarray, band: int, rows: int) -> np.ndarray:
    part = signature[:, band * rows : (band + 1) * rows].astype(np.uint64)
    key = np.zeros(signature.shape[0], dtype=np.uint64)
    for column in range(rows):
        key = key * _MIX + part[:, column]  # wraps modulo 2**64: a hash of the band
    return key


def _band_pairs(key: np.ndarray) -> np.ndarray:
    """Pairs (i, j), i < j, of rows with the same key."""
    order = np.argsort(key, kind="stable")
    sorted_keys = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(key)])
    runs = sizes > 1
    if not runs.any():
        return np.zeros((0, 2), dtype=np.int64)
    return _pairs_within_runs(order, starts[runs], sizes[runs]).astype(np.int64)


def candidate_pairs(signature: np.ndarray, *, bands: int = BANDS, rows: int = ROWS) -> np.ndarray:
    """Every pair (i, j), i < j, equal on at least one band, sorted, without repeats: shape (k, 2), int64."""
    n = signature.shape[0]
    found = [_band_pairs(_band_keys(signature, band, rows)) for band in range(bands)]
    pairs = np.concatenate([np.zeros((0, 2), dtype=np.int64), *found])
    codes = np.sort(pairs[:, 0] * n + pairs[:, 1])  # sorting, not np.unique: its hash table is 10x slower here
    codes = codes[np.r_[True, codes[1:] != codes[:-1]]] if len(codes) else codes
    return np.stack([codes // n, codes % n], axis=1)


def verify(norms: Sequence[str], pairs: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """The pairs whose normalised texts are at least ``threshold`` alike (exactly, with rapidfuzz)."""
    return pairs[_alike(norms, pairs, threshold)]


def _alike(norms: Sequence[str], pairs: np.ndarray, threshold: float) -> np.ndarray:
    if len(pairs) == 0:
        return np.zeros(0, dtype=bool)
    lengths = np.fromiter((len(n) for n in norms), dtype=np.int64, count=len(norms))
    a, b = lengths[pairs[:, 0]], lengths[pairs[:, 1]]
    # the common part is at most the shorter text: 2 * shorter / (sum of lengths) bounds the similarity
    possible = 2 * np.minimum(a, b) >= (threshold - 1e-9) * (a + b)
    alike = np.zeros(len(pairs), dtype=bool)
    todo = np.flatnonzero(possible)
    if len(todo):
        scores = process.cpdist(
            [norms[i] for i in pairs[todo, 0].tolist()],
            [norms[j] for j in pairs[todo, 1].tolist()],
            scorer=Indel.normalized_similarity,
            score_cutoff=threshold,  # below it: 0. Compared in double precision (a float32 0.9 is below 0.9)
            dtype=np.float64,
            workers=-1,
        )
        alike[todo] = scores >= threshold
    return alike


def near_identical_pairs(texts: Sequence[str], threshold: float = THRESHOLD) -> np.ndarray:
    """Every near-identical pair (i, j), i < j, of ``texts`` the LSH finds, sorted: shape (k, 2), int64."""
    norms = [normalise(text) for text in texts]
    return verify(norms, candidate_pairs(signatures(norms)), threshold)


def prompt_clusters(texts: Sequence[str], threshold: float = THRESHOLD) -> np.ndarray:
    """The cluster of each text, named by its smallest index: the connected components of the near-identical
    pairs the LSH finds. Texts that normalise alike are one cluster before any hashing."""
    return normalised_clusters([normalise(text) for text in texts], threshold)


def normalised_clusters(norms: Sequence[str], threshold: float = THRESHOLD) -> np.ndarray:
    """:func:`prompt_clusters` of texts already normalised."""
    n = len(norms)
    first_of: dict[str, int] = {}
    label = np.fromiter((first_of.setdefault(norm, i) for i, norm in enumerate(norms)), dtype=np.int64, count=n)
    distinct = np.flatnonzero(label == np.arange(n))  # one text per normalised spelling
    if len(distinct) < 2:
        return label
    distinct_norms = [norms[i] for i in distinct.tolist()]
    signature = signatures(distinct_norms, bands=BANDS, rows=ROWS)
    pairs = verify(distinct_norms, candidate_pairs(signature, bands=BANDS, rows=ROWS), threshold)
    return join(label, distinct[pairs])


def join(label: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Labels (each the smallest member of its cluster) after joining the clusters of the nodes of ``pairs``."""
    if len(pairs) == 0:
        return label
    parent = label.copy()
    for i, j in label[pairs].tolist():  # clusters, by their smallest members
        ri, rj = _root(parent, i), _root(parent, j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    while True:  # pointer jumping: every node straight to its root
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent[label]
        parent = jumped


def _root(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        x = int(parent[x])
    return x


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """The connected component of each of ``n`` nodes, named by its smallest node: labels, shape (n,)."""
    return join(np.arange(n, dtype=np.int64), np.asarray(pairs, dtype=np.int64).reshape(-1, 2))


def alike_across(norms_a: Sequence[str], norms_b: Sequence[str], threshold: float = THRESHOLD) -> np.ndarray:
    """Exhaustively: a boolean matrix, True where ``norms_a[i]`` and ``norms_b[j]`` are near-identical (for the
    few rows of one cluster, where every pair matters, not only those the LSH proposed)."""
    if not norms_a or not norms_b:
        return np.zeros((len(norms_a), len(norms_b)), dtype=bool)
    scores = process.cdist(norms_a, norms_b, scorer=Indel.normalized_similarity, score_cutoff=threshold,
                           dtype=np.float64, workers=-1)
    return scores >= threshold
