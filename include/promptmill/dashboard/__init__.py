"""The dataset page: store queries, server-side SVG charts, and a FastAPI app serving the page and its JSON.

No Airflow here: ``plugins/promptmill_plugin.py`` mounts :func:`create_app` in the Airflow API server.
"""

from promptmill.dashboard.app import create_app
from promptmill.dashboard.queries import collect_summary

__all__ = ["collect_summary", "create_app"]
