"""Shared test setup: Airflow configured once (before anything imports it), a throwaway PostgreSQL database
per session with a fresh schema per test, and SQLite stores in tmp_path.

PostgreSQL is required: if the server is unreachable the tests that need it ERROR with the reason (they are
never skipped). Point PROMPTMILL_TEST_PG_URL at another server to use it instead of 127.0.0.1:5432.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="promptmill-airflow-"))

# Airflow reads its configuration at import time: set it before any test module imports airflow.
os.environ.setdefault("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__PARALLELISM", "4")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}")
# Tests never read the developer's own store or landing folder.
for _var in [v for v in os.environ if v.startswith("PROMPTMILL_") and not v.startswith("PROMPTMILL_TEST_")]:
    del os.environ[_var]

PG_SERVER_URL = os.environ.get("PROMPTMILL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin_engine():
    import sqlalchemy as sa

    return sa.create_engine(PG_SERVER_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_database():
    """A throwaway PostgreSQL database for this test session (dropped at the end)."""
    import sqlalchemy as sa
    from promptmill.store.db import dispose_all, redact_url

    admin = _pg_admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # fail loudly: these tests must not silently skip in CI
        pytest.fail(
            f"PostgreSQL is required for the integration tests but {redact_url(PG_SERVER_URL)} is unreachable: "
            f"{str(getattr(exc, 'orig', exc)).strip()}. Start it (see .ci/run) or set PROMPTMILL_TEST_PG_URL.",
            pytrace=False,
        )
    name = f"pm_test_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    dispose_all()
    with admin.connect() as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"),
            {"n": name},
        )
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_database):
    """A fresh, empty schema in the session database, selected through the connection's search_path."""
    import sqlalchemy as sa

    schema = f"t_{secrets.token_hex(5)}"
    engine = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    yield f"{pg_database}?options=-csearch_path%3D{schema}"
    # Close this test's pooled connections: kept open until the session ends, a few hundred tests' pools
    # exhausted the server's max_connections (100).
    from promptmill.store.db import dispose_all

    dispose_all()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request):
    """Both backends: every store test runs on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def engine(store_url):
    from promptmill.store.db import connect

    return connect(store_url)


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's own metadata database (SQLite in the temporary AIRFLOW_HOME), migrated once per session."""
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.fail(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}", pytrace=False)
    # The pool the labeling task runs in (docker-compose's init and scripts/standalone.sh create it too).
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "pools", "set", "openai", "4", "OpenAI concurrency"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"airflow pools set failed:\n{result.stderr[-3000:]}", pytrace=False)
    return Path(os.environ["AIRFLOW_HOME"])
