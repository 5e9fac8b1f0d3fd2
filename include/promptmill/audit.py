"""``promptmill audit REASON``: random messages a rule rejected, for a spot check of what the rules throw away.

A ``near_duplicate`` comes with the attempt it was merged into (the newer one the user kept), side by side; a
``duplicate`` with the message that was kept for the same prompt. Nothing NSFW is ever shown: not the NSFW reasons,
and under any other reason no message the bot flagged or that holds the word "sex" (a spot check must not put
sexual content on someone's screen unasked); they are counted, not sampled.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from promptmill.status import rejection_counts

HIDDEN_REASONS = frozenset({"nsfw", "nsfw_word"})


class AuditError(ValueError):
    """A reason that cannot be audited (unknown, or hidden)."""


@dataclass(frozen=True, slots=True)
class Sample:
    key: str
    posted_at: str
    username: str | None
    text: str  # the raw prompt, or the message itself when the bot parser rejected it
    cleaned: str | None  # what the clean-up made of it, when it got that far
    other_text: str | None = None  # near_duplicate: the attempt it was merged into; duplicate: the kept one
    other_key: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def reasons(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return rejection_counts(conn)


def audit(engine: Engine, reason: str, *, sample: int = 10, seed: int | None = None,
          max_chars: int = 300) -> tuple[int, list[Sample]]:
    """(how many messages the rule rejected, ``sample`` of them at random); AuditError for a hidden or unknown
    reason. ``seed`` makes the sample repeatable."""
    if reason in HIDDEN_REASONS:
        raise AuditError(f"{reason}: NSFW rejections are never shown")
    counts = reasons(engine)
    if reason not in counts:
        known = ", ".join(r for r in counts if r not in HIDDEN_REASONS) or "none yet"
        raise AuditError(f"no message was rejected as {reason!r} (reasons in this store: {known})")
    return counts[reason], sample_rejected(engine, reason, sample=sample, seed=seed, max_chars=max_chars)


def sample_rejected(engine: Engine, reason: str, *, sample: int, seed: int | None, max_chars: int) -> list[Sample]:
    """``sample`` messages rejected as ``reason`` at random (none NSFW), for a reason known to be shown."""
    with engine.connect() as conn:
        # Never a message the bot flagged as NSFW, nor one holding the word "sex" anywhere (parity's own test, the
        # widest): whatever rule rejected it first (too_long, in_progress, multiple_users...).
        keys = [k for (k,) in conn.execute(
            sa.text("SELECT v.key FROM message_verdicts v JOIN messages m ON m.key = v.key "
                    "WHERE v.status = 'rejected' AND v.reason = :r AND NOT m.nsfw "
                    "AND lower(m.content) NOT LIKE '%sex%' ORDER BY v.key"),
            {"r": reason},
        )]  # fmt: skip
        chosen = random.Random(seed).sample(keys, min(sample, len(keys)))
        if not chosen:
            return []
        rows = conn.execute(
            sa.text(
                "SELECT v.key, v.posted_at, v.username, COALESCE(m.raw_prompt, m.content), m.clean_text, "
                "v.near_dup_of, v.raw_hash, v.clean_hash FROM message_verdicts v JOIN messages m ON m.key = v.key "
                "WHERE v.key IN :keys"
            ).bindparams(sa.bindparam("keys", expanding=True)),
            {"keys": chosen},
        ).all()
        by_key = {row[0]: row for row in rows}
        samples = []
        for key in chosen:
            _, posted_at, user, text, cleaned, near_dup_of, raw_hash, clean_hash = by_key[key]
            other_key = near_dup_of if reason == "near_duplicate" else None
            if reason == "duplicate":
                other_key = _kept_for(conn, key, raw_hash, clean_hash)
            other_text = None
            if other_key is not None:
                other_text = conn.execute(
                    sa.text("SELECT COALESCE(raw_prompt, content) FROM messages WHERE key = :k"), {"k": other_key}
                ).scalar()
            samples.append(Sample(key, str(posted_at), user, _cut(text, max_chars), _cut(cleaned, max_chars),
                                  _cut(other_text, max_chars), other_key))
    return samples


def _kept_for(conn, key: str, raw_hash: str | None, clean_hash: str | None) -> str | None:
    """The message kept instead of a duplicate: its raw prompt group's representative, else its prompt's kept one."""
    if clean_hash is not None:
        kept = conn.execute(sa.text("SELECT kept_message_key FROM prompts WHERE text_hash = :h AND kept"),
                            {"h": clean_hash}).scalar()
        if kept is not None and kept != key:
            return kept
    if raw_hash is not None:
        return conn.execute(
            sa.text("SELECT key FROM message_verdicts WHERE raw_hash = :h AND raw_rep AND key <> :k"),
            {"h": raw_hash, "k": key},
        ).scalar()
    return None


def _cut(text: str | None, max_chars: int) -> str | None:
    if text is None or len(text) <= max_chars:
        return text
    return text[: max_chars - 1] + "\u2026"


def format_samples(reason: str, total: int, samples: list[Sample]) -> list[str]:
    """The text form: one block per sample, near-duplicates and duplicates side by side with what was kept."""
    lines = [f"{reason}: {len(samples)} of {total:,} rejected messages, at random"]
    for n, s in enumerate(samples, 1):
        lines.append(f"{n:>3}. {s.posted_at}  {s.username or '(no user)'}  [{s.key}]")
        lines.append(f"     rejected: {s.text!r}")
        if s.cleaned is not None and s.cleaned != s.text:
            lines.append(f"     cleaned:  {s.cleaned!r}")
        if s.other_key is not None:
            label = "kept (newer):" if reason == "near_duplicate" else "kept:        "
            lines.append(f"     {label} {s.other_text!r}  [{s.other_key}]")
    return lines
