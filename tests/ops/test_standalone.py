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
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password},
                           timeout=30).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}

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
