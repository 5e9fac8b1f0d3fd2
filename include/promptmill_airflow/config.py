"""Airflow connections and DAG params -> promptmill settings. Secrets are read here and never returned in
anything that goes to XCom, logs or asset events."""

from __future__ import annotations

import contextlib
from typing import Any

STORE_CONN_ID = "promptmill_db"
OPENAI_CONN_ID = "openai_default"


def _connection(conn_id: str):
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def store_url() -> str | None:
    """The store URL from the `promptmill_db` connection, or None for the package default. Never log it."""
    conn = _connection(STORE_CONN_ID)
    return None if conn is None else store_url_from_connection(conn)


def store_url_from_connection(conn) -> str:
    """The SQLAlchemy URL of a connection to the store (a Task SDK or an airflow.models Connection: the DAG's
    tasks and the plugin's page build the same URL). The extra's ``sqlalchemy_driver`` picks the driver;
    ``sslmode``, ``options``, ``application_name`` and ``connect_timeout`` go into the query. Never log it."""
    if conn.conn_type == "sqlite":
        return f"sqlite:///{conn.host}"
    from sqlalchemy.engine import URL

    extra = conn.extra_dejson or {}
    driver = extra.get("sqlalchemy_driver", "postgresql+psycopg2")
    query = {k: str(v) for k, v in extra.items() if k in ("sslmode", "options", "application_name", "connect_timeout")}
    return URL.create(
        driver,
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
        query=query,
    ).render_as_string(hide_password=False)


def client_config():
    """OpenAI client settings from the `openai_default` connection, else OPENAI_API_KEY / OPENAI_BASE_URL."""
    from promptmill.labeling import ClientConfig

    conn = _connection(OPENAI_CONN_ID)
    if conn is not None:
        return ClientConfig.from_connection(password=conn.password, host=conn.host, extra=conn.extra_dejson)
    return ClientConfig.from_env()


def settings(params: dict[str, Any]):
    """The run's promptmill Settings: environment defaults, the store connection, then the trigger form."""
    from promptmill.settings import Settings

    return Settings.from_env(
        database_url=store_url(),
        landing_dir=params.get("landing_dir") or None,
        channels=params.get("channels") or None,
        cleaning_profile=params.get("cleaning_profile"),
        near_dup_metric=params.get("near_dup_metric"),
        near_dup_threshold=params.get("near_dup_threshold"),
        near_dup_window_s=params.get("near_dup_window_s"),
    )


@contextlib.contextmanager
def options_conflict_fails_the_task():
    """Params other than the store's options (promptmill.store.options) fail the task at once with the one-line
    message: a retry would only fail again."""
    from airflow.sdk.exceptions import AirflowFailException
    from promptmill.store.options import OptionsConflict

    try:
        yield
    except OptionsConflict as exc:
        raise AirflowFailException(str(exc)) from None


def label_settings(params: dict[str, Any], run_id: str | None):
    """Labeling settings; the run id is the budget scope, so the budget covers every mapped batch of a run."""
    from promptmill.labeling import LabelSettings

    return LabelSettings.from_env(
        model=params.get("model") or None,
        mode=params.get("label_mode") or None,
        pack_size=params.get("pack_size") or None,
        limit=params.get("prompt_limit"),
        max_usd=params.get("budget_usd"),
        run_key=run_id,
    )


def publish_settings(params: dict[str, Any], data_dir):
    from promptmill.publishing import PublishSettings

    overrides = {
        "test_ratio": params.get("test_ratio"),
        "include_no_object": params.get("include_no_object"),
        "one_per_cluster": params.get("one_per_cluster"),
    }
    return PublishSettings.from_env(data_dir=data_dir, **{k: v for k, v in overrides.items() if v is not None})
