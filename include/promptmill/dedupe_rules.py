"""Rules 12, 13 and 34 and the verdict of a message: pure functions over groups of rows, no SQL, no database.

The store layer (dedupe.py, dedupe_whole.py) finds the groups a change touches, reads their rows and writes back
what these functions decide; a rule change is a change here, and nowhere else.

- Rule 12, a raw-prompt group: the representative is the earliest generation by :func:`raw_rank` (posted_at, then
  the position in a minute-precision export, then the key); the others are ``duplicate``.
- Rule 13, one user's representatives newest first: :func:`walk`. An attempt is dropped (``near_duplicate``) when an
  attempt already kept is less than a window newer and more similar than the threshold. A verdict depends only on
  later attempts, so a change revisits earlier ones only until it can no longer spread: :func:`walk_until_settled`.
- Rule 34, a cleaned-prompt group: of its eligible members (:func:`eligible_for_prompt`) the kept one is the first
  by :func:`kept_before`: the notebook kept the first row in the order its rule-13 loop left the frame, (username,
  date) descending.
- The verdict of a message from those: :func:`verdict`.

Times may be datetimes or integers (microseconds), as long as one call compares like with like; strings compare by
code point, as PostgreSQL's "C" collation and pandas do.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any


def raw_rank(posted_at: Any, posted_seq: int, key: str) -> tuple:
    """Rule 12's order within a raw-prompt group: the smallest is the representative."""
    return (posted_at, posted_seq, key)


def later_in_file_is_newer(profile: str) -> bool:
    """How attempts of one minute (minute-precision CSV exports, told apart by their position in the file) compare
    in time. Parity: the earlier in the file counts as the newer, as the notebook's stable sort left them. Other
    profiles: the later one, as the same messages exported with exact times (JSON) are ordered, so that both
    exports keep the same prompts."""
    return profile != "parity"


def kept_before(a: tuple[str | None, Any, int, str], b: tuple[str | None, Any, int, str], *,
                later_in_file_newer: bool = False) -> bool:
    """Rule 34's order within a cleaned-prompt group, on (username, posted_at, posted_seq, key): True when ``a``
    is kept rather than ``b``. Username descending (none counts as ""), then the newest (see
    later_in_file_is_newer for ties in time), then the key ascending."""
    user_a, user_b = a[0] or "", b[0] or ""
    if user_a != user_b:
        return user_a > user_b
    if a[1] != b[1]:
        return a[1] > b[1]
    if a[2] != b[2]:
        return a[2] > b[2] if later_in_file_newer else a[2] < b[2]
    return a[3] < b[3]


def near_duplicate_state(raw_rep: bool, near_dup: bool, near_dup_of: str | None) -> tuple[bool, str | None]:
    """Rule 13 judges raw-prompt representatives only: any other message is no near-duplicate, whatever was
    stored for it while it was one."""
    return (near_dup, near_dup_of) if raw_rep else (False, None)


def eligible_for_prompt(pre_reason: str | None, raw_rep: bool, near_dup: bool, clean_reason: str | None) -> bool:
    """Whether a message with a cleaned prompt competes to be its group's kept message (rule 34)."""
    return pre_reason is None and raw_rep and not near_dup and clean_reason is None


def verdict(pre_reason: str | None, raw_rep: bool, near_dup: bool, clean_reason: str | None,
            kept: bool) -> tuple[str, str | None]:
    """(status, reason) of a message: the first rule that rejects it, else kept when it is its group's kept one."""
    if pre_reason is not None:
        return "rejected", pre_reason
    if not raw_rep:
        return "rejected", "duplicate"
    if near_dup:
        return "rejected", "near_duplicate"
    if clean_reason is not None:
        return "rejected", clean_reason
    if kept:
        return "kept", None
    return "rejected", "duplicate"


@dataclass(slots=True)
class Candidate:
    """One representative of a user, as rule 13 walks it (with its stored or already recomputed verdict)."""

    key: str
    posted_at: Any  # a datetime, or microseconds
    raw_prompt: str
    near_dup: bool
    near_dup_of: str | None
    posted_seq: int = 0  # the position within its minute in a minute-precision export


def newest_first(attempts: list[Candidate], *, later_in_file_newer: bool = False) -> list[Candidate]:
    """Rule 13's walk order, in place: newest first (see later_in_file_is_newer for ties in time), then by key."""
    if later_in_file_newer:
        attempts.sort(key=lambda c: c.key)
        attempts.sort(key=lambda c: (c.posted_at, c.posted_seq), reverse=True)
    else:
        attempts.sort(key=lambda c: (c.posted_seq, c.key))
        attempts.sort(key=lambda c: c.posted_at, reverse=True)
    return attempts


def walk(
    rows_desc: Iterable[Candidate],
    context_kept_desc: list[Candidate],
    similarity: Callable[[str, str], float],
    threshold: float,
    window: Any,  # a timedelta, or microseconds: as the times
) -> Iterable[tuple[Candidate, bool, str | None]]:
    """The original greedy walk, newest first, comparing each row with the kept rows less than a window newer."""
    kept: deque[Candidate] = deque(context_kept_desc)  # newest first
    if getattr(similarity, "prepare", None) is not None:
        yield from _walk_by_shared_words(rows_desc, kept, similarity, threshold, window)
        return
    for row in rows_desc:
        # kept is ordered newest -> oldest; drop from the newest end those a window or more newer than row
        while kept and kept[0].posted_at - row.posted_at >= window:
            kept.popleft()
        match = None
        for other in kept:
            if similarity(other.raw_prompt, row.raw_prompt) > threshold:
                match = other.key
                break
        if match is None:
            kept.append(row)
        yield row, match is not None, match


def _walk_by_shared_words(rows_desc, kept_desc, similarity, threshold, window):
    """The walk for a metric under which attempts that share no word are never alike (similarity.ContentWordsMetric):
    each attempt is prepared once and compared only with the kept ones sharing a word with it, found through an
    index of the kept attempts' words, newest first, so the first match is the one the plain walk finds."""
    numbers = itertools.count()  # kept attempts are numbered as kept: walking newest first, a larger one is older
    alive: dict[int, tuple[Candidate, tuple]] = {}  # the kept attempts within the window, prepared
    by_word: dict[str, deque[int]] = {}
    oldest_gone = -1  # every kept attempt numbered up to this one has left the window
    prepare, compare = similarity.prepare, similarity.compare

    def keep(candidate: Candidate, prepared: tuple) -> None:
        number = next(numbers)
        alive[number] = (candidate, prepared)
        for word in prepared[0]:
            holders = by_word.get(word)
            if holders is None:
                by_word[word] = deque((number,))
            else:
                holders.append(number)

    for candidate in kept_desc:
        keep(candidate, prepare(candidate.raw_prompt))
    for row in rows_desc:
        while oldest_gone + 1 in alive and alive[oldest_gone + 1][0].posted_at - row.posted_at >= window:
            oldest_gone += 1
            del alive[oldest_gone]
        prepared = prepare(row.raw_prompt)
        sharing = set()
        for word in prepared[0]:
            holders = by_word.get(word)
            if holders:
                while holders and holders[0] <= oldest_gone:
                    holders.popleft()
                sharing.update(holders)
        match = None
        for number in sorted(sharing):
            other, other_prepared = alive[number]
            if compare(other_prepared, prepared) > threshold:
                match = other.key
                break
        if match is None:
            keep(row, prepared)
        yield row, match is not None, match


def walk_until_settled(
    region_desc: Iterable[Candidate],
    context_kept_desc: list[Candidate],
    similarity: Callable[[str, str], float],
    threshold: float,
    window: Any,  # a timedelta, or microseconds: as the times
    first: Any,
    stored: dict[str, tuple[bool, str | None]],
    read_older: Callable[[], Iterable[Candidate]],
    region_start: Any,
) -> list[tuple[Candidate, bool, str | None]]:
    """Walk a user's rows back from the touched ones until the change can no longer propagate.

    A row's verdict depends only on which rows less than a window newer are kept. Every row from ``first``
    (the earliest touched point) on is recomputed; going further back, the "frontier" is the oldest row whose
    kept/dropped state differs from the stored one. A row a full window older than the frontier sees exactly
    the kept rows it saw when its stored verdict was computed, and so does every older row: the walk stops.
    Work is proportional to how far the change actually spreads, not to the length of the user's session.
    ``region_desc`` holds the rows from ``region_start`` on; when the walk has not settled by its end,
    ``read_older`` gives the older rows, newest first (read only then: for most changes it is never called).
    Returns the walked rows with their verdicts.
    """
    walked: list[tuple[Candidate, bool, str | None]] = []
    frontier = first

    def rows() -> Iterator[Candidate]:
        yield from region_desc
        # every row older than region_start would stop the walk once the frontier is a window above it
        if frontier - window < region_start:
            yield from read_older()

    for row, is_dup, dup_of in walk(rows(), context_kept_desc, similarity, threshold, window):
        if row.posted_at < first and frontier - row.posted_at >= window:
            break
        walked.append((row, is_dup, dup_of))
        before = stored.get(row.key)
        if before is not None and before[0] != is_dup and row.posted_at < frontier:
            frontier = row.posted_at
    return walked
