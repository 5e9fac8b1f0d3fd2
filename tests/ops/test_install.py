"""Issue #20.7: the package installed into an existing Airflow, as a user would: the built wheel and Airflow 3.3 into
a fresh virtualenv, resolved from pyproject.toml's ranges (not the lock). The DAG must parse there and
`promptmill status` run. Needs the package index (PyPI); uv's cache makes a repeat quick."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def _uv() -> str:
    candidate = Path(sys.executable).parent / "uv"
    found = str(candidate) if candidate.exists() else shutil.which("uv")
    assert found, "uv is missing: make setup installs it"
    return found


def test_the_wheel_installs_into_a_fresh_airflow_with_what_it_needs(tmp_path):
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PROMPTMILL_", "VIRTUAL_ENV"))}
    # Built from a copy: setuptools writes build/ and *.egg-info into the folder it builds
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "include", source / "include", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(source)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("promptmill-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--python", "3.11", str(venv)], env=env, check=True, capture_output=True, timeout=300)
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        [uv, "pip", "install", "--python", python, "apache-airflow==3.3.2", f"promptmill[airflow] @ {wheel.as_uri()}"],
        env=env, capture_output=True, text=True, timeout=1200,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]

    run_env = {**env, "AIRFLOW_HOME": str(tmp_path / "airflow_home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "PROMPTMILL_DATA_DIR": str(tmp_path / "data")}
    parse = subprocess.run(
        [python, "-c", "from airflow.dag_processing.dagbag import DagBag; import sys; "
                       f"bag = DagBag(dag_folder={str(REPO / 'dags')!r}); "
                       "print(sorted(bag.dag_ids), bag.import_errors); sys.exit(0 if 'promptmill' in bag.dag_ids "
                       "and not bag.import_errors else 1)"],
        env=run_env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert parse.returncode == 0, parse.stdout + parse.stderr[-3000:]
    status = subprocess.run([str(venv / "bin" / "promptmill"), "status"], env=run_env, capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert status.returncode == 0, status.stderr[-3000:]
    assert f"store: sqlite:///{tmp_path / 'data' / 'promptmill.sqlite'}" in status.stdout
