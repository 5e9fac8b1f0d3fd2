"""Run scripts/standalone.sh in tests: a clean environment on free ports, start and stop it with every child,
wait until it is healthy or has parsed a DAG, sign in as its generated admin."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.ops.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 240


def clean_env(tmp_path: Path, store_url: str) -> dict[str, str]:
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


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in its own session (so that stop ends its children too), its output into ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_dag(base: str, auth: dict[str, str], dag_id: str, log: Path, timeout_s: float) -> None:
    """Until the API server knows the DAG (the DAG processor has parsed it)."""
    deadline = time.monotonic() + timeout_s
    while httpx.get(f"{base}/api/v2/dags/{dag_id}", headers=auth, timeout=30).status_code != 200:
        assert time.monotonic() < deadline, f"the DAG {dag_id} was never parsed:\n{log.read_text()[-3000:]}"
        time.sleep(2)


def wait_healthy(base: str, process: subprocess.Popen, log: Path) -> dict:
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


def admin_auth(base: str, home: Path) -> dict[str, str]:
    """The `admin` user's bearer header, with the password standalone generated."""
    password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    token = httpx.post(f"{base}/auth/token", json={"username": "admin", "password": password},
                       timeout=30).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def stop(process: subprocess.Popen) -> None:
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
