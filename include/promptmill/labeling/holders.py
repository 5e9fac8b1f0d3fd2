"""Who holds a labeling claim, and whether that process is still alive.

A claim keeps other runs off the prompts a run is sending until its lease runs out. A run killed with SIGKILL
cannot give its claims back, so without this a run started right after the crash would leave the dead run's
prompts pending for the rest of their lease. Each claim therefore names its holder, and a run starting deletes the
live-looking claims whose holder is gone:

- PostgreSQL: the holder keeps one session open for its whole run, holding a session advisory lock on a random
  key; the server releases it when the session ends, and the lock table (``pg_locks``, readable by every role)
  tells whether the session is still there. That covers a holder on any machine.
- SQLite (one machine by nature): the holder is the host name, process id and the process's start time, so a
  recycled process id does not pass for the dead run. A holder on another host is taken as alive: its lease
  decides, as before.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from promptmill.labeling.tables import label_claims

_PG_PREFIX = "pg-lock:"
_PROCESS_PREFIX = "process:"


class ClaimHolder:
    """This run's identity in ``label_claims.holder``; on PostgreSQL a session held open until :meth:`close`."""

    def __init__(self, engine: Engine) -> None:
        self._conn: Connection | None = None
        if engine.dialect.name == "postgresql":
            key = secrets.randbits(62) + 1
            self._conn = engine.connect()
            self._conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            self._conn.commit()  # the lock is the session's, not the transaction's: nothing stays open
            self.token = f"{_PG_PREFIX}{key}"
        else:
            me = psutil.Process()
            self.token = f"{_PROCESS_PREFIX}{socket.gethostname()}:{me.pid}:{me.create_time():.2f}"

    def close(self) -> None:
        if self._conn is not None:
            try:
                # A pooled connection keeps its session, and a session lock survives a rollback: unlock it.
                self._conn.execute(sa.text("SELECT pg_advisory_unlock_all()"))
                self._conn.commit()
            except sa.exc.DBAPIError:
                self._conn.invalidate()  # the session is gone already, and its lock with it
            finally:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ClaimHolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pg_alive(conn: Connection, keys: list[int]) -> set[int]:
    # A bigint advisory lock appears in pg_locks as (classid, objid) = (high, low) 32 bits, objsubid 1.
    rows = conn.execute(
        sa.text(
            "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks "
            "WHERE locktype = 'advisory' AND objsubid = 1 AND granted"
        )
    ).scalars()
    held = {int(value) for value in rows}
    return {key for key in keys if key in held}


def _process_alive(token: str) -> bool:
    try:
        host, pid_text, started_text = token[len(_PROCESS_PREFIX):].rsplit(":", 2)
        pid, started = int(pid_text), float(started_text)
    except ValueError:
        return True  # not ours to judge: its lease decides
    if host != socket.gethostname():
        return True
    if pid == os.getpid():
        return True
    try:
        return abs(psutil.Process(pid).create_time() - started) <= 0.01  # the token keeps two decimals
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.Error:
        return True


def dead_holders(conn: Connection, tokens: set[str]) -> set[str]:
    """The holders among ``tokens`` whose process is known to be gone."""
    dead: set[str] = set()
    pg_keys: dict[int, str] = {}
    for token in tokens:
        if token.startswith(_PG_PREFIX) and conn.dialect.name == "postgresql":
            try:
                pg_keys[int(token[len(_PG_PREFIX):])] = token
            except ValueError:
                continue
        elif token.startswith(_PROCESS_PREFIX) and not _process_alive(token):
            dead.add(token)
    if pg_keys:
        alive = _pg_alive(conn, list(pg_keys))
        dead.update(token for key, token in pg_keys.items() if key not in alive)
    return dead


def release_dead_claims(conn: Connection, now: dt.datetime) -> int:
    """Delete the unexpired claims whose holder is gone; returns how many. Their prompts are pending again (a
    label committed by the dead run stays: the label, not the claim, keeps a prompt from being sent twice)."""
    tokens = set(
        conn.execute(
            sa.select(label_claims.c.holder).distinct().where(
                label_claims.c.holder.is_not(None), label_claims.c.expires_at > now
            )
        ).scalars()
    )
    dead = dead_holders(conn, tokens) if tokens else set()
    if not dead:
        return 0
    result = conn.execute(sa.delete(label_claims).where(label_claims.c.holder.in_(sorted(dead))))
    return int(result.rowcount or 0)
