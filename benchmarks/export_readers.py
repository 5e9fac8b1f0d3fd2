"""Reading speed and peak memory of the export readers on one large file per format (the same messages).

Writes a DiscordChatExporter-shaped channel of about --size-mb megabytes as JSON and as HTML (DCE 2.35+ markup),
then reads each in a fresh child process (discover + read_export, every message) and prints a Markdown table:
messages/s, MB/s and the child's peak resident memory.

Usage: .venv/bin/python benchmarks/export_readers.py [--size-mb 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import Msg, slash, write_html_export, write_json_export  # noqa: E402

CHILD = """
import json, resource, sys, time
from promptmill.exports.discovery import discover
from promptmill.exports.reading import read_export
(source,) = list(discover([sys.argv[1]]))
started = time.perf_counter()
header, messages = read_export(source)
count = sum(1 for _ in messages)
elapsed = time.perf_counter() - started
print(json.dumps({"count": count, "elapsed_s": elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def block(n: int) -> list[Msg]:
    """n realistic bot messages: the slash era's, one per 20 s, four users."""
    return [slash(f"user{i % 4}", f"a lighthouse number {i} in a storm, oil painting, trending on artstation",
                  i / 3, seq=i) for i in range(n)]


def write_big(folder: Path, size_mb: int) -> dict[str, Path]:
    """The same repeated block of messages as JSON and HTML, each of about size_mb (ids repeat: the readers do
    not care, this is about reading)."""
    paths = {}
    sample = block(500)
    for fmt, writer in (("json", write_json_export), ("html", write_html_export)):
        small = writer(folder / f"block [1].{fmt}", "1", sample)
        text = small.read_text()
        if fmt == "json":
            start = text.index('"messages": [') + len('"messages": [')
            end = text.rindex("]")
            head, body, tail, sep = text[:start], text[start:end].strip(), text[end:], ","
        else:
            start = text.index('<div class="chatlog">') + len('<div class="chatlog">')
            end = text.index('</div><div class="postamble"')
            head, body, tail, sep = text[:start], text[start:end], text[end:], ""
        big = folder / f"Stable Diffusion - Bots - big [1].{fmt}"
        repeats = max(1, (size_mb << 20) // len(body))
        if fmt == "json":  # the declared count must match what is there
            tail = tail.replace(f'"messageCount": {len(sample)}', f'"messageCount": {len(sample) * repeats}')
        with open(big, "w", encoding="utf-8") as out:
            out.write(head)
            for n in range(repeats):
                out.write(("" if n == 0 else sep) + body)
            out.write(tail)
        small.unlink()
        paths[fmt] = big
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="pm-readers-"))
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    paths = write_big(folder, args.size_mb)
    print(f"wrote {', '.join(f'{p.name} ({p.stat().st_size / 1e6:,.0f} MB)' for p in paths.values())} in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    rows = []
    for fmt, path in paths.items():
        out = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"reading {path.name} failed:\n{out.stderr[-2000:]}")
        result = json.loads(out.stdout)
        size_mb = path.stat().st_size / 1e6
        rows.append((fmt, f"{size_mb:,.0f} MB", f"{result['count']:,}", f"{result['count'] / result['elapsed_s']:,.0f}",
                     f"{size_mb / result['elapsed_s']:,.1f}", f"{result['peak_rss_mb']:,.0f} MB"))
        if not args.keep:
            path.unlink()
    print("| format | file | messages | messages/s | MB/s | peak RSS |")
    print("|---|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
