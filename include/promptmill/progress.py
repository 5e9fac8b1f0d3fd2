"""Progress reporting for long work: counts, rate and ETA, throttled, to a logger (task logs) or stderr (CLI)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Emits "<what>: done/total (pct) | rate/s | ETA" at most every ``every_s`` seconds."""

    def __init__(
        self,
        what: str,
        total: float | None = None,
        unit: str = "",
        every_s: float = 5.0,
        emit: Callable[[str], None] | None = None,
        logger: logging.Logger | None = None,
        first_line_at_once: bool = True,
    ):
        self.what = what
        self.total = total
        self.unit = unit
        self.every_s = every_s
        self.logger = logger or logging.getLogger("promptmill")
        self.emit = emit or self.logger.info
        self.started = time.monotonic()
        # False: the first line waits for a full period of work, so that its rate and ETA mean something
        self._last = 0.0 if first_line_at_once else self.started
        self.done = 0.0
        self.extra = ""

    def update(self, done: float, extra: str = "", force: bool = False) -> None:
        self.done = done
        self.extra = extra
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            self.emit(self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        parts = [f"{self.what}: {self.done:,.0f}"]
        if self.total:
            pct = 100.0 * self.done / self.total if self.total else 0.0
            parts[0] += f"/{self.total:,.0f} {self.unit}".rstrip() + f" ({pct:.0f}%)"
        elif self.unit:
            parts[0] += f" {self.unit}"
        parts.append(f"{rate:,.0f} {self.unit}/s".replace(" /s", "/s"))
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if self.extra:
            parts.append(self.extra)
        return " | ".join(parts)
