"""Behaviour check: a large export is streamed, never loaded whole (tracemalloc counts Python allocations)."""

from __future__ import annotations

import re
import tracemalloc

import pytest
from promptmill.exports import discover, read_export

from .dce import dumps_dce, export_doc, message_247


def write_big_export(path, target_bytes: int, compact: bool) -> int:
    """Write a DCE-shaped document of about target_bytes without holding it (one block of messages written
    over and over: the reader does not care that ids repeat); returns the number of messages."""
    head, tail = dumps_dce(export_doc([{"id": "PLACEHOLDER"}]), compact=compact).split(
        b'{"id":"PLACEHOLDER"}' if compact else b'{\n      "id": "PLACEHOLDER"\n    }')
    separator = b"," if compact else b",\n    "
    texts = [dumps_dce(message_247(i), compact=compact) for i in range(200)]
    block = separator.join(texts if compact else [t.replace(b"\n", b"\n    ") for t in texts])
    count = written = 0
    with open(path, "wb") as out:
        out.write(head + block)
        count, written = len(texts), len(block)
        while written < target_bytes:
            out.write(separator + block)
            count += len(texts)
            written += len(block) + len(separator)
        out.write(re.sub(rb'"messageCount": ?1', b'"messageCount": %d' % count, tail))
    return count


@pytest.mark.parametrize(("layout", "size_mb"), [("dce", 50), ("compact", 10)])
def test_streaming_keeps_memory_small(tmp_path, layout, size_mb):
    path = tmp_path / "big.json"
    count = write_big_export(path, size_mb << 20, compact=layout == "compact")
    assert path.stat().st_size > size_mb << 20
    [source] = discover([path])
    tracemalloc.start()
    try:
        header, messages = read_export(source)
        seen = sum(1 for _ in messages)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == count == header.declared_count
    assert peak < 20 << 20, f"peak {peak / 2**20:.1f} MiB while streaming {size_mb} MB"
