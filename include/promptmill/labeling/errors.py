"""Errors the labeling stage raises on purpose. Messages name the server (never the key) and the reason."""

from __future__ import annotations


class LabelingError(Exception):
    """Labeling stopped; the message says why. Committed work is kept."""


class FatalAPIError(LabelingError):
    """Retrying cannot help (bad key, no permission, unknown model, no quota, rejected request)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RetriesExhausted(LabelingError):
    """A transient error (429, 5xx, timeout, connection) outlasted the retry budget."""

    def __init__(self, message: str, *, retries: int) -> None:
        super().__init__(message)
        self.retries = retries
