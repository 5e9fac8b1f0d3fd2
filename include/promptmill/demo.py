"""`promptmill demo` (behind `make run`): the whole pipeline on the bundled sample exports."""

from __future__ import annotations

from pathlib import Path

from promptmill.settings import Settings
from promptmill.store.db import redact_url


def run_demo(settings: Settings, samples: Path) -> int:
    from promptmill.export_cleaned import export_cleaned
    from promptmill.ingest import ingest_paths
    from promptmill.status import store_status
    from promptmill.store.db import connect

    url = settings.effective_database_url
    print(f"promptmill demo: store {redact_url(url)}")
    print(f"ingesting the sample exports in {samples}")
    engine = connect(url)
    report = ingest_paths(engine, [samples], settings)
    print(
        f"  files: {report.files_ingested} ingested, {report.files_skipped} already ingested, "
        f"{len(report.files_quarantined)} quarantined; {report.messages:,} messages read"
    )
    status = store_status(engine, settings)
    from promptmill.cli import print_status

    print()
    print_status(status)
    out = Path(settings.data_dir) / "cleaned_discord_prompts.tsv"
    rows = export_cleaned(engine, out)
    print()
    print(f"cleaned prompts (the original notebook's format): {out} ({rows:,} rows)")
    return 0
