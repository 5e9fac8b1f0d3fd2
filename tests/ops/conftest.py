"""Fixtures of the deployment and dataset page tests: a filled store on each backend, and the app served on
127.0.0.1 by a real uvicorn server (for Chromium)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.ops.dataset import fill_store


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def filled(engine, tmp_path):
    """(engine, facts) for a store filled through the real ingest plus direct label/ledger/publication rows."""
    return engine, fill_store(engine, tmp_path)


@pytest.fixture
def served_app(tmp_path):
    """Start a FastAPI app under uvicorn on a free 127.0.0.1 port; returns a function app -> base URL."""
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def serve(app) -> str:
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield serve
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)
