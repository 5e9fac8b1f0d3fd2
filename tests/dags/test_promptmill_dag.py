"""The DAG: parses cleanly, follows the conventions, and runs end to end with dag.test() on the real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import slash, write_csv_export, write_json_export

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "promptmill" in dagbag.dag_ids


def test_dag_conventions(dagbag):
    dag = dagbag.dags["promptmill"]
    assert dag.tags and "promptmill" in dag.tags
    assert dag.max_active_runs == 1
    assert dag.doc_md and "promptmill" in dag.doc_md
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.doc_md or task.doc or task.__doc__, task.task_id
    assert {"discover_exports", "ingest_exports", "dedupe_messages"} <= set(dag.task_ids)
    assert dag.get_task("dedupe_messages").upstream_task_ids == {"ingest_exports"}


def test_dag_file_parses_fast_without_heavy_imports():
    """The issue asks for < 1 s parse time; Airflow itself is imported first (the DAG processor has it loaded)."""
    code = (
        "import sys, time, importlib.util as u; import airflow.sdk;"
        "before = set(sys.modules); t = time.perf_counter();"
        f"spec = u.spec_from_file_location('pm_dag', {str(REPO / 'dags' / 'promptmill.py')!r});"
        "m = u.module_from_spec(spec); spec.loader.exec_module(m);"
        "elapsed = time.perf_counter() - t;"
        "heavy = sorted(n for n in set(sys.modules) - before if n.split('.')[0] in "
        "('pandas', 'openai', 'pyarrow', 'promptmill', 'psycopg', 'psycopg2', 'rapidfuzz', 'ijson'));"
        "print(repr((elapsed, heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, timeout=120)
    assert out.returncode == 0, out.stderr
    elapsed, heavy = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own subprocess output
    assert heavy == []
    assert elapsed < 1.0


def _landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    write_json_export(
        landing / "Stable Diffusion - Bots - dreambot-1 [101].json",
        "101",
        [slash("ann", "a red fox in the snow", 0, seq=1), slash("bob", "a castle, 4 k", 3, seq=2)],
    )
    write_csv_export(
        landing / "2022-11-01" / "Stable Diffusion - Bots - dreambot-2 [102].csv",
        [slash("cid", "a lighthouse at dusk", 5, seq=3), slash("cid", "a lighthouse at dusk!", 6, seq=4)],
    )
    (landing / "broken [103].json").write_text('{"guild": {"id": "1"}, "channel": {"id": "103"}, "messages": [', encoding="utf-8")
    return landing


def _run_dag(dagbag, conf, logical_date=None):
    dag = dagbag.dags["promptmill"]
    return dag.test(run_conf=conf, logical_date=logical_date)


@pytest.mark.airflow
def test_dag_run_ingests_and_dedupes_into_postgresql(airflow_db, dagbag, pg_database, tmp_path, monkeypatch):
    url = sa.engine.make_url(pg_database)
    monkeypatch.setenv(
        "AIRFLOW_CONN_PROMPTMILL_DB",
        f"postgres://{url.username}@{url.host}:{url.port or 5432}/{url.database}",
    )
    landing = _landing(tmp_path)
    run = _run_dag(dagbag, {"landing_dir": str(landing)}, logical_date=None)
    assert run.state == "success", run.state

    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(sa.text("SELECT raw_prompt, status FROM messages ORDER BY raw_prompt")).all()
        )
        files = dict(conn.execute(sa.text("SELECT path, outcome FROM source_files")).all())
    assert statuses == {
        "a castle, 4 k": "kept",
        "a lighthouse at dusk": "rejected",  # earlier attempt of the same user: near-duplicate
        "a lighthouse at dusk!": "kept",
        "a red fox in the snow": "kept",
    }
    assert sorted(files.values()) == ["ingested", "ingested", "quarantined"]

    # A second run finds nothing new: the mapped task is skipped and the run still succeeds.
    started = time.monotonic()
    run = _run_dag(dagbag, {"landing_dir": str(landing)}, logical_date=datetime(2022, 11, 2, tzinfo=UTC))
    assert run.state == "success"
    assert time.monotonic() - started < 120
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM messages")).scalar() == 4
    engine.dispose()
