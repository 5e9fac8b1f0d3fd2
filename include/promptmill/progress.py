"""Progress reporting for long work (ingest, dedupe, reprocess, labeling): counts, rate and ETA, throttled, to a
logger (task logs) or stderr (CLI)."""

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
    """Work done out of a total, reported at most every ``every_s`` seconds (and whenever ``force``d).

    A report is one line, "<what>: done/total unit (pct) | rate unit/s | ETA | elapsed | spend | extra", sent to
    ``emit`` (default: the logger's ``info``), and the Progress itself passed to ``on_report``, for a caller that
    shows it its own way (the labeling CLI prints ``line()`` on stderr). ``separator`` goes between ``what`` and
    the count ("labeled 10/10 prompts" reads as a sentence with a space). ``spend_usd``, when given to
    ``update``, is carried and shown.
    """

    def __init__(
        self,
        what: str,
        total: float | None = None,
        unit: str = "",
        every_s: float = 5.0,
        emit: Callable[[str], None] | None = None,
        logger: logging.Logger | None = None,
        first_line_at_once: bool = True,
        *,
        on_report: Callable[[Progress], None] | None = None,
        separator: str = ": ",
    ):
        self.what = what
        self.total = total
        self.unit = unit
        self.every_s = every_s
        self.logger = logger or logging.getLogger("promptmill")
        self.emit = emit or self.logger.info
        self.on_report = on_report
        self.separator = separator
        self.started = time.monotonic()
        # False: the first line waits for a full period of work, so that its rate and ETA mean something
        self._last = 0.0 if first_line_at_once else self.started
        self.done = 0.0
        self.extra = ""
        self.spend_usd: float | None = None

    def update(self, done: float, extra: str = "", force: bool = False, spend_usd: float | None = None) -> None:
        self.done = done
        self.extra = extra
        if spend_usd is not None:
            self.spend_usd = spend_usd
        now = time.monotonic()
        if force or now - self._last >= self.every_s:
            self._last = now
            self.emit(self.line())
            if self.on_report is not None:
                self.on_report(self)

    @property
    def elapsed_s(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s

    @property
    def eta_s(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if self.total and rate > 0 and self.done < self.total else None

    def line(self) -> str:
        elapsed = self.elapsed_s
        rate = self.done / elapsed
        parts = [f"{self.what}{self.separator}{self.done:,.0f}"]
        if self.total:
            pct = 100.0 * self.done / self.total
            parts[0] += f"/{self.total:,.0f} {self.unit}".rstrip() + f" ({pct:.0f}%)"
        elif self.unit:
            parts[0] += f" {self.unit}"
        # slow work (labeling: a few prompts a second) keeps a decimal
        parts.append(f"{rate:,.{1 if rate < 10 else 0}f} {self.unit}/s".replace(" /s", "/s"))
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        parts.append(f"elapsed {format_duration(elapsed)}")
        if self.spend_usd is not None:
            parts.append(f"spend ${self.spend_usd:.4f}")
        if self.extra:
            parts.append(self.extra)
        return " | ".join(parts)
