"""promptmill.progress: one throttled progress reporter for ingest, dedupe, reprocess and labeling."""

from __future__ import annotations

import pytest
from promptmill import progress as progress_module
from promptmill.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module.time, "monotonic", clock)
    return clock


def test_a_line_per_interval_and_when_forced(clock):
    lines: list[str] = []
    progress = Progress("ingest", total=1000, unit="bytes", every_s=5.0, emit=lines.append)
    clock.now += 1
    progress.update(10)  # the first line at once
    clock.now += 2
    progress.update(200)  # within the interval: nothing
    clock.now += 3
    progress.update(500, extra="files 3/12")
    progress.update(1000, force=True)
    assert lines == [
        "ingest: 10/1,000 bytes (1%) | 10 bytes/s | ETA 1m39s | elapsed 1s",
        "ingest: 500/1,000 bytes (50%) | 83 bytes/s | ETA 6s | elapsed 6s | files 3/12",
        "ingest: 1,000/1,000 bytes (100%) | 167 bytes/s | elapsed 6s",
    ]


def test_the_first_line_can_wait_a_full_interval(clock):
    lines: list[str] = []
    progress = Progress("near-duplicates", total=10, unit="rows", emit=lines.append, first_line_at_once=False)
    progress.update(1)
    assert lines == []
    clock.now += 5
    progress.update(2)
    assert lines == ["near-duplicates: 2/10 rows (20%) | 0.4 rows/s | ETA 20s | elapsed 5s"]


def test_labeling_line_carries_spend_and_the_progress_goes_to_the_callback(clock):
    lines: list[str] = []
    reports: list[tuple[float, float | None, float | None]] = []
    progress = Progress("labeled", total=10, unit="prompts", emit=lines.append, separator=" ",
                        on_report=lambda p: reports.append((p.done, p.spend_usd, p.eta_s)))
    clock.now += 4
    progress.update(4, spend_usd=0.0012)
    clock.now += 1
    progress.update(10, spend_usd=0.003, force=True)
    assert lines == [
        "labeled 4/10 prompts (40%) | 1.0 prompts/s | ETA 6s | elapsed 4s | spend $0.0012",
        "labeled 10/10 prompts (100%) | 2.0 prompts/s | elapsed 5s | spend $0.0030",
    ]
    assert reports == [(4, 0.0012, 6.0), (10, 0.003, None)]


def test_without_a_total(clock):
    lines: list[str] = []
    Progress("reprocess", unit="messages", emit=lines.append).update(0)
    assert lines == ["reprocess: 0 messages | 0.0 messages/s | elapsed 0s"]
