"""The dataset page as a FastAPI app: the HTML page, the same data as JSON, and each publication's manifest.

Airflow-free on purpose: the Airflow plugin (plugins/promptmill_plugin.py) mounts it in the API server and passes a
resolver reading the ``promptmill_db`` connection plus Airflow's authentication dependency; the tests and
``python -m promptmill.dashboard`` serve it alone.

Routes (relative to where the app is mounted):
  GET /                                   the page
  GET /api/summary                        the page's data as JSON
  GET /publications/{id}/manifest.json    the manifest.json stored with one publication
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.params import Depends
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from promptmill.dashboard.page import render_error_page, render_page
from promptmill.dashboard.queries import collect_summary, current_label_version, publication_manifest
from promptmill.store.db import StoreError, connect, redact_url

log = logging.getLogger("promptmill.dashboard")

NO_STORE = {"Cache-Control": "no-store"}


class StoreUnavailable(Exception):
    """The store could not be opened or read; the message is safe to show (no password)."""


def create_app(
    database_url_resolver: Callable[[], str],
    *,
    label_version_resolver: Callable[[], str | None] = current_label_version,
    dependencies: Sequence[Depends] | None = None,
    title: str = "Prompt dataset",
) -> FastAPI:
    """The dataset app. ``database_url_resolver`` is called on every request (a changed connection applies at once);
    ``dependencies`` guard every route (Airflow passes its "user is authenticated" check)."""
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None, dependencies=list(dependencies or []))

    def open_store() -> Engine:
        url = database_url_resolver()
        try:
            return connect(url)
        except StoreError as exc:
            raise StoreUnavailable(_without_password(str(exc), url)) from None

    def summary() -> dict[str, Any]:
        engine = open_store()
        try:
            return collect_summary(engine, label_version=label_version_resolver())
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
            log.warning("dataset page: reading %s failed: %s", redact_url(str(engine.url)), reason)
            raise StoreUnavailable(
                _without_password(f"cannot read {redact_url(str(engine.url))}: {reason}", str(engine.url))
            ) from None

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable):
        if request.url.path.endswith("/api/summary") or request.url.path.endswith(".json"):
            return JSONResponse({"error": str(exc)}, status_code=503, headers=NO_STORE)
        return HTMLResponse(render_error_page(str(exc)), status_code=503, headers=NO_STORE)

    @app.get("/", response_class=HTMLResponse, name="dataset_page")
    def dataset_page(request: Request) -> HTMLResponse:
        return HTMLResponse(render_page(summary(), request.scope.get("root_path", "")), headers=NO_STORE)

    @app.get("/api/summary", name="dataset_summary")
    def dataset_summary() -> JSONResponse:
        return JSONResponse(summary(), headers=NO_STORE)

    @app.get("/publications/{publication_id}/manifest.json", name="publication_manifest")
    def manifest(publication_id: int) -> JSONResponse:
        found = publication_manifest(open_store(), publication_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no publication {publication_id}")
        return JSONResponse(found, headers=NO_STORE)

    return app


def _without_password(message: str, url: str) -> str:
    """Belt and braces: drivers may echo connection details; never let the password through."""
    try:
        password = make_url(url).password
    except Exception:
        return message
    if password:
        message = message.replace(str(password), "***")
    return message
