"""Fixtures: a local fake OpenAI server, and stores on SQLite and on a throwaway PostgreSQL database."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # for `tests.fake_openai`
    sys.path.insert(0, str(REPO_ROOT))

from promptmill.labeling.client import ClientConfig  # noqa: E402
from promptmill.labeling.settings import LabelSettings  # noqa: E402
from promptmill.labeling.tables import (  # noqa: E402
    label_batch_items,
    label_batch_jobs,
    label_requests,
    label_versions,
    labels,
)
from promptmill.store import db  # noqa: E402
from promptmill.store.schema import prompts  # noqa: E402

from tests.fake_openai.server import FakeOpenAI  # noqa: E402

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
from labeling_helpers import API_KEY  # noqa: E402


@pytest.fixture(scope="session")
def pg_url():
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # a missing server must fail the run, not skip it
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 (user postgres) is unreachable: {exc}", pytrace=False)
    name = f"pm_lbl_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    yield url
    db.dispose_all()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


def _clean(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for table in (label_batch_items, label_batch_jobs, labels, label_requests, label_versions, prompts):
            conn.execute(sa.delete(table))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """The URL of an empty, migrated store, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = db.connect(url)
    _clean(engine)
    return url


@pytest.fixture
def engine(store_url):
    return db.connect(store_url)


@pytest.fixture
def sqlite_engine(sqlite_url):
    return db.connect(sqlite_url)


@pytest.fixture
def fake():
    server = FakeOpenAI(api_key=API_KEY, batch_delay=0.05).start()
    yield server
    server.stop()


@pytest.fixture
def client_config(fake):
    return ClientConfig(api_key=API_KEY, base_url=fake.base_url)


@pytest.fixture
def settings(tmp_path):
    return LabelSettings(
        concurrency=4,
        max_retries=4,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        request_timeout_s=5.0,
        batch_poll_s=0.05,
    )
