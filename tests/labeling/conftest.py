"""Fixtures: a local fake OpenAI server, and stores on SQLite and on PostgreSQL (``pg_url``, a fresh schema of the
session's throwaway database, comes from tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # for `tests.fake_openai`
    sys.path.insert(0, str(REPO_ROOT))

from labeling_helpers import API_KEY  # noqa: E402
from promptmill.labeling.client import ClientConfig  # noqa: E402
from promptmill.labeling.settings import LabelSettings  # noqa: E402
from promptmill.store import db  # noqa: E402

from tests.fake_openai.server import FakeOpenAI  # noqa: E402


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    """The URL of an empty, migrated store, on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    else:
        url = request.getfixturevalue("pg_url")
    db.connect(url)  # migrated before the test starts
    return url


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
