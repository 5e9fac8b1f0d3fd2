"""Engine creation and schema migration for both backends."""

from __future__ import annotations

import contextlib
import fcntl
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every promptmill process migrating one database.
_PG_MIGRATION_LOCK = 7_142_600_001

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, raised by either driver, bare or wrapped by SQLAlchemy (``.orig``).

    psycopg 3 calls it ``sqlstate``, psycopg2 ``pgcode``: reading only one of them made retries dead code with the
    other driver.
    """
    error = getattr(exc, "orig", None) or exc
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


# serialization_failure, deadlock_detected: a concurrent transaction won; running the same work again succeeds
RETRYABLE_SQLSTATES = ("40001", "40P01")


class StoreError(Exception):
    """The store cannot be reached or used. The message names the URL without its password."""


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def normalize_url(url: str) -> str:
    # Heroku/Airflow-style "postgres://" is not a SQLAlchemy dialect name.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    return url


def create_engine_for(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StoreError(f"invalid database URL {redact_url(url)!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    if backend == "postgresql":
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)

        @sa.event.listens_for(engine, "connect")
        def _session_settings(dbapi_conn, _record):
            # Dedupe's temporary tables of a large load far exceed the default 8 MB of local buffers; this is a
            # ceiling, allocated only as used, and can only be set before a session's first temporary table.
            cur = dbapi_conn.cursor()
            cur.execute("SET temp_buffers = '256MB'")
            cur.close()
            dbapi_conn.commit()

        return engine
    raise StoreError(f"unsupported database {redact_url(url)!r}: use a postgresql:// or sqlite:// URL")


@contextlib.contextmanager
def _migration_lock(engine: Engine):
    """Serialise migrations of one database across processes (two tasks starting at once)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
    else:
        with sqlite_file_lock(engine, "migrate"):
            yield


@contextlib.contextmanager
def sqlite_file_lock(engine: Engine, purpose: str):
    """An exclusive lock beside a SQLite database file, across processes (no-op for in-memory databases)."""
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).expanduser().with_name(f"{Path(database).name}.{purpose}.lock")
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def alembic_config(conn: sa.Connection):
    """The alembic configuration of promptmill's migrations, running on ``conn``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


# The newest migration (tests/test_migrations.py checks it against the scripts). A store already there needs no
# alembic at all: importing and running it costs ~0.7 s on every command, most of a re-run over ingested files.
HEAD_REVISION = "0008_deferred_verdicts"


def is_at_head(engine: Engine) -> bool:
    """True if the store's schema is at HEAD_REVISION (False for a new or older store, or one alembic never saw)."""
    try:
        with engine.connect() as conn:
            versions = [row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
    except sa.exc.DBAPIError:
        return False
    return versions == [HEAD_REVISION]


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``, the newest by default (idempotent, safe when run concurrently)."""
    from alembic import command

    with _migration_lock(engine):
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), revision)


def check_reachable(engine: Engine) -> None:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"cannot connect to the database {redact_url(str(engine.url))}: {reason}") from None


def connect(url: str, *, run_migrations: bool = True) -> Engine:
    """An engine for ``url`` with the schema migrated; cached per URL within the process."""
    url = normalize_url(url)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        engine = create_engine_for(url)
        check_reachable(engine)
        if run_migrations and not is_at_head(engine):
            try:
                migrate(engine)
            except StoreError:
                raise
            except Exception as exc:
                raise StoreError(f"cannot migrate the database {redact_url(url)}: {exc}") from exc
        _engines[url] = engine
        return engine


def dispose_all() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
