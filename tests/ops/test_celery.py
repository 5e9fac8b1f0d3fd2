"""The CeleryExecutor setup of docker-compose.yaml, for real and without Docker (issue #19.9): Debian's redis-server
as the broker, a PostgreSQL metadata database, the scheduler, DAG processor, triggerer and API server, and two
`airflow celery worker`s with their own log-server ports, all on 127.0.0.1. The DAG runs on the bundled sample
exports; its mapped tasks must have run on both workers. Everything started is stopped at the end."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import PG_SERVER_URL, _pg_admin_engine
from tests.ops.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "include" / "promptmill" / "samples" / "landing"
RUN_TIMEOUT_S = 600

pytestmark = [pytest.mark.slow, pytest.mark.airflow]


class Processes:
    """Started processes, each in its own session with its log file; stopped together."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        out = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append((name, process))
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def check_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}", pytrace=False)

    def stop(self) -> None:
        for _, process in reversed(self.started):
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        for _, process in self.started:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for _, process in self.started:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)


@pytest.fixture
def metadata_db():
    admin = _pg_admin_engine()
    name = f"pm_airflow_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(PG_SERVER_URL).set(database=name, drivername="postgresql+psycopg2")
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
                             "AND pid <> pg_backend_pid()"), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))


def test_the_dag_runs_on_two_celery_workers(tmp_path, metadata_db):
    redis = shutil.which("redis-server")
    assert redis, "redis-server is missing: apt-get install redis-server (.ci/run installs it)"
    bin_dir = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
    airflow = str(bin_dir / "airflow") if (bin_dir / "airflow").exists() else shutil.which("airflow")
    redis_port, api_port = free_port(), free_port()
    landing = tmp_path / "landing"
    shutil.copytree(SAMPLES, landing)
    db_url = metadata_db.render_as_string(hide_password=False)
    base_url = f"http://127.0.0.1:{api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PROMPTMILL_", "_AIRFLOW", "OPENAI"))}
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url.replace("+psycopg2", ""),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
        # the settings the compose file sets too: where tasks reach the API server, and one JWT secret for all
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "PROMPTMILL_DATA_DIR": str(tmp_path / "data"),
        "PROMPTMILL_LANDING_DIR": str(landing),
        "PROMPTMILL_DATABASE_URL": f"sqlite:///{tmp_path / 'store.sqlite'}",
    })
    processes = Processes(tmp_path)
    try:
        processes.start("redis", [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no"], env)
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        subprocess.run([airflow, "pools", "set", "openai", "2", "OpenAI concurrency"], env=env, check=True,
                       capture_output=True, timeout=120)
        for name in ("scheduler", "dag-processor", "triggerer"):
            processes.start(name, [airflow, name], env)
        processes.start("api-server", [airflow, "api-server", "--port", str(api_port)], env)
        for worker in ("worker1", "worker2"):
            worker_env = {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())}
            processes.start(worker, [airflow, "celery", "worker", "--celery-hostname", f"{worker}@%h"], worker_env)

        engine = sa.create_engine(metadata_db)
        deadline = time.monotonic() + 300
        with engine.connect() as conn:
            while not conn.execute(sa.text("SELECT 1 FROM serialized_dag WHERE dag_id = 'promptmill'")).first():
                processes.check_alive()
                assert time.monotonic() < deadline, processes.log("dag-processor")[-3000:]
                time.sleep(2)
                conn.rollback()
        trigger = subprocess.run([airflow, "dags", "trigger", "promptmill", "--conf", '{"labeling": false}'],
                                 env=env, capture_output=True, text=True, timeout=120)
        assert trigger.returncode == 0, trigger.stderr
        deadline = time.monotonic() + RUN_TIMEOUT_S
        state = None
        while time.monotonic() < deadline:
            processes.check_alive()
            with engine.connect() as conn:
                state = conn.execute(sa.text("SELECT state FROM dag_run WHERE dag_id = 'promptmill'")).scalar()
            if state in ("success", "failed"):
                break
            time.sleep(3)
        assert state == "success", processes.log("scheduler")[-3000:]
        with engine.connect() as conn:
            mapped = conn.execute(sa.text(
                "SELECT count(*) FROM task_instance WHERE dag_id = 'promptmill' AND task_id = 'ingest_exports' "
                "AND state = 'success'")).scalar()
        engine.dispose()
        assert mapped >= 2
        ran = {worker: processes.log(worker).count("execute_workload") for worker in ("worker1", "worker2")}
        assert all(count > 0 for count in ran.values()), ran  # tasks ran on both workers
    finally:
        processes.stop()
