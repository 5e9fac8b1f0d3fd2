"""The whole-store dedupe on PostgreSQL, computed in the client: one read of the messages, one write per verdict.

A first load or a large backfill touches most of the store, so every verdict is recomputed. The driver of
increments (dedupe.py) does that with every message touched, a pass over the store per step; this bulk-load
speed-up does it with one read: the server streams the messages once (a sequential scan, COPY text), the rules of
dedupe_rules.py decide (rule 13's walk in two processes), and the results go back with COPY:

- a message without a verdict row (a bulk load stores only the messages, see ingest.py) gets its row written
  once, already final: the columns it copies from the message are sent back as the very text they were read as;
- a message with one gets an update only when its verdict changed;
- prompt rows: new groups COPYd in hash order (their ids taken from the sequence in one step), stored ones
  updated only where something changed.

It holds ~0.9 KB per message (883 MB after reading 1,000,000: the text of the verdict rows to write, the cleaned
text of each group), so the caller uses it up to ``Settings.dedupe_client_max_messages`` and the driver of
increments above that.

The snapshot rules are those of the rest of dedupe: REPEATABLE READ, so a message stored or changed by a concurrent
ingest after the read is left to the next dedupe (its dirty mark is not seen, so not cleared), and a verdict row
that a concurrent ingest wrote for a message read here without one makes the COPY fail (unique violation) and
the dedupe retry.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from promptmill.dedupe_rules import (
    eligible_for_prompt,
    kept_before,
    later_in_file_is_newer,
    raw_rank,
    verdict,
)
from promptmill.progress import Progress
from promptmill.store.copy_text import NULL, CopyLines, copy_lines, copy_out, decode, encode

if TYPE_CHECKING:
    from promptmill.dedupe import DedupeReport
    from promptmill.settings import Settings

log = logging.getLogger("promptmill.dedupe")

# The columns of a verdict row that are copied from its message, in the order the read sends them first.
_INPUT_COLUMNS = (
    "key", "channel_id", "username", "posted_at", "posted_seq", "raw_hash", "clean_hash", "pre_reason",
    "clean_reason", "raw_prompt",
)  # fmt: skip
_VERDICT_COLUMNS = ("raw_rep", "near_dup", "near_dup_of", "prompt_id", "status", "reason")
# One line per message: its verdict row's input columns (as the text a new verdict row is written with), its
# time in microseconds, the cleaned text, and the stored verdict (NULLs when it has no verdict row yet).
_READ = f"""
    COPY (
        SELECT {", ".join("m." + c for c in _INPUT_COLUMNS)},
               (EXTRACT(EPOCH FROM m.posted_at) * 1000000)::bigint, m.clean_text,
               v.key IS NOT NULL, v.raw_rep, v.near_dup, v.near_dup_of, v.prompt_id, v.status, v.reason
        FROM messages m LEFT JOIN message_verdicts v ON v.key = m.key
    ) TO STDOUT
"""


class _Messages:
    """The messages of the store, column by column (compact: most values are shared or packed)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.users: list[str | None] = []
        self.times = array("q")  # posted_at, microseconds since the epoch
        self.seqs = array("l")
        self.groups = array("l")  # cleaned-prompt group (index into clean_hashes), -1 without one
        self.pre_reasons: list[str | None] = []
        self.clean_reasons: list[str | None] = []
        self.raw_reps = bytearray()
        self.stored: dict[int, tuple] = {}  # index -> stored (raw_rep, near_dup, near_dup_of, prompt_id, status, reason)
        # For a message without a verdict row: that row's input columns as COPY text, without the two hashes (each
        # message refers to its groups' instead: 130 bytes less per message), in two parts around them. Lists, as
        # a dict entry would cost more than most rows' text.
        self.heads: list[str | None] = []  # key, channel_id, username, posted_at, posted_seq
        self.tails: list[str | None] = []  # pre_reason, clean_reason, raw_prompt
        self.stored_raw_prompts: dict[int, str] = {}  # the raw prompt of a representative with a verdict row
        self.raw_groups = array("l")  # raw-prompt group (index into raw_hashes), -1 without one
        self.raw_hashes: list[bytes] = []
        self.clean_hashes: list[bytes] = []  # (hashes as bytes: half the size of their hex text)
        self.group_of: dict[bytes, int] = {}
        self.texts: list[str] = []  # the cleaned text of each group, as COPY text
        self.group_first = array("l")  # the earliest message of each group (any status) ...
        self.stored_posted_at: dict[int, str] = {}  # ... and its posted_at when it has a verdict row (else in its head)

    def posted_at(self, i: int) -> str:
        """The posted_at of a message as read (COPY text)."""
        head = self.heads[i]
        return self.stored_posted_at[i] if head is None else head.split("\t", 4)[3]

    def new_row(self, i: int) -> str | None:
        """The input columns of the verdict row of a message without one, as COPY text (None when it has one)."""
        head = self.heads[i]
        if head is None:
            return None
        raw_group, group = self.raw_groups[i], self.groups[i]
        raw_hash = self.raw_hashes[raw_group].hex() if raw_group >= 0 else NULL
        clean_hash = self.clean_hashes[group].hex() if group >= 0 else NULL
        return f"{head}\t{raw_hash}\t{clean_hash}\t{self.tails[i]}"


def recompute_in_client(
    conn: Connection,
    settings: Settings,
    report: DedupeReport,
    progress_emit: Callable[[str], None] | None = None,
    total: int | None = None,
) -> None:
    """Every verdict and prompt row of the store from one read of the messages (PostgreSQL, inside the caller's
    REPEATABLE READ transaction, under the dedupe lock), its counts into ``report``; ``total``: about how many
    messages there are, for the progress. dedupe.run_dedupe runs it with the cyclic garbage collector paused
    (see _without_cycle_collection there)."""
    from promptmill.similarity import similarity_function

    phases = _PhaseTimes()
    msgs = _read(conn, progress_emit, total)
    phases.done("read")
    ties = later_in_file_is_newer(settings.cleaning_profile)
    near_dup, near_dup_of = _near_duplicates(
        msgs, ties, similarity_function(settings.near_dup_metric), settings.near_dup_threshold,
        settings.near_dup_window_s, report, progress_emit,
    )  # fmt: skip
    phases.done("near-duplicates")
    kept = _kept_of_groups(msgs, near_dup, ties)
    report.raw_groups = sum(msgs.raw_reps)
    report.clean_groups = len(msgs.clean_hashes)
    prompts = _PromptRows(conn, msgs, kept)
    phases.done("kept messages and prompt ids")
    changed_lines: list[str] = []
    if any(head is not None for head in msgs.heads):
        # The new verdict rows (all of them after a bulk load) are written over a second connection while this
        # one writes the prompt rows: the server stores both at once, on both cores. Its transaction commits
        # first; if this one then fails, the next dedupe finds those rows (the files stay marked deferred until
        # this one commits) and rewrites whatever changed, so nothing is lost or left half-done.
        lines = _verdict_lines(msgs, near_dup, near_dup_of, kept, prompts.ids, changed_lines, _by_user_and_time(msgs))
        writer = _NewVerdictRowWriter(conn, lines)
        writer.start()
        try:
            prompts.write(conn)
            phases.done("prompt rows")
        finally:
            writer.join()
        writer.raise_error()
        phases.done("new verdict rows (after the prompt rows)")
    else:
        prompts.write(conn)
        phases.done("prompt rows")
        # every message has a verdict row: this only collects the changed ones
        for _line in _verdict_lines(msgs, near_dup, near_dup_of, kept, prompts.ids, changed_lines, range(len(msgs.keys))):
            pass
    del msgs, near_dup_of, prompts
    if changed_lines:
        q = conn.execute
        q(sa.text(
            "CREATE TEMP TABLE dd_changed (key TEXT, raw_rep BOOLEAN, near_dup BOOLEAN, near_dup_of TEXT, "
            "prompt_id BIGINT, status TEXT, reason TEXT) ON COMMIT DROP"
        ))  # fmt: skip
        copy_lines(conn, "dd_changed", ("key", *_VERDICT_COLUMNS), changed_lines)
        q(sa.text("ANALYZE dd_changed"))
        q(sa.text(
            "UPDATE message_verdicts SET raw_rep = c.raw_rep, near_dup = c.near_dup, near_dup_of = c.near_dup_of, "
            "prompt_id = c.prompt_id, status = c.status, reason = c.reason FROM dd_changed c "
            "WHERE message_verdicts.key = c.key"
        ))  # fmt: skip
        phases.done("changed verdict rows")
    log.info("dedupe (client): %s", phases)


class _PhaseTimes:
    """How long each step of the client computation took, for the log: where a slow dedupe spends its time."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.steps: list[str] = []

    def done(self, step: str) -> None:
        now = time.perf_counter()
        self.steps.append(f"{step} {now - self.last:.1f}s")
        self.last = now

    def __str__(self) -> str:
        return ", ".join(self.steps)


def _verdict_lines(
    msgs: _Messages,
    near_dup: bytearray,
    near_dup_of: dict[int, str],
    kept: list[int],
    prompt_ids: list[int],
    changed_lines: list[str],
    order: Iterable[int],
) -> Iterator[str]:
    """The verdict of every message in ``order`` (as dedupe._write_verdicts decides it): yields the whole verdict
    row of each message without one (COPY text), and appends to ``changed_lines`` the verdict of each one whose
    stored verdict differs."""
    kept_rows = bytearray(len(msgs.keys))
    for i in kept:
        if i >= 0:
            kept_rows[i] = 1
    keys, groups, pre_reasons, clean_reasons, raw_reps = (
        msgs.keys, msgs.groups, msgs.pre_reasons, msgs.clean_reasons, msgs.raw_reps,
    )  # fmt: skip
    stored, new_row = msgs.stored, msgs.new_row
    for i in order:
        rep = raw_reps[i]
        dup = near_dup[i]
        status, reason = verdict(pre_reasons[i], rep, dup, clean_reasons[i], kept_rows[i])
        group = groups[i]
        prompt_id = prompt_ids[group] if group >= 0 else None
        dup_of = near_dup_of.get(i) if dup else None
        line = new_row(i)
        if line is None and stored[i] == (bool(rep), bool(dup), dup_of, prompt_id, status, reason):
            continue
        columns = (
            f"{'t' if rep else 'f'}\t{'t' if dup else 'f'}\t{encode(dup_of)}\t"
            f"{NULL if prompt_id is None else prompt_id}\t{status}\t{encode(reason)}\n"
        )
        if line is None:
            changed_lines.append(f"{encode(keys[i])}\t{columns}")
        else:
            yield f"{line}\t{columns}"


def _by_user_and_time(msgs: _Messages) -> Iterator[int]:
    """The messages by user, then time: the order new verdict rows are written in, so that a user's rows of an
    hour share a few pages, as an increment's session reads and verdict updates want them. (In file order the
    rows of one user's hour lie on about as many pages as they are rows: the late-history increment's dedupe
    read 17,000 pages for 32,000 rows; written in this order, the whole increment took 0.25 s less and the
    benchmark's ratio went from 2.24x to 1.94x, at ~2 s more for a 1M first load.)
    """
    users, times = msgs.users, msgs.times
    by_user: dict[str | None, list[int]] = {}
    for i, user in enumerate(users):
        rows = by_user.get(user)
        if rows is None:
            by_user[user] = [i]
        else:
            rows.append(i)
    for user in sorted(by_user, key=lambda name: (name is not None, name or "")):
        rows = by_user.pop(user)  # (each user's list let go once yielded)
        rows.sort(key=times.__getitem__)
        yield from rows


class _NewVerdictRowWriter(threading.Thread):
    """COPYs the new verdict rows over its own connection, in its own transaction (see recompute_in_client)."""

    def __init__(self, conn: Connection, lines: Iterator[str]):
        super().__init__(name="promptmill-verdict-rows", daemon=True)
        self.engine = conn.engine
        self.lines = lines
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.engine.connect() as conn, conn.begin():
                with CopyLines(conn, "message_verdicts", _INPUT_COLUMNS + _VERDICT_COLUMNS) as copy:
                    for line in self.lines:
                        copy.append(line)
        except BaseException as exc:  # handed to the dedupe's thread, which rolls back and retries or reports it
            self.error = exc

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def _read(conn: Connection, progress_emit, total: int | None) -> _Messages:
    """Every message, with rule 12 (the earliest message of each raw-prompt group by (posted_at, posted_seq, key))
    and each cleaned-prompt group's earliest message decided on the way."""
    msgs = _Messages()
    keys, users, times, seqs, groups = msgs.keys, msgs.users, msgs.times, msgs.seqs, msgs.groups
    pre_reasons, clean_reasons, raw_reps, stored = msgs.pre_reasons, msgs.clean_reasons, msgs.raw_reps, msgs.stored
    heads, tails, stored_raw_prompts, stored_posted_at = msgs.heads, msgs.tails, msgs.stored_raw_prompts, msgs.stored_posted_at
    raw_groups, raw_hashes = msgs.raw_groups, msgs.raw_hashes
    clean_hashes, group_of, texts, group_first = msgs.clean_hashes, msgs.group_of, msgs.texts, msgs.group_first
    raw_group_of: dict[bytes, int] = {}
    first_of_raw = array("l")  # the representative of each raw-prompt group
    shared: dict[str, str] = {}  # one object per distinct user name and reason
    progress = Progress("dedupe: read", total=total, unit="messages", emit=progress_emit, first_line_at_once=False)

    def consume(line: str) -> None:
        i = len(keys)
        fields = line.split("\t")
        key = decode(fields[0])
        user = fields[2]
        user = None if user == NULL else shared.setdefault(user, decode(user))
        t = int(fields[10])
        seq = int(fields[4])
        pre = fields[7]
        pre = None if pre == NULL else shared.setdefault(pre, pre)
        keys.append(key)
        users.append(user)
        times.append(t)
        seqs.append(seq)
        pre_reasons.append(pre)
        reason = fields[8]
        clean_reasons.append(None if reason == NULL else shared.setdefault(reason, reason))
        has_row = fields[12] == "t"
        if has_row:
            heads.append(None)
            tails.append(None)
            stored[i] = (
                fields[13] == "t", fields[14] == "t", decode(fields[15]),
                None if fields[16] == NULL else int(fields[16]), fields[17], decode(fields[18]),
            )  # fmt: skip
        else:
            f0, f1, f2, f3, f4, f5, f6, f7, f8, f9 = map(len, fields[:10])
            head_end = f0 + f1 + f2 + f3 + f4 + 4
            tail_start = head_end + f5 + f6 + 3
            heads.append(line[:head_end])
            tails.append(line[tail_start : tail_start + f7 + f8 + f9 + 2])
        raw_hash = fields[5]
        rep = 0
        if raw_hash == NULL:
            raw_groups.append(-1)
        else:
            raw_hash = bytes.fromhex(raw_hash)
            raw_group = raw_group_of.get(raw_hash)
            if raw_group is None:
                raw_group = raw_group_of[raw_hash] = len(raw_hashes)
                raw_hashes.append(raw_hash)
                first_of_raw.append(-1)
            raw_groups.append(raw_group)
            if pre is None:  # rule 12 ranks the generations only
                j = first_of_raw[raw_group]
                if j < 0:
                    first_of_raw[raw_group] = i
                    rep = 1
                elif raw_rank(t, seq, key) < raw_rank(times[j], seqs[j], keys[j]):
                    first_of_raw[raw_group] = i
                    raw_reps[j] = 0
                    stored_raw_prompts.pop(j, None)
                    rep = 1
        raw_reps.append(rep)
        if rep and has_row and user is not None:
            stored_raw_prompts[i] = decode(fields[9])
        clean_hash = fields[6]
        if clean_hash == NULL:
            groups.append(-1)
        else:
            clean_hash = bytes.fromhex(clean_hash)
            group = group_of.get(clean_hash)
            if group is None:
                group = group_of[clean_hash] = len(clean_hashes)
                clean_hashes.append(clean_hash)
                texts.append(fields[11])
                group_first.append(i)
                if has_row:
                    stored_posted_at[i] = fields[3]
            elif t < times[group_first[group]]:
                group_first[group] = i
                if has_row:
                    stored_posted_at[i] = fields[3]
            groups.append(group)
        if not i % 50_000:
            progress.update(i)

    copy_out(conn, _READ, consume)
    progress.update(len(keys), force=len(keys) >= 100_000)
    return msgs


def _near_duplicates(msgs: _Messages, later_in_file_newer: bool, similarity, threshold: float, window_s: float, report: DedupeReport, progress_emit):
    """Rule 13: per user, the representatives newest first (posted_at DESC, posted_seq, key), walked greedily.
    A representative without a user is not walked and keeps its stored verdict (as in dedupe.py)."""
    # the very walk of the incremental path (its rows' times here in microseconds, as the window)
    from promptmill import dedupe_rules
    from promptmill.dedupe_rules import Candidate

    n = len(msgs.keys)
    near_dup = bytearray(n)
    near_dup_of: dict[int, str] = {}
    keys, users, times, seqs, raw_reps, stored = msgs.keys, msgs.users, msgs.times, msgs.seqs, msgs.raw_reps, msgs.stored
    if similarity is None:
        report.near_dup_changes = sum(1 for value in stored.values() if value[1])
        return near_dup, near_dup_of
    walked = []
    for i in range(n):
        if raw_reps[i]:
            if users[i] is not None:
                walked.append(i)
            elif i in stored and stored[i][1]:
                near_dup[i] = 1
                near_dup_of[i] = stored[i][2]
    window_us = round(window_s * 1_000_000)
    tails, stored_raw_prompts = msgs.tails, msgs.stored_raw_prompts

    def walk(part: list[int], progress: Progress | None, scale: float = 1.0) -> tuple[list[tuple[int, str]], int, int]:
        """The walk of the users of ``part``: (the near-duplicates and the kept attempt each dropped for, how many
        verdicts changed, how many users)."""
        part.sort(key=users.__getitem__)  # (each user's attempts together; the walk's order is the rules')
        dups: list[tuple[int, str]] = []
        changes = walked_users = 0
        start = 0
        while start < len(part):
            user = users[part[start]]
            end = start + 1
            while end < len(part) and users[part[end]] == user:
                end += 1
            session = part[start:end]
            attempts = []
            index_of = {}
            for i in session:
                tail = tails[i]
                if tail is None:
                    prompt = stored_raw_prompts[i]
                else:
                    prompt = tail[tail.rindex("\t") + 1 :]  # the raw prompt ends the row's text
                    if "\\" in prompt:
                        prompt = decode(prompt)
                attempts.append(Candidate(keys[i], times[i], prompt, False, None, seqs[i]))
                index_of[keys[i]] = i
            dedupe_rules.newest_first(attempts, later_in_file_newer=later_in_file_newer)
            for attempt, is_dup, dup_of in dedupe_rules.walk(attempts, [], similarity, threshold, window_us):
                i = index_of[attempt.key]
                if is_dup:
                    dups.append((i, dup_of))
                before = stored.get(i) if stored else None
                if before is None:
                    changes += is_dup  # (a message without a verdict row was not a near-duplicate)
                elif (before[1], before[2]) != (is_dup, dup_of):
                    changes += 1
            walked_users += 1
            start = end
            if progress is not None:
                progress.update(round(start * scale))  # (the parent's half stands for both)
        return dups, changes, walked_users

    total = len(walked)
    progress = Progress("near-duplicates", total=total, unit="rows", emit=progress_emit, first_line_at_once=False)
    for dups, changes, walked_users in _two_halves(walked, users, walk, progress):
        for i, dup_of in dups:
            near_dup[i] = 1
            near_dup_of[i] = dup_of
        report.near_dup_changes += changes
        report.users += walked_users
    progress.update(total, force=total > 100_000)
    return near_dup, near_dup_of


# Below this many attempts one process walks them all (a second one costs ~0.1 s to start and report).
_TWO_PROCESS_WALK_MIN = 100_000


def _two_halves(walked: list[int], users: list[str | None], walk, progress: Progress) -> list[tuple]:
    """``walk`` of the users' attempts in two processes at once: a forked child takes the users of one half
    (split by user, so that each user's attempts stay together) and sends its result back through a pipe. The
    walk is pure Python, one core each; the child shares the parent's memory (copy on write) and leaves with
    ``os._exit``, so it never touches the parent's database connection."""
    if len(walked) < _TWO_PROCESS_WALK_MIN or not hasattr(os, "fork"):
        return [walk(walked, progress)]
    halves: tuple[list[int], list[int]] = ([], [])
    for i in walked:
        halves[hash(users[i]) & 1].append(i)  # (the same string hash in the child: fork keeps the hash seed)
    mine, theirs = halves
    del walked[:]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            os.close(read_end)
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(walk(theirs, None), out, protocol=pickle.HIGHEST_PROTOCOL)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    reader = os.fdopen(read_end, "rb")
    try:
        results = [walk(mine, progress, (len(mine) + len(theirs)) / max(len(mine), 1))]
        data = reader.read()
    finally:
        reader.close()  # (when this side failed: a child still writing gets a broken pipe and leaves)
        _, status = os.waitpid(pid, 0)
    if status != 0 or not data:
        raise RuntimeError(f"the near-duplicate walk's second process failed (wait status {status})")
    results.append(pickle.loads(data))
    return results


def _kept_of_groups(msgs: _Messages, near_dup: bytearray, later_in_file_newer: bool) -> list[int]:
    """Rule 34: the kept message of each cleaned-prompt group (-1: none survived rules 1-33)."""
    kept = [-1] * len(msgs.clean_hashes)
    keys, users, times, seqs, groups = msgs.keys, msgs.users, msgs.times, msgs.seqs, msgs.groups
    pre_reasons, clean_reasons, raw_reps = msgs.pre_reasons, msgs.clean_reasons, msgs.raw_reps
    for i in range(len(keys)):
        group = groups[i]
        if group < 0 or not eligible_for_prompt(pre_reasons[i], raw_reps[i], near_dup[i], clean_reasons[i]):
            continue
        j = kept[group]
        if j < 0 or kept_before((users[i], times[i], seqs[i], keys[i]), (users[j], times[j], seqs[j], keys[j]),
                                later_in_file_newer=later_in_file_newer):
            kept[group] = i
    return kept


class _PromptRows:
    """The prompt rows of every group (as dedupe.py writes them: first_seen only ever lowered; the kept message
    set, or taken away from a group that has none): their ids, decided first (the verdict rows need them), then
    written: new groups COPYd in hash order with ids taken from the sequence in one step, stored rows updated only
    where something changed."""

    def __init__(self, conn: Connection, msgs: _Messages, kept: list[int]):
        self.msgs = msgs
        self.kept = kept
        keys, times, clean_hashes, group_of = msgs.keys, msgs.times, msgs.clean_hashes, msgs.group_of
        first_seen = msgs.group_first
        self.ids = ids = [0] * len(clean_hashes)
        self.updates: list[str] = []
        stored = conn.execute(
            sa.text(
                "SELECT id, text_hash, (EXTRACT(EPOCH FROM first_seen) * 1000000)::bigint, kept, kept_message_key "
                "FROM prompts"
            )
        )
        known = bytearray(len(clean_hashes))
        for prompt_id, text_hash, seen, was_kept, kept_key in stored:
            group = group_of.get(bytes.fromhex(text_hash))
            if group is None:  # no message has this text any more
                if was_kept:
                    self.updates.append(f"{prompt_id}\t\\N\tf\t\\N\n")
                continue
            known[group] = 1
            ids[group] = prompt_id
            lowered = seen is not None and times[first_seen[group]] < seen
            i = kept[group]
            target = (True, keys[i]) if i >= 0 else (False, None) if was_kept else (was_kept, kept_key)
            if lowered or target != (was_kept, kept_key):
                first = msgs.posted_at(first_seen[group]) if lowered else NULL
                self.updates.append(f"{prompt_id}\t{first}\t{'t' if target[0] else 'f'}\t{encode(target[1])}\n")
        # in hash order: the unique index on the hash fills front to back
        self.new_groups = sorted((group for group in range(len(clean_hashes)) if not known[group]), key=clean_hashes.__getitem__)
        if self.new_groups:
            # only dedupe inserts prompt rows, one dedupe at a time (its lock): the ids are taken in one step
            first_id = conn.execute(sa.text("SELECT nextval(pg_get_serial_sequence('prompts', 'id'))")).scalar()
            conn.execute(
                sa.text("SELECT setval(pg_get_serial_sequence('prompts', 'id'), :last)"),
                {"last": first_id + len(self.new_groups) - 1},
            )
            for offset, group in enumerate(self.new_groups):
                ids[group] = first_id + offset

    def write(self, conn: Connection) -> None:
        msgs, kept, ids = self.msgs, self.kept, self.ids
        keys, texts, clean_hashes, first_seen, posted_at = (
            msgs.keys, msgs.texts, msgs.clean_hashes, msgs.group_first, msgs.posted_at,
        )  # fmt: skip
        if self.new_groups:
            with CopyLines(conn, "prompts", ("id", "text", "text_hash", "first_seen", "kept", "kept_message_key")) as copy:
                for group in self.new_groups:
                    i = kept[group]
                    copy.append(
                        f"{ids[group]}\t{texts[group]}\t{clean_hashes[group].hex()}\t{posted_at(first_seen[group])}\t"
                        f"{'t' if i >= 0 else 'f'}\t{encode(keys[i]) if i >= 0 else NULL}\n"
                    )
        if self.updates:
            q = conn.execute
            q(sa.text(
                "CREATE TEMP TABLE dd_prompt_changes (id BIGINT, first_seen TIMESTAMPTZ, kept BOOLEAN, "
                "kept_message_key TEXT) ON COMMIT DROP"
            ))  # fmt: skip
            copy_lines(conn, "dd_prompt_changes", ("id", "first_seen", "kept", "kept_message_key"), self.updates)
            q(sa.text(
                "UPDATE prompts SET first_seen = COALESCE(c.first_seen, prompts.first_seen), kept = c.kept, "
                "kept_message_key = c.kept_message_key FROM dd_prompt_changes c WHERE prompts.id = c.id"
            ))  # fmt: skip
