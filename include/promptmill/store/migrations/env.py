"""Alembic environment: promptmill always hands in an open connection (see store.db.migrate)."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic` CLI use without promptmill
    raise RuntimeError("run migrations through promptmill (promptmill.store.migrate), which passes a connection")

context.configure(connection=connection, target_metadata=None, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
