"""The Airflow plugin as Airflow loads it: registered views and app, the store URL from the connection."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plugin_module():
    spec = importlib.util.spec_from_file_location("promptmill_plugin_under_test", REPO / "plugins" / "promptmill_plugin.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_airflow_loads_the_plugin_from_the_plugins_folder():
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    views, _ = plugins_manager._get_ui_plugins()
    assert [a["url_prefix"] for a in apps if a["name"] == "Prompt dataset"] == ["/promptmill"]
    assert [v["url_route"] for v in views if v["name"] == "Prompt dataset"] == ["prompt-dataset"]
    assert plugins_manager._get_plugins()[1] == {}  # no import errors


def test_plugin_entries_validate_against_airflows_models(plugin_module):
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    plugin = plugin_module.PromptmillPlugin
    (app_entry,) = plugin.fastapi_apps
    assert not any(app_entry["url_prefix"].startswith(p) for p in RESERVED_URL_PREFIXES)
    (view,) = plugin.external_views
    parsed = ExternalViewResponse.model_validate(view)
    assert parsed.destination == "nav" and parsed.href == app_entry["url_prefix"] + "/"


def test_routes_require_an_airflow_user(plugin_module):
    from fastapi.testclient import TestClient

    client = TestClient(plugin_module.build_app())
    for path in ("/", "/api/summary", "/publications/1/manifest.json"):
        assert client.get(path).status_code == 401


def test_store_url_from_the_connection(plugin_module, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PROMPTMILL_DB", json.dumps({
        "conn_type": "postgres", "host": "db.internal", "port": 6432, "login": "pm", "password": "s3cr3t",
        "schema": "store"}))
    assert plugin_module.resolve_store_url() == "postgresql+psycopg2://pm:s3cr3t@db.internal:6432/store"
    monkeypatch.setenv("AIRFLOW_CONN_PROMPTMILL_DB", json.dumps({"conn_type": "sqlite", "host": "/srv/pm.sqlite"}))
    assert plugin_module.resolve_store_url() == "sqlite:////srv/pm.sqlite"


def test_store_url_is_the_dags_own_with_the_driver_and_the_query(plugin_module, monkeypatch):
    """The page reads the store the DAG's tasks write: the extra's driver, sslmode and options are kept."""
    from promptmill_airflow import config

    monkeypatch.setenv("AIRFLOW_CONN_PROMPTMILL_DB", json.dumps({
        "conn_type": "postgres", "host": "db.internal", "port": 6432, "login": "pm", "password": "s3cr3t",
        "schema": "store", "extra": {"sqlalchemy_driver": "postgresql+psycopg", "sslmode": "verify-full",
                                     "options": "-c statement_timeout=60000"}}))
    url = plugin_module.resolve_store_url()
    assert url == config.store_url()
    assert url == ("postgresql+psycopg://pm:s3cr3t@db.internal:6432/store"
                   "?options=-c+statement_timeout%3D60000&sslmode=verify-full")


def test_store_url_defaults_to_the_package_setting(plugin_module, monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_PROMPTMILL_DB", raising=False)
    monkeypatch.setenv("PROMPTMILL_DATABASE_URL", f"sqlite:///{tmp_path}/x.sqlite")
    assert plugin_module.resolve_store_url() == f"sqlite:///{tmp_path}/x.sqlite"
