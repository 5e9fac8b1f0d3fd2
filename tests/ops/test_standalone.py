"""scripts/standalone.sh for real: Airflow comes up healthy with the `openai` pool, the plugin's page is mounted,
guarded by Airflow's login, and shows the store's numbers to a signed-in user. About a minute on 2 cores."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from promptmill.dashboard.page import fmt_int
from promptmill.store.db import connect

from tests.ops.dataset import fill_store
from tests.ops.standalone import REPO, admin_auth, clean_env, start, stop, wait_for_dag, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.airflow]


def test_standalone_serves_the_dataset_page(tmp_path):
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    fill_store(connect(store_url), tmp_path)
    env = clean_env(tmp_path, store_url)
    base = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    log = tmp_path / "standalone.log"
    process = start([str(REPO / "scripts" / "standalone.sh")], env, log)
    try:
        wait_healthy(base, process, log)
        home = Path(env["AIRFLOW_HOME"])
        auth = admin_auth(base, home)

        assert httpx.get(f"{base}/promptmill/api/summary", timeout=30).status_code == 401
        summary = httpx.get(f"{base}/promptmill/api/summary", headers=auth, timeout=60).json()
        page = httpx.get(f"{base}/promptmill/", headers=auth, timeout=60)
        assert page.status_code == 200
        assert f'<div class="value">{fmt_int(summary["messages"]["total"])}</div>' in page.text
        assert 'href="/promptmill/api/summary"' in page.text

        plugins = httpx.get(f"{base}/api/v2/plugins", headers=auth, timeout=30).json()["plugins"]
        views = [v for p in plugins for v in p["external_views"]]
        assert {"name": "Prompt dataset", "href": "/promptmill/", "url_route": "prompt-dataset"}.items() <= views[0].items()
        pools = httpx.get(f"{base}/api/v2/pools/openai", headers=auth, timeout=30).json()
        assert pools["slots"] == 4
        assert "sk-standalone-test-not-a-key" not in log.read_text()
    finally:
        stop(process)


def _run_like_the_ui(base: str, auth: dict, conf: dict, log: Path) -> dict:
    """Trigger the DAG as the UI's form does (logical date now) and wait for the run to end."""
    import datetime as dt

    now = dt.datetime.now(dt.UTC).isoformat()
    response = httpx.post(f"{base}/api/v2/dags/promptmill/dagRuns", headers=auth, timeout=30,
                          json={"logical_date": now, "conf": conf})
    assert response.status_code == 200, response.text
    run_id = response.json()["dag_run_id"]
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        run = httpx.get(f"{base}/api/v2/dags/promptmill/dagRuns/{run_id}", headers=auth, timeout=30).json()
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(3)
    pytest.fail(f"run {run_id} not finished:\n{log.read_text()[-4000:]}", pytrace=False)


def test_a_run_triggered_from_the_ui_on_another_port_ingests_dated_folders_and_emits_one_event(tmp_path):
    """Issue #19 under the real scheduler, triggerer and API server, on a port other than 8080 (#19.5: tasks
    followed the API to 8080 and failed with empty logs): a run triggered like the UI's form (logical date now)
    takes new files of older dated folders (#19.1), a run that publishes nothing new emits no asset event
    (#19.3), and no run logs an XCom error while reading the mapped ingest results (#19.4)."""
    from promptmill.labeling.tables import labels

    from tests.fake_openai.server import FakeOpenAI
    from tests.helpers import slash, write_json_export

    key = "sk-standalone-run-not-a-key"
    fake = FakeOpenAI(api_key=key).start()
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    env = clean_env(tmp_path, store_url)
    port = env.pop("AIRFLOW__API__PORT")
    env.update({"OPENAI_API_KEY": key, "OPENAI_BASE_URL": fake.base_url,
                "PROMPTMILL_LANDING_DIR": str(tmp_path / "landing")})
    landing = Path(env["PROMPTMILL_LANDING_DIR"])
    subjects = ["a lighthouse in a storm", "a fox in the snow", "a castle on a hill", "a red bicycle",
                "a bowl of ramen", "a sailing ship at dawn"]
    for n, (day, channel) in enumerate((("2022-11-01", "301"), ("2022-11-02", "302"))):
        write_json_export(landing / day / f"dreambot [{channel}] ({day}).json", channel,
                          [slash(f"user{n}{i}", subjects[3 * n + i], 1440 * n + i * 90, seq=10 * n + i)
                           for i in range(3)])
    write_json_export(landing / "loose [303].json", "303", [slash("bob", "a loose owl in the rain", 0, seq=9)])
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "standalone.log"
    process = start([str(REPO / "scripts" / "standalone.sh"), "--port", port], env, log)
    try:
        wait_healthy(base, process, log)
        home = Path(env["AIRFLOW_HOME"])
        auth = admin_auth(base, home)
        wait_for_dag(base, auth, "promptmill", log, timeout_s=180)

        first = _run_like_the_ui(base, auth, {}, log)
        assert first["state"] == "success", log.read_text()[-4000:]
        engine = connect(store_url)
        with engine.connect() as conn:
            import sqlalchemy as sa
            from promptmill.store.schema import prompts

            kept = conn.execute(sa.select(prompts.c.text).where(prompts.c.kept)).scalars().all()
            labeled = conn.execute(sa.select(sa.func.count()).select_from(labels)).scalar_one()
        # both dated folders (older than the run's date) and the undated file
        assert len(kept) == labeled == 7, (kept, labeled)

        second = _run_like_the_ui(base, auth, {}, log)
        assert second["state"] == "success"
        events = httpx.get(f"{base}/api/v2/assets/events", headers=auth, timeout=30,
                           params={"source_dag_id": "promptmill"}).json()["asset_events"]
        # the scheduler's own run for today may have come first; between them all, one version: one event
        assert len(events) == 1, events
        runs = httpx.get(f"{base}/api/v2/dags/promptmill/dagRuns", headers=auth, timeout=30).json()["dag_runs"]
        assert {r["dag_run_id"]: r["state"] for r in runs}[events[0]["source_run_id"]] == "success"

        task_logs = "".join(p.read_text(errors="replace") for p in (home / "logs").rglob("*") if p.is_file())
        everything = task_logs + log.read_text()
        assert "XCom not found" not in everything
        assert key not in everything
    finally:
        stop(process)
        fake.stop()
