"""promptmill.status: the text form of the store counts, shared by `promptmill status` and `promptmill demo`."""

from __future__ import annotations

import ast
from pathlib import Path

import promptmill
from promptmill.status import format_status

COUNTS = {
    "messages": 12_345, "channels": 3, "generations": 11_000, "kept": 9_000, "unique_prompts": 8_500,
    "near_duplicates": 700, "rejected": {"near_duplicate": 700, "too_short": 1_200, "nsfw": 100},
    "pending_dedupe": 0, "files_ingested": 40, "files_quarantined": 1,
}


def test_format_status_lines():
    assert format_status(COUNTS).splitlines() == [
        "messages:        12,345 in 3 channels",
        "generations:     11,000",
        "kept:            9,000 (8,500 unique prompts)",
        "near-duplicates: 700",
        "rejected:",
        "  too_short       1,200",
        "  near_duplicate  700",
        "  nsfw            100",
        "files:           40 ingested, 1 quarantined",
    ]


def test_format_status_pending_dedupe_and_labels():
    counts = {**COUNTS, "rejected": {}, "pending_dedupe": 5, "labeled": 10, "no_object": 2, "pending": 3,
              "spend_usd": 0.5}
    lines = format_status(counts).splitlines()
    assert "rejected:" not in lines
    assert "pending dedupe:  5 (run `promptmill dedupe`)" in lines
    assert lines[-1] == "labels:          10 labeled (2 _no_object), 3 pending, $0.5000 spent"


def test_no_library_module_imports_the_cli():
    """The CLI calls the library, never the other way."""
    package = Path(promptmill.__file__).parent
    importers = []
    for path in package.rglob("*.py"):
        if path.name == "cli.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            if any(name == "promptmill.cli" for name in names):
                importers.append(str(path.relative_to(package)))
    assert importers == []
