"""The one exception the export readers raise (or yield, during discovery) for input they cannot ingest."""

from __future__ import annotations


class ExportError(Exception):
    """A file (or archive member, or path) that cannot be ingested.

    ``str(error) == f"{source}: {reason}"``. ``source`` is the display path of the file; ``reason`` says what is
    wrong as precisely as the reader can (line number or byte offset where it has one), because it is what an
    operator reads in the quarantine table.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason

    def __reduce__(self):  # keep the two-argument constructor picklable (multiprocessing, Airflow XComs)
        return (type(self), (self.source, self.reason))
