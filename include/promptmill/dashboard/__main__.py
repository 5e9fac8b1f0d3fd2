"""Serve the dataset page without Airflow: ``python -m promptmill.dashboard [--host H] [--port P] [--db URL]``.

The store is ``--db``, else ``PROMPTMILL_DATABASE_URL``, else the embedded SQLite default (as for the CLI).
"""

from __future__ import annotations

import argparse

from promptmill.dashboard.app import create_app
from promptmill.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m promptmill.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", default=None, help="store URL (default: PROMPTMILL_DATABASE_URL or the embedded SQLite)")
    args = parser.parse_args(argv)

    import uvicorn

    url = Settings.from_env(database_url=args.db).effective_database_url
    uvicorn.run(create_app(lambda: url), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
