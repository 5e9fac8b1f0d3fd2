"""The quality report of a publication: what the rules rejected (with a few examples), how near-duplicates were
merged, and what the labels look like. The dataset card, the manifest and the dataset page show it.

Deterministic for a given store (the same seeded samples), so that an unchanged store still publishes
byte-identical files. Examples are never shown for the NSFW reasons (audit.HIDDEN_REASONS), and carry no
usernames: the sample's user is not kept, and a mention in the text ("Dreaming for @name...", "a gift for @name")
becomes ``@user`` (every username of the store, then any ``@word``).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from promptmill.audit import HIDDEN_REASONS, sample_rejected

EXAMPLES = 3  # per rejection reason
MERGES = 5  # near-duplicate merges shown
REPEATED = 5  # most repeated descriptions shown
_SEED = 0
_CHARS = 160
_MENTION = re.compile(r"@[\w.#-]+")
MASK = "@user"


def quality_report(engine: Engine, label_version: str) -> dict[str, Any]:
    """{"rejections": {reason: {"count", "examples"}}, "near_duplicate_merges": [{"dropped", "kept"}],
    "labels": {...}} for the store as it is and the label version being published."""
    from promptmill.audit import reasons

    rejections: dict[str, dict[str, Any]] = {}
    merges: list[dict[str, str]] = []
    mask = _masker(engine)
    for reason, count in reasons(engine).items():
        entry: dict[str, Any] = {"count": count}
        if reason not in HIDDEN_REASONS and reason is not None:
            samples = sample_rejected(engine, reason, sample=EXAMPLES, seed=_SEED, max_chars=_CHARS)
            entry["examples"] = [mask(s.text) for s in samples]
            if reason == "near_duplicate":
                pairs = sample_rejected(engine, reason, sample=MERGES, seed=_SEED, max_chars=_CHARS)
                merges = [{"dropped": mask(s.text), "kept": mask(s.other_text or "")} for s in pairs]
        rejections[str(reason)] = entry
    return {"rejections": rejections, "near_duplicate_merges": merges, "labels": label_statistics(engine, label_version)}


def _masker(engine: Engine):
    """text -> text with every mention of a user replaced by ``@user``."""
    with engine.connect() as conn:
        names = {n for (n,) in conn.execute(sa.text(
            "SELECT DISTINCT username FROM message_verdicts WHERE username IS NOT NULL"
        )) if n}  # fmt: skip
    # the longest first, so that a name containing another (or a space) goes whole
    mentions = ["@" + n for n in sorted(names, key=lambda n: (-len(n), n))]

    def mask(text: str) -> str:
        if "@" not in text:
            return text
        for mention in mentions:
            if mention in text:
                text = text.replace(mention, MASK)
        return _MENTION.sub(MASK, text)

    return mask


def label_statistics(engine: Engine, label_version: str) -> dict[str, Any]:
    """The labels of a version on kept prompts: how many, the ``_no_object`` rate, the description lengths
    (characters: min, quartiles, max) and the most repeated descriptions."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT l.no_object, l.description FROM labels l JOIN prompts p ON p.id = l.prompt_id "
                "WHERE l.version = :v AND l.status = 'ok' AND p.kept"
            ),
            {"v": label_version},
        ).all()
    descriptions = [d for no_object, d in rows if not no_object and d]
    no_object = sum(1 for no_object, _ in rows if no_object)
    lengths = sorted(len(d) for d in descriptions)
    quartiles = statistics.quantiles(lengths, n=4, method="inclusive") if len(lengths) >= 2 else lengths * 3
    repeated = [[text, n] for text, n in Counter(descriptions).most_common(REPEATED) if n > 1]
    return {
        "labeled": len(rows),
        "no_object": no_object,
        "no_object_rate": round(no_object / len(rows), 4) if rows else 0.0,
        "description_chars": (
            {"min": lengths[0], "p25": round(quartiles[0], 1), "median": round(quartiles[1], 1),
             "p75": round(quartiles[2], 1), "max": lengths[-1]} if lengths else {}
        ),
        "most_repeated_descriptions": repeated,
    }


def report_lines(report: dict[str, Any]) -> list[str]:
    """The report as Markdown, for the dataset card."""
    lines = ["## Quality report", "", "| rejected as | messages | examples |", "|---|---|---|"]
    for reason, entry in sorted(report["rejections"].items(), key=lambda kv: -kv[1]["count"]):
        examples = "; ".join(f"`{_md(e)}`" for e in entry.get("examples", [])) or "(not shown)"
        lines.append(f"| {reason} | {entry['count']:,} | {examples} |")
    if report["near_duplicate_merges"]:
        lines += ["", "Near-duplicate merges (the older attempt dropped, the newer kept):", "",
                  "| dropped | kept |", "|---|---|"]
        lines += [f"| `{_md(m['dropped'])}` | `{_md(m['kept'])}` |" for m in report["near_duplicate_merges"]]
    labels = report["labels"]
    chars = labels["description_chars"]
    lines += ["", f"Labels: {labels['labeled']:,}, of which `_no_object` {labels['no_object']:,} "
              f"({labels['no_object_rate']:.1%})."]
    if chars:
        lines.append(f"Description length (characters): min {chars['min']}, quartiles {chars['p25']:g} / "
                     f"{chars['median']:g} / {chars['p75']:g}, max {chars['max']}.")
    if labels["most_repeated_descriptions"]:
        lines.append("Most repeated descriptions: " + "; ".join(
            f"`{_md(text)}` ({n})" for text, n in labels["most_repeated_descriptions"]) + ".")
    return lines


def _md(text: str) -> str:
    """Safe inside a Markdown table cell and a code span."""
    return " ".join(str(text).split()).replace("|", "/").replace("`", "'")
