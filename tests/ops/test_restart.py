"""Issue #19.10 for real: the API server restarts while a task is queued.

Under `scripts/standalone.sh` the scheduler hands a queued task to a LocalExecutor worker, whose supervisor must
tell the API server (Task Execution API) that the task starts before its body runs. While the API server is down or
still starting, the supervisor retries that call within the `[workers] execution_api_*` budget, then kills the task
and reports the try failed; the scheduler marks it up for retry (retries are honoured), and the retry is spent the
same way while the API server is still away. With Airflow's default budget each try is spent within seconds, so a
run whose tries run out before the API server is back fails although no task body ever ran. The test stops the API
server of a running standalone (scheduler, LocalExecutor and DAG processor keep running), triggers a run of a probe
DAG, starts the API server again with the environment standalone gave its components, and requires the run to
succeed without spending a try. About two minutes on 2 cores.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from tests.ops.standalone import REPO, admin_auth, clean_env, start, stop, wait_for_dag, wait_healthy

DAG_ID = "restart_probe"
# How long the API server stays away after the run is triggered (it then needs a few seconds more to serve). Longer
# than the probe's two tries last with Airflow's default budget, short enough to keep the test near two minutes.
OUTAGE_S = 45
RUN_TIMEOUT_S = 240
WORKER_SETTINGS = ("EXECUTION_API_RETRIES", "EXECUTION_API_RETRY_WAIT_MIN", "EXECUTION_API_RETRY_WAIT_MAX")

# One retry, soon after: the project's DAG has more retries further apart, which lengthens the outage a run survives
# but not what happens to each try.
PROBE_DAG = f'''
from datetime import datetime, timedelta

from airflow.sdk import dag, task


@dag(dag_id="{DAG_ID}", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
     default_args={{"retries": 1, "retry_delay": timedelta(seconds=5)}})
def restart_probe():
    @task
    def first():
        return 1

    @task
    def second(value):
        return value + 1

    second(first())


restart_probe()
'''

pytestmark = [pytest.mark.slow, pytest.mark.airflow]


def _component(standalone: subprocess.Popen, *names: str) -> psutil.Process:
    for child in psutil.Process(standalone.pid).children():
        if any(name in part for part in child.cmdline() for name in names):
            return child
    pytest.fail(f"standalone has no {names[0]} process", pytrace=False)


def _stop_component(process: psutil.Process, port: int) -> None:
    """SIGTERM, then wait until the process is gone (standalone never reaps it: a zombie counts) and the port closed."""
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            gone = process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            gone = True
        if gone:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2)
            except httpx.ConnectError:
                return
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"the API server (pid {process.pid}) did not stop in 60 s", pytrace=False)


def _wait_run(base: str, auth: dict, run_id: str, logs: list[Path]) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        run = httpx.get(f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", headers=auth, timeout=30).json()
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(2)
    tails = "\n".join(log.read_text(errors="replace")[-3000:] for log in logs)
    pytest.fail(f"run {run_id} not finished after {RUN_TIMEOUT_S} s:\n{tails}", pytrace=False)


def test_a_task_queued_while_the_api_server_restarts_waits_for_it_and_the_run_succeeds(tmp_path):
    env = clean_env(tmp_path, f"sqlite:///{tmp_path / 'store.sqlite'}")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "restart_probe.py").write_text(PROBE_DAG)
    env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
    port = int(env["AIRFLOW__API__PORT"])
    base = f"http://127.0.0.1:{port}"
    log, api_log = tmp_path / "standalone.log", tmp_path / "api-server-restarted.log"
    standalone = start([str(REPO / "scripts" / "standalone.sh")], env, log)
    api_server = None
    try:
        wait_healthy(base, standalone, log)
        home = Path(env["AIRFLOW_HOME"])
        auth = admin_auth(base, home)
        wait_for_dag(base, auth, DAG_ID, log, timeout_s=120)
        # standalone gives its four components one environment: the scheduler's is the API server's
        components_env = _component(standalone, "scheduler").environ()
        airflow = str(REPO / ".venv" / "bin" / "airflow")

        _stop_component(_component(standalone, "api-server", "api_server"), port)
        run_id = "restart_probe_run"
        trigger = subprocess.run(
            [airflow, "dags", "trigger", DAG_ID, "--run-id", run_id],
            env=components_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert trigger.returncode == 0, trigger.stdout[-2000:] + trigger.stderr[-2000:]
        outage_end = time.monotonic() + OUTAGE_S
        while time.monotonic() < outage_end:
            assert standalone.poll() is None, f"standalone exited:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        api_server = start([airflow, "api-server"], components_env, api_log)
        wait_healthy(base, api_server, api_log)

        run = _wait_run(base, auth, run_id, [log, api_log])
        tis = httpx.get(
            f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", headers=auth, timeout=30
        ).json()["task_instances"]
        tries = {ti["task_id"]: (ti["state"], ti["try_number"]) for ti in tis}
        assert run["state"] == "success", f"the run failed while the API server restarted: {tries}"
        # the outage cost no try: the first try waited for the API server and ran
        assert tries == {"first": ("success", 1), "second": ("success", 1)}, tries
        # and the task did meet the outage: its start reached the restarted API server
        assert re.search(r"method=PATCH path=/execution/task-instances/\S+/run", api_log.read_text()), (
            api_log.read_text()[-3000:]
        )
    finally:
        if api_server is not None:
            stop(api_server)
        stop(standalone)


def _standalone_settings() -> dict[str, str]:
    text = (REPO / "scripts" / "standalone.sh").read_text()
    return dict(re.findall(r'export AIRFLOW__WORKERS__(\w+)="\$\{AIRFLOW__WORKERS__\1:-([^}]+)\}"', text))


def test_both_deployments_give_tasks_the_same_api_budget_and_it_ends_before_the_queued_timeout():
    """docker-compose.yaml's workers wait for the API server as standalone's do; a task still waiting when the
    scheduler's task_queued_timeout strikes would be failed by the stuck-in-queued check without its retries
    (CeleryExecutor), so the longest wait stays below it."""
    from airflow.configuration import conf

    standalone = _standalone_settings()
    assert set(WORKER_SETTINGS) <= set(standalone), standalone
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())["x-airflow-common"]["environment"]
    assert {name: str(compose[f"AIRFLOW__WORKERS__{name}"]) for name in WORKER_SETTINGS} == {
        name: standalone[name] for name in WORKER_SETTINGS
    }

    attempts = int(standalone["EXECUTION_API_RETRIES"])
    low, high = (
        float(standalone["EXECUTION_API_RETRY_WAIT_MIN"]),
        float(standalone["EXECUTION_API_RETRY_WAIT_MAX"]),
    )
    # tenacity's wait_random_exponential before attempt n+1: uniform(low, clamp(2 ** (n - 1), low, high))
    longest = sum(min(high, max(low, 2.0 ** (n - 1))) for n in range(1, attempts))
    longest += attempts * conf.getfloat("workers", "execution_api_timeout")
    assert longest < conf.getfloat("scheduler", "task_queued_timeout")
    # the shortest wait covers the outage the slow test makes, with the API server's start on top
    assert (attempts - 1) * low > OUTAGE_S + 30
