"""The DAG: parses cleanly, follows the conventions, and runs end to end with dag.test() on the real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import typing
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
        assert task.doc_md, task.task_id
    assert set(dag.task_ids) == {
        "discover_exports", "ingest_exports", "dedupe_messages", "plan_labeling", "label_prompts", "collect_batches",
        "publish_dataset",
    }
    assert dag.get_task("dedupe_messages").upstream_task_ids == {"ingest_exports"}
    assert dag.get_task("label_prompts").pool == "openai"
    assert dag.get_task("label_prompts").upstream_task_ids == {"plan_labeling"}
    assert dag.get_task("collect_batches").upstream_task_ids == {"label_prompts"}
    assert dag.get_task("publish_dataset").upstream_task_ids == {"collect_batches"}
    assert dag.get_task("publish_dataset").trigger_rule == "none_failed"
    # an alias: the promptmill_splits event is added through it only when a new version is published (#19.3)
    assert [(type(o).__name__, o.name) for o in dag.get_task("publish_dataset").outlets] == [
        ("AssetAlias", "promptmill_splits_published")]


def test_params_form_defaults_validate_and_have_sections(dagbag):
    dag = dagbag.dags["promptmill"]
    dag.params.validate()  # defaults must validate at parse time for a scheduled DAG
    expected = {"landing_dir", "channels", "cleaning_profile", "near_dup_metric", "near_dup_threshold",
                "near_dup_window_s", "recompute", "labeling", "label_mode", "model", "pack_size", "prompt_limit",
                "budget_usd", "test_ratio", "include_no_object", "one_per_cluster"}
    assert set(dag.params.keys()) == expected
    for name in expected:
        schema = dag.params.get_param(name).schema
        param = dag.params.get_param(name)
        assert schema.get("title") and param.description and schema.get("section"), name


def test_only_params_that_need_a_value_are_required_in_the_form(dagbag):
    """Issue #19.7: Airflow's form marks a param required unless its type includes "null"; "Channels" (empty =
    every channel) and the checkboxes showed an asterisk."""
    params = dagbag.dags["promptmill"].params
    required = {name for name in params.keys()
                if "null" not in (lambda t: t if isinstance(t, list) else [t])(params.get_param(name).schema["type"])}
    assert required == {"label_mode", "test_ratio"}
    assert "-r false" not in params.get_param("include_no_object").description


def test_the_params_choices_are_the_settings_choices(dagbag):
    """The enums derive from promptmill.choices, as the settings' Literal types and the CLI's choices do."""
    from promptmill.choices import CleaningProfile, LabelMode, NearDupMetric

    params = dagbag.dags["promptmill"].params
    for name, choices in (("cleaning_profile", CleaningProfile), ("near_dup_metric", NearDupMetric),
                          ("label_mode", LabelMode)):
        enum = params.get_param(name).schema["enum"]
        assert [value for value in enum if value is not None] == list(typing.get_args(choices)), name


def test_dag_file_parses_fast_without_heavy_imports():
    """The issue asks for < 1 s parse time; Airflow itself is imported first (the DAG processor has it loaded).
    Of promptmill, only the choices of the params (typing only) are imported when the file is parsed."""
    code = (
        "import sys, time, importlib.util as u; import airflow.sdk;"
        "before = set(sys.modules); t = time.perf_counter();"
        f"spec = u.spec_from_file_location('pm_dag', {str(REPO / 'dags' / 'promptmill.py')!r});"
        "m = u.module_from_spec(spec); spec.loader.exec_module(m);"
        "elapsed = time.perf_counter() - t;"
        "heavy = sorted(n for n in set(sys.modules) - before if n.split('.')[0] in "
        "('pandas', 'openai', 'pyarrow', 'promptmill', 'psycopg', 'psycopg2', 'rapidfuzz', 'ijson') "
        "and n not in ('promptmill', 'promptmill.choices'));"
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
        [slash("ann", "a red fox in the snow", 0, seq=1), slash("bob", "a castle on a hill, 4 k", 3, seq=2)],
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
            conn.execute(sa.text("SELECT m.raw_prompt, v.status FROM messages m JOIN message_verdicts v ON v.key = m.key "
                            "ORDER BY m.raw_prompt")).all()
        )
        files = dict(conn.execute(sa.text("SELECT path, outcome FROM source_files")).all())
    assert statuses == {
        "a castle on a hill, 4 k": "kept",
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


@pytest.mark.airflow
def test_a_run_whose_params_differ_from_the_stores_options_fails_unless_it_recomputes(
    airflow_db, dagbag, pg_database, tmp_path, monkeypatch, capfd
):
    """dag.test() runs the tasks in this process, where a run's conf outlives the run in the params the next runs'
    tasks see (the end-to-end test below then ran with recompute on): the last run here passes the defaults back."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from promptmill.store import options

    _reset_store(pg_database)
    monkeypatch.setenv("AIRFLOW_CONN_PROMPTMILL_DB", _store_conn(pg_database))
    landing = _landing(tmp_path)
    conf = {"landing_dir": str(landing), "labeling": False}
    assert _run_dag(dagbag, conf).state == "success"  # empty params: a new store takes the defaults
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        assert options.read(conn) == options.StoreOptions("quality", "content_words", 0.8, 3600)

    capfd.readouterr()
    run = _run_dag(dagbag, {**conf, "near_dup_metric": "token_set", "near_dup_threshold": 0.9})
    output = "".join(capfd.readouterr())
    assert run.state == "failed"
    with create_session() as session:
        tries = {ti.task_id: (str(ti.state), ti.try_number) for ti in session.query(TaskInstance)
                 .filter(TaskInstance.run_id == run.run_id, TaskInstance.map_index == -1)}
    assert tries["discover_exports"] == ("failed", 1)  # at once, no retries
    message = ("this store's verdicts use cleaning_profile=quality near_dup_metric=content_words near_dup_threshold=0.8 "
               "near_dup_window_s=3600, not near_dup_metric=token_set near_dup_threshold=0.9; to apply those to the "
               "whole store trigger a run with the param recompute on")
    assert message in output

    run = _run_dag(dagbag, {**conf, "near_dup_metric": "token_set", "near_dup_threshold": 0.9, "recompute": True})
    assert run.state == "success", run.state
    with engine.connect() as conn:
        assert options.read(conn) == options.StoreOptions("quality", "token_set", 0.9, 3600)
        statuses = dict(conn.execute(sa.text(
            "SELECT m.raw_prompt, v.status FROM messages m JOIN message_verdicts v ON v.key = m.key")).all())
    assert statuses["a lighthouse at dusk"] == "rejected"  # still an earlier attempt of the same user at 0.9
    # empty params follow the store (given explicitly: see the docstring)
    defaults = {name: None for name in ("cleaning_profile", "near_dup_metric", "near_dup_threshold")}
    assert _run_dag(dagbag, {**conf, **defaults, "recompute": False, "labeling": True}).state == "success"
    engine.dispose()


API_KEY = "sk-dagtest-SECRET-123456"


@pytest.fixture
def fake_openai():
    from tests.fake_openai.server import FakeOpenAI

    server = FakeOpenAI(api_key=API_KEY, batch_delay=0.05).start()
    yield server
    server.stop()


def _store_conn(pg_database) -> str:
    url = sa.engine.make_url(pg_database)
    return f"postgres://{url.username}@{url.host}:{url.port or 5432}/{url.database}"


def _reset_store(pg_database):
    engine = sa.create_engine(pg_database)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    from promptmill.store.db import dispose_all

    dispose_all()


@pytest.mark.airflow
@pytest.mark.parametrize("mode", ["sync", "batch"])
def test_dag_end_to_end_ingest_label_publish(airflow_db, dagbag, pg_database, fake_openai, tmp_path, monkeypatch, mode):
    import json as _json

    _reset_store(pg_database)
    monkeypatch.setenv("AIRFLOW_CONN_PROMPTMILL_DB", _store_conn(pg_database))
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENAI_DEFAULT",
        _json.dumps({"conn_type": "openai", "password": API_KEY, "host": fake_openai.base_url}),
    )
    published = tmp_path / "published"
    monkeypatch.setenv("PROMPTMILL_PUBLISH_OUT_URI", f"file://{published}")
    monkeypatch.setenv("PROMPTMILL_LABEL_BATCH_POLL_S", "0.2")
    landing = _landing(tmp_path)
    one_per_cluster = mode == "sync"  # the form's option reaches the publication
    run = _run_dag(dagbag, {"landing_dir": str(landing), "label_mode": mode, "test_ratio": 0.5,
                            "one_per_cluster": one_per_cluster})
    assert run.state == "success", run.state

    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        labeled = conn.execute(
            sa.text("SELECT p.text, l.description FROM labels l JOIN prompts p ON p.id = l.prompt_id "
                    "WHERE l.status = 'ok' ORDER BY p.text")
        ).all()
        kept = conn.execute(sa.text("SELECT COUNT(*) FROM prompts WHERE kept")).scalar()
        billed = conn.execute(sa.text("SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM label_requests")).scalar()
    engine.dispose()
    assert len(labeled) == kept == 3
    snap = fake_openai.snapshot()
    server_billed = sum(snap[k] for k in ("prompt_tokens", "completion_tokens", "batch_prompt_tokens", "batch_completion_tokens"))
    assert billed == server_billed > 0  # the ledger equals what the server billed

    latest = (published / "LATEST").read_text().strip()
    manifest = _json.loads((published / latest / "manifest.json").read_text())
    assert manifest["version"] == latest
    assert manifest["settings"]["one_per_cluster"] is one_per_cluster
    assert sum(manifest["counts"][k] for k in ("train", "test")) == 3 if "counts" in manifest else True

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    def splits_events(session, run_id):
        return (
            session.query(AssetEvent)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .filter(AssetModel.name == "promptmill_splits", AssetEvent.source_run_id == run_id)
            .all()
        )

    with create_session() as session:
        events = splits_events(session, run.run_id)
        assert len(events) == 1
        extra = dict(events[0].extra)
        assert extra["version"] == latest
        assert API_KEY not in _json.dumps(extra)

        from airflow.models.xcom import XComModel

        values = [x.value for x in session.query(XComModel).filter(XComModel.run_id == run.run_id).all()]
    assert values and API_KEY not in _json.dumps(values, default=str)
    logs = "".join(p.read_text(errors="replace") for p in airflow_db.rglob("*.log") if p.is_file())
    assert API_KEY not in logs

    # Issue #19.3: a run that publishes nothing new emits no event (a training DAG on the asset would retrain)
    again = _run_dag(dagbag, {"landing_dir": str(landing), "label_mode": mode, "test_ratio": 0.5,
                              "one_per_cluster": one_per_cluster})
    assert again.state == "success"
    with create_session() as session:
        assert splits_events(session, again.run_id) == []


@pytest.mark.airflow
def test_backfill_through_the_cli_creates_dated_runs_with_conf(airflow_db, tmp_path):
    """`airflow backfill create` on a scheduler-less database: the runs are created (queued) with the right
    dates and conf; asking again for the same dates creates nothing twice."""
    import json as _json

    env = dict(os.environ)

    def airflow(*args):
        return subprocess.run([sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True,
                              timeout=600)

    out = airflow("dags", "reserialize")
    assert out.returncode == 0, out.stderr[-3000:]
    conf = {"channels": ["1032443284947075073"], "labeling": False}
    out = airflow("backfill", "create", "--dag-id", "promptmill", "--from-date", "2022-09-10", "--to-date",
                  "2022-09-12", "--dag-run-conf", _json.dumps(conf), "--max-active-runs", "1")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    def backfill_runs():
        with create_session() as session:
            runs = (
                session.query(DagRun)
                .filter(DagRun.dag_id == "promptmill", DagRun.run_type == "backfill")
                .filter(DagRun.logical_date >= datetime(2022, 9, 1, tzinfo=UTC))
                .filter(DagRun.logical_date < datetime(2022, 10, 1, tzinfo=UTC))
                .all()
            )
            return sorted((r.logical_date.date().isoformat(), r.conf, str(r.state)) for r in runs)

    runs = backfill_runs()
    assert [r[0] for r in runs] == ["2022-09-10", "2022-09-11", "2022-09-12"]
    assert all(r[1] == conf for r in runs)
    # A second request for overlapping dates never duplicates runs (refused while one is active, or skipped).
    airflow("backfill", "create", "--dag-id", "promptmill", "--from-date", "2022-09-11", "--to-date",
            "2022-09-13", "--dag-run-conf", _json.dumps(conf))
    dates = [r[0] for r in backfill_runs()]
    assert len(dates) == len(set(dates))
    # An invalid conf is refused by the params schema.
    out = airflow("backfill", "create", "--dag-id", "promptmill", "--from-date", "2022-09-20", "--to-date",
                  "2022-09-21", "--dag-run-conf", _json.dumps({"test_ratio": 7}))
    assert out.returncode != 0


@pytest.mark.airflow
def test_a_batch_mode_backfill_waits_once_and_publishes_once(airflow_db, dagbag, pg_database, fake_openai, tmp_path,
                                                              monkeypatch):
    """Issue #19.2: each backfilled day waited for its own Batch API job (24 h at worst) and published its own
    version. Runs of past days now submit without waiting and do not publish; the newest run waits once for every
    submitted job and publishes once."""
    import datetime as dt
    import json as _json

    from promptmill.pipeline import is_catching_up

    _reset_store(pg_database)
    monkeypatch.setenv("AIRFLOW_CONN_PROMPTMILL_DB", _store_conn(pg_database))
    monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT",
                       _json.dumps({"conn_type": "openai", "password": API_KEY, "host": fake_openai.base_url}))
    published = tmp_path / "published"
    monkeypatch.setenv("PROMPTMILL_PUBLISH_OUT_URI", f"file://{published}")
    monkeypatch.setenv("PROMPTMILL_LABEL_BATCH_POLL_S", "0.2")
    fake_openai.batch_delay = 3.0  # a batch turnaround the runs of past days must not wait for
    landing = tmp_path / "landing"
    days = ["2022-11-01", "2022-11-02", "2022-11-03"]
    for n, (day, subject) in enumerate(zip(days, ["a fox", "a lighthouse", "a castle"], strict=True)):
        write_json_export(landing / day / f"dreambot [{201 + n}].json", str(201 + n),
                          [slash(f"user{n}", f"{subject} at dawn, oil painting", 60 * n, seq=10 + n)])
    conf = {"landing_dir": str(landing), "label_mode": "batch"}
    now = dt.datetime.now(dt.UTC)
    for day in days:
        logical = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        assert is_catching_up(logical, now)
        started = time.monotonic()
        run = _run_dag(dagbag, conf, logical_date=logical)
        assert run.state == "success"
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        assert states["publish_dataset"] == "skipped", states
        assert time.monotonic() - started < fake_openai.batch_delay * 3  # did not sit out the turnaround
    assert not (published / "LATEST").exists()
    assert len(fake_openai.batches) == 3  # each day submitted its own prompts

    newest = _run_dag(dagbag, conf)  # today's run (a scheduled one, or a trigger from the UI)
    assert newest.state == "success"
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        labeled = conn.execute(sa.text("SELECT count(*) FROM labels WHERE status = 'ok'")).scalar()
        kept = conn.execute(sa.text("SELECT count(*) FROM prompts WHERE kept")).scalar()
        publications = conn.execute(sa.text("SELECT count(*) FROM publications")).scalar()
    engine.dispose()
    assert labeled == kept == 3 and publications == 1
    assert (published / "LATEST").exists()
