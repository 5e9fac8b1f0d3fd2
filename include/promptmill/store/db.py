"""Engine creation and schema migration for both backends."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
import time
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


class LockTimeout(StoreError):
    """Another process held a store lock for longer than the caller was willing to wait."""


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
        if parsed.host or parsed.port or parsed.username:
            raise StoreError(f"invalid SQLite URL {redact_url(url)!r}: a SQLite URL names a file, not a host: "
                             "sqlite:///relative/path.sqlite or sqlite:////absolute/path.sqlite")
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).expanduser().parent
            if not folder.is_dir():
                raise StoreError(f"cannot open the SQLite store {database}: the folder {folder} does not exist")
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
def sqlite_file_lock(engine: Engine, purpose: str, *, timeout_s: float | None = None):
    """An exclusive lock beside a SQLite database file, across processes (no-op for in-memory databases).

    Waits for ever, or raises LockTimeout after ``timeout_s``. The kernel releases it when its holder dies.
    """
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).expanduser().with_name(f"{Path(database).name}.{purpose}.lock")
    with open(lock_path, "a+") as handle:
        if timeout_s is None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            _poll(lambda: _try_flock(handle), timeout_s, purpose)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_flock(handle) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _poll(try_once, timeout_s: float | None, purpose: str) -> None:
    """Call ``try_once`` with growing pauses until it returns True; LockTimeout after ``timeout_s`` (None: never)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    pause = 0.05
    while not try_once():
        if deadline is not None and time.monotonic() >= deadline:
            raise LockTimeout(f"the {purpose} lock is held by another process")
        remaining = 1.0 if deadline is None else max(deadline - time.monotonic(), 0.01)
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 1.0)


def lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key (signed 64-bit) for a lock known by name (e.g. one per destination)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8", "surrogateescape")).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def store_lock(conn: sa.Connection, key: int, purpose: str, *, timeout_s: float | None = None):
    """One holder at a time per store, across processes, held around (not inside) the holder's transactions.

    On PostgreSQL a session advisory lock on ``conn``, taken before any transaction of the holder begins: a
    REPEATABLE READ snapshot is taken by a transaction's first statement, so a lock taken inside it would leave a
    waiter working on a snapshot from before the previous holder committed. Polled with short statements rather
    than waited for in one, which would hold a snapshot (and vacuum back) while the other holder runs. On SQLite a
    file lock named by ``purpose``. Either is released by the server or the kernel when its holder dies.
    """
    if conn.dialect.name != "postgresql":
        with sqlite_file_lock(conn.engine, purpose, timeout_s=timeout_s):
            yield
        return

    def try_once() -> bool:
        acquired = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.commit()
        return bool(acquired)

    try:
        _poll(try_once, timeout_s, purpose)
        yield
    finally:
        # also when interrupted right after the lock was granted (unlocking a lock not held just says false)
        try:
            conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
        except Exception:
            # a broken connection has released its locks; never return one that might still hold it to the pool
            conn.invalidate()


def alembic_config(conn: sa.Connection):
    """The alembic configuration of promptmill's migrations, running on ``conn``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


# The newest migration (tests/test_migrations.py checks it against the scripts). A store already there needs no
# alembic at all: importing and running it on every command would be most of a re-run over ingested files.
HEAD_REVISION = "0013_label_evaluations"


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
