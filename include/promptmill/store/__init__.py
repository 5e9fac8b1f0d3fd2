"""The store: SQLAlchemy Core tables, alembic migrations, engine creation and bulk loading.

PostgreSQL is the production store; SQLite is the embedded default. Both go through the same code.
"""

from promptmill.store.db import StoreError, connect, create_engine_for, migrate, redact_url

__all__ = ["StoreError", "connect", "create_engine_for", "migrate", "redact_url"]
