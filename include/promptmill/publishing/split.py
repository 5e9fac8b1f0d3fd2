"""The train/test split: sticky per destination, near-identical prompts on one side, rows tied to both held out.

A row's side at a destination, once published there, never changes (the store records it: sides.py). The rows
not yet published take the side of what they are near-identical to (clusters.py: normalised indel similarity
>= 0.9, found by MinHash LSH across users, channels and time), so that no test row has a near-identical train
row:

- a cluster (the connected rows) with no published row: one side for all of it, from the hash of the split key
  of its smallest row id (:func:`split_point`; a prompt with no near-identical one keeps the side the former,
  per-row split gave it);
- a cluster whose published rows are on one side: its new rows join that side;
- a cluster with published rows on both sides (new rows joined two clusters): each group of new rows connected
  among themselves goes to the side of the published rows it touches; a group that touches both is held out of
  both and counted.

``--split-key description`` adds a second relation: rows sharing a normalised description are in one cluster
too, so neither a description nor a near-identical prompt straddles the split.

:func:`split_point` is a pure function of a key: SHA-256 with a fixed domain prefix, to a number in [0, 1); below
the test ratio is test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from promptmill.publishing import clusters

# Changing this prefix would reshuffle every published split: it is part of the format.
_DOMAIN = b"promptmill-split-v1\x00"
_SCALE = float(1 << 64)

TRAIN = "train"
TEST = "test"


def split_point(key: str) -> float:
    """Where ``key`` falls in [0, 1): the first 8 bytes of its hash as a fraction."""
    digest = hashlib.sha256(_DOMAIN + key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign_split(key: str, test_ratio: float) -> str:
    return TEST if split_point(key) < test_ratio else TRAIN


def description_group(description: str) -> str:
    """The group key of a description: case, Unicode form and spacing do not separate "A cat" from "a  cat"."""
    return clusters.normalise(description)


def split_key_of(prompt: str, description: str | None, split_key: str) -> str:
    """The text a row's split is keyed on. A row without a description (``_no_object``) falls back to its prompt."""
    if split_key == "description" and description:
        return "description\x00" + description_group(description)
    return "prompt\x00" + prompt


@dataclass(frozen=True, slots=True)
class SplitRow:
    """What the split needs of a row: the rows publishable now, and those published at the destination before."""

    row_id: str
    prompt: str
    description: str | None = None
    posted_at: dt.datetime | None = None
    user: str | None = None  # the username hash, for counting clusters across users
    recorded: str | None = None  # its side at this destination (None: never published there)
    current: bool = True  # False: published there before, not publishable now (it still holds its side)


@dataclass(frozen=True, slots=True)
class SplitPlan:
    sides: dict[str, str]  # row_id -> train | test, every current row that is published
    held_out: list[str] = field(default_factory=list)  # row ids tied to both sides
    one_per_cluster_removed: list[str] = field(default_factory=list)  # row ids left out by --one-per-cluster
    clusters: dict[str, int] = field(default_factory=dict)
    leakage: dict[str, object] = field(default_factory=dict)

    def counts(self) -> dict[str, object]:
        return {
            "held_out": len(self.held_out),
            "one_per_cluster_removed": len(self.one_per_cluster_removed),
            "clusters": self.clusters,
            "leakage": self.leakage,
        }


def plan_split(rows: Sequence[SplitRow], *, test_ratio: float, split_key: str = "prompt",
               one_per_cluster: bool = False) -> SplitPlan:
    """The side of every current row (or held out), by the rules in the module docstring.

    A pure function of the rows (in any order) and the settings: the same store state gives the same plan.
    """
    nodes = sorted(rows, key=lambda row: row.row_id)
    norms = [clusters.normalise(node.prompt) for node in nodes]
    prompt_label = clusters.normalised_clusters(norms)
    label = prompt_label
    if split_key == "description":
        label = clusters.join(label, _description_pairs(nodes))
    side: dict[int, str | None] = {i: node.recorded for i, node in enumerate(nodes) if node.recorded}
    for members in _groups(label):
        recorded = {nodes[i].recorded for i in members if nodes[i].recorded}
        new = [i for i in members if not nodes[i].recorded]
        if not new:
            continue
        if len(recorded) == 1:
            side.update(dict.fromkeys(new, recorded.pop()))
        elif not recorded:
            first = nodes[members[0]]  # the smallest row id
            side.update(dict.fromkeys(new, assign_split(split_key_of(first.prompt, first.description, split_key),
                                                        test_ratio)))
        else:
            side.update(_resolve_mixed(nodes, norms, members, new, split_key))
    current = [i for i, node in enumerate(nodes) if node.current]
    held_out = [nodes[i].row_id for i in current if side[i] is None]
    placed = [i for i in current if side[i] is not None]
    removed: list[str] = []
    if one_per_cluster:
        keep = set(_representatives(nodes, prompt_label, placed))
        removed = [nodes[i].row_id for i in placed if i not in keep]
        placed = [i for i in placed if i in keep]
    return SplitPlan(
        sides={nodes[i].row_id: side[i] for i in placed},
        held_out=held_out,
        one_per_cluster_removed=removed,
        clusters=_cluster_counts(nodes, prompt_label, current),
        leakage=_leakage(nodes, norms, label, side, placed),
    )


def _groups(label: np.ndarray) -> list[list[int]]:
    """The members of each cluster, smallest first, clusters in the order of their smallest member."""
    order = np.argsort(label, kind="stable")
    cuts = np.flatnonzero(np.diff(label[order])) + 1
    return [part.tolist() for part in np.split(order, cuts)] if len(order) else []


def _description_pairs(nodes: Sequence[SplitRow]) -> np.ndarray:
    first: dict[str, int] = {}
    pairs = []
    for i, node in enumerate(nodes):
        if node.description:
            pairs.append((first.setdefault(description_group(node.description), i), i))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _resolve_mixed(nodes: Sequence[SplitRow], norms: Sequence[str], members: list[int], new: list[int],
                   split_key: str) -> dict[int, str | None]:
    """A cluster with published rows on both sides: its new rows, group by group (every pair checked exactly)."""
    near = clusters.alike_across([norms[i] for i in new], [norms[i] for i in members])
    position = {i: b for b, i in enumerate(members)}
    if split_key == "description":
        codes: dict[str, int] = {}
        described = np.array([codes.setdefault(description_group(nodes[i].description), len(codes))
                              if nodes[i].description else -1 for i in members])
        mine = described[[position[i] for i in new]]
        near |= (mine[:, None] == described[None, :]) & (mine[:, None] >= 0)
    connected = clusters.components(len(new), np.argwhere(near[:, [position[i] for i in new]]))
    sides: dict[int, str | None] = {}
    for group in _groups(connected):
        touched = {nodes[members[b]].recorded for a in group for b in np.flatnonzero(near[a]).tolist()} - {None}
        verdict = touched.pop() if len(touched) == 1 else None  # tied to both sides: held out
        sides.update(dict.fromkeys((new[a] for a in group), verdict))
    return sides


def _representatives(nodes: Sequence[SplitRow], label: np.ndarray, placed: list[int]) -> list[int]:
    """One row per near-identical cluster: the earliest posted (then the smallest row id)."""
    best: dict[int, int] = {}
    for i in placed:
        cluster = int(label[i])
        if cluster not in best or _earlier(nodes[i], nodes[best[cluster]]):
            best[cluster] = i
    return list(best.values())


def _earlier(a: SplitRow, b: SplitRow) -> bool:
    def key(row: SplitRow) -> tuple:
        return (row.posted_at is None, row.posted_at or dt.datetime.min.replace(tzinfo=dt.UTC), row.row_id)

    return key(a) < key(b)


def _cluster_counts(nodes: Sequence[SplitRow], label: np.ndarray, current: list[int]) -> dict[str, int]:
    """Near-identical clusters among the publishable rows (before holding out or --one-per-cluster)."""
    members: dict[int, list[int]] = {}
    for i in current:
        members.setdefault(int(label[i]), []).append(i)
    multi = [m for m in members.values() if len(m) > 1]
    users = [{nodes[i].user for i in m if nodes[i].user} for m in multi]
    return {
        "clusters": len(multi),
        "cross_user": sum(1 for u in users if len(u) > 1),
        "rows": sum(len(m) for m in multi),
        "largest": max((len(m) for m in multi), default=1 if current else 0),
    }


def _leakage(nodes: Sequence[SplitRow], norms: Sequence[str], label: np.ndarray, side: dict[int, str | None],
             placed: list[int]) -> dict[str, object]:
    """The test rows with a near-identical train row among the published rows, as the LSH finds them: only a
    cluster with rows on both sides can hold such a pair, and there every pair is checked exactly."""
    by_cluster: dict[int, dict[str, list[int]]] = {}
    for i in placed:
        by_cluster.setdefault(int(label[i]), {TRAIN: [], TEST: []})[side[i]].append(i)
    leaking = 0
    for parts in by_cluster.values():
        if parts[TRAIN] and parts[TEST]:
            near = clusters.alike_across([norms[i] for i in parts[TEST]], [norms[i] for i in parts[TRAIN]])
            leaking += int(near.any(axis=1).sum())
    test_rows = sum(len(parts[TEST]) for parts in by_cluster.values())
    return {
        "test_rows_with_near_identical_train_row": leaking,
        "share": round(leaking / test_rows, 6) if test_rows else 0.0,
        "measured_by": f"MinHash LSH candidates verified by normalised indel similarity >= {clusters.THRESHOLD}",
    }
