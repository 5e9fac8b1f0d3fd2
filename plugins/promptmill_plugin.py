"""Airflow plugin: the "Prompt dataset" page of the Airflow UI.

The API server mounts the promptmill dashboard app (include/promptmill/dashboard) under ``/promptmill`` and the
UI lists it in the navigation ("Browse" menu) as an embedded view. The page reads the store named by the
``promptmill_db`` connection (the same one the DAG uses), else the package default
(``PROMPTMILL_DATABASE_URL`` or the embedded SQLite file). Every route requires a signed-in Airflow user; the
browser's Airflow session cookie is sent with the embedded page, so no second login is needed.

  /promptmill/                               the page
  /promptmill/api/summary                    the same data as JSON
  /promptmill/publications/<id>/manifest.json  one publication's manifest
"""

from __future__ import annotations

import logging

from airflow.plugins_manager import AirflowPlugin
from promptmill_airflow.config import STORE_CONN_ID, store_url_from_connection

log = logging.getLogger(__name__)

URL_PREFIX = "/promptmill"


def resolve_store_url() -> str:
    """The ``promptmill_db`` connection (env var, secrets backend or metadata DB), as the DAG's tasks read it
    (promptmill_airflow.config), else the package default."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(STORE_CONN_ID)
    except AirflowNotFoundException:
        from promptmill.settings import Settings

        return Settings.from_env().effective_database_url
    return store_url_from_connection(conn)


def build_app():
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends
    from promptmill.dashboard import create_app

    return create_app(resolve_store_url, dependencies=[Depends(requires_authenticated())])


class PromptmillPlugin(AirflowPlugin):
    name = "promptmill"
    fastapi_apps = [{"app": build_app(), "url_prefix": URL_PREFIX, "name": "Prompt dataset"}]
    external_views = [
        {
            "name": "Prompt dataset",
            "href": f"{URL_PREFIX}/",
            # url_route set: the UI embeds href in its own page at /plugin/prompt-dataset
            "url_route": "prompt-dataset",
            "destination": "nav",
            "category": "browse",
        }
    ]
