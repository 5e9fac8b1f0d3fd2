"""Publishing test setup: helpers that insert kept prompts, their messages and labels directly (no ingest, no
labeling server needed). The stores (SQLite, and a fresh schema of the session's PostgreSQL database) come from
tests/conftest.py: ``store_url``, ``engine``, ``pg_url``."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json

import pytest
import sqlalchemy as sa
from promptmill.labeling.tables import label_versions, labels
from promptmill.store import db
from promptmill.store.schema import channels, message_verdicts, messages, prompts

LABEL_VERSION = "lv-test-1"
SALT = "test-salt-not-a-secret"


@pytest.fixture
def sqlite_engine(tmp_path):
    return db.connect(f"sqlite:///{tmp_path / 'store.sqlite'}")


_counter = itertools.count(1)


def ensure_label_version(engine, version: str = LABEL_VERSION, *, created_at: dt.datetime | None = None) -> None:
    with engine.begin() as conn:
        if conn.execute(sa.select(label_versions.c.version).where(label_versions.c.version == version)).first():
            return
        conn.execute(sa.insert(label_versions).values(
            version=version, model="test-model", instructions_sha256="ab" * 32,
            created_at=created_at or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))


def add_row(
    engine,
    prompt: str,
    description: str | None,
    *,
    no_object: bool = False,
    version: str = LABEL_VERSION,
    status: str = "ok",
    kept: bool = True,
    username: str = "alice#0001",
    channel_id: str = "100",
    channel_name: str = "dreambot-1",
    posted_at: dt.datetime | None = None,
    args: dict | None = None,
) -> int:
    """One kept prompt with its kept message and a label of ``version``; returns the prompt id."""
    ensure_label_version(engine, version)
    n = next(_counter)
    key = f"{channel_id}:{n}:{hashlib.sha1(prompt.encode()).hexdigest()[:8]}"
    posted = posted_at or dt.datetime(2023, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=n, microseconds=123456)
    with engine.begin() as conn:
        if not conn.execute(sa.select(channels.c.channel_id).where(channels.c.channel_id == channel_id)).first():
            conn.execute(sa.insert(channels).values(channel_id=channel_id, name=channel_name, guild_id="1",
                                                    guild_name="guild"))
        conn.execute(sa.insert(messages).values(
            key=key, channel_id=channel_id, author="bot", posted_at=posted, content=f"!dream {prompt}",
            username=username, args=json.dumps(args if args is not None else {"seed": n, "scale": 7.5})))
        conn.execute(sa.insert(message_verdicts).values(
            key=key, channel_id=channel_id, posted_at=posted, username=username,
            status="kept" if kept else "rejected"))
        prompt_id = conn.execute(sa.insert(prompts).values(
            text=prompt, text_hash=hashlib.sha256(prompt.encode()).hexdigest(), kept=kept,
            kept_message_key=key if kept else None, first_seen=posted).returning(prompts.c.id)).scalar_one()
        conn.execute(sa.insert(labels).values(
            prompt_id=prompt_id, version=version, status=status, description=None if no_object else description,
            no_object=no_object, error=None if status == "ok" else "boom", model="test-model", tokens=3,
            cost_usd=0.0001, labeled_at=posted + dt.timedelta(hours=1)))
    return prompt_id


SUBJECTS = ["a cat", "an old lighthouse", "a red bicycle", "lions in savanna", "a castle on a hill", "a robot",
            "a bowl of ramen", "a sailing ship", "a fox in the snow", "a mountain lake", "a dragon", "a city street"]
STYLES = ["highly detailed", "8 k", "trending on artstation", "octane render", "cinematic lighting", "digital art"]


def add_dataset(engine, count: int, *, start: int = 0, **kwargs) -> list[tuple[str, str]]:
    """``count`` distinct (prompt, description) rows."""
    added = []
    for i in range(start, start + count):
        subject = SUBJECTS[i % len(SUBJECTS)]
        prompt = f"{subject}, {STYLES[i % len(STYLES)]}, variation {i}"
        posted = dt.datetime(2023, 2, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i, microseconds=i)
        add_row(engine, prompt, subject, username=f"user{i % 7}", posted_at=posted, **kwargs)
        added.append((prompt, subject))
    return added
