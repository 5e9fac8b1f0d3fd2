"""scripts/standalone.sh for real: Airflow comes up healthy with the `openai` pool, the plugin's page is mounted,
guarded by Airflow's login, and shows the store's numbers to a signed-in user. About a minute on 2 cores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from promptmill.dashboard.page import fmt_int
from promptmill.store.db import connect

from tests.ops.conftest import free_port
from tests.ops.dataset import fill_store

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 240

pytestmark = [pytest.mark.slow, pytest.mark.airflow]


def _clean_env(tmp_path: Path, store_url: str) -> dict[str, str]:
    """The caller's environment without any Airflow/promptmill setting (the test session sets its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PROMPTMILL_", "_AIRFLOW"))}
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__API__PORT": str(free_port()),
        # other sessions on this machine may hold the default log-server ports
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PROMPTMILL_DATA_DIR": str(tmp_path / "data"),
        "PROMPTMILL_DATABASE_URL": store_url,
        "OPENAI_API_KEY": "sk-standalone-test-not-a-key",
    })
    return env


def _wait_healthy(base: str, process: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"standalone exited with {process.returncode}:\n{log.read_text()[-4000:]}", pytrace=False)
        try:
            health = httpx.get(f"{base}/api/v2/monitor/health", timeout=5).json()
            if all(health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler")):
                return health
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(2)
    pytest.fail(f"standalone not healthy after {STARTUP_TIMEOUT_S} s:\n{log.read_text()[-4000:]}", pytrace=False)


def _admin_auth(base: str, home: Path) -> dict[str, str]:
    """The `admin` user's bearer header, with the password standalone generated."""
    password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password},
                       timeout=30).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_standalone_serves_the_dataset_page(tmp_path):
    store_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    fill_store(connect(store_url), tmp_path)
    env = _clean_env(tmp_path, store_url)
    base = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    log = tmp_path / "standalone.log"
    with open(log, "w") as out:
        process = subprocess.Popen([str(REPO / "scripts" / "standalone.sh")], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(base, process, log)
        home = Path(env["AIRFLOW_HOME"])
        auth = _admin_auth(base, home)

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
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    time.sleep(1)
    try:  # children of standalone share its session; make sure none outlive the test
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


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
    env = _clean_env(tmp_path, store_url)
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
    with open(log, "w") as out:
        process = subprocess.Popen([str(REPO / "scripts" / "standalone.sh"), "--port", port], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(base, process, log)
        home = Path(env["AIRFLOW_HOME"])
        auth = _admin_auth(base, home)
        deadline = time.monotonic() + 180
        while httpx.get(f"{base}/api/v2/dags/promptmill", headers=auth, timeout=30).status_code != 200:
            assert time.monotonic() < deadline, "the DAG was never parsed"
            time.sleep(2)

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
        _stop(process)
        fake.stop()
