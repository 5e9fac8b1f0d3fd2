"""Store helpers that must behave the same with both PostgreSQL drivers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from promptmill.store.db import connect, sqlstate


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_sqlstate_reads_either_drivers_error_bare_or_wrapped(pg_url, driver):
    engine = connect(pg_url.replace("postgresql://", f"postgresql+{driver}://", 1))
    with engine.connect() as conn:
        with pytest.raises(sa.exc.DataError) as wrapped:
            conn.execute(sa.text("SELECT 1 / 0"))
    assert sqlstate(wrapped.value) == "22012"  # division_by_zero, through SQLAlchemy's wrapper
    assert sqlstate(wrapped.value.orig) == "22012"  # the driver's own exception
    assert sqlstate(ValueError("not a database error")) is None
