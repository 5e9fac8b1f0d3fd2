"""What is published: kept prompts with an ``ok`` label of the label version, read through SQLAlchemy Core.

Works the same on SQLite and PostgreSQL: timestamps are normalised to UTC here (SQLite hands back naive
datetimes) and the JSON text columns are parsed, so the writers never see a backend difference.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from promptmill.labeling.tables import label_versions, labels
from promptmill.publishing.errors import PublishError
from promptmill.store.schema import channels, messages, prompts

log = logging.getLogger("promptmill.publishing")

NO_OBJECT = "_no_object"


@dataclass(frozen=True, slots=True)
class PublishRow:
    row_id: str  # SHA-256 of the prompt text (first 16 hex): stable across stores and publications
    prompt: str
    description: str | None  # None for a `_no_object` row
    no_object: bool
    channel_id: str | None
    channel_name: str | None
    username_hash: str | None
    posted_at: dt.datetime | None  # UTC
    args: dict[str, Any]
    label_version: str


@dataclass(frozen=True, slots=True)
class RowSet:
    rows: list[PublishRow]  # sorted by row_id
    label_version: str
    skipped: dict[str, int]  # rows left out of every format, by reason


def row_id_of(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def hash_username(username: str | None, salt: str) -> str | None:
    """HMAC-SHA256 of the username keyed by ``salt`` (plain SHA-256 without one); 16 hex characters."""
    if not username:
        return None
    if salt:
        return hmac.new(salt.encode("utf-8"), username.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
    return hashlib.sha256(username.encode("utf-8")).hexdigest()[:16]


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite drops the offset; the store writes UTC
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def current_label_version(engine: Engine, label_settings: Any | None = None) -> str:
    """The label version the labeling settings produce (model + instructions), as the labeler computes it.

    Falls back to the newest label version that has ``ok`` labels when the labeling settings cannot be
    resolved (e.g. an instructions file that is not there on a publish-only machine).
    """
    from promptmill.labeling.contract import ContractError
    from promptmill.labeling.ledger import resolve_version
    from promptmill.labeling.settings import LabelSettings

    try:
        return resolve_version(label_settings or LabelSettings.from_env()).version
    except (ContractError, ValueError) as exc:
        newest = newest_labeled_version(engine)
        if newest is None:
            raise PublishError(f"cannot tell the current label version ({exc}) and the store has no labels") from None
        log.warning("publish: cannot resolve the labeling settings (%s); using label version %s", exc, newest)
        return newest


def newest_labeled_version(engine: Engine) -> str | None:
    has_labels = sa.exists().where(labels.c.version == label_versions.c.version, labels.c.status == "ok")
    query = (
        sa.select(label_versions.c.version)
        .where(has_labels)
        .order_by(label_versions.c.created_at.desc(), label_versions.c.version.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        return conn.execute(query).scalar()


def _publishable_query(label_version: str, include_no_object: bool) -> sa.Select:
    query = (
        sa.select(
            prompts.c.text,
            labels.c.description,
            labels.c.no_object,
            messages.c.channel_id,
            channels.c.name.label("channel_name"),
            messages.c.username,
            messages.c.posted_at,
            messages.c.args,
        )
        .select_from(prompts)
        .join(labels, sa.and_(labels.c.prompt_id == prompts.c.id, labels.c.version == label_version))
        .outerjoin(messages, messages.c.key == prompts.c.kept_message_key)
        .outerjoin(channels, channels.c.channel_id == messages.c.channel_id)
        .where(prompts.c.kept.is_(True), labels.c.status == "ok")
    )
    if not include_no_object:
        query = query.where(labels.c.no_object.is_(False))
    return query


def _parse_args(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        # orjson refuses what it could not write back (NaN, integers beyond 64 bits): such args stay text
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"_unparsed": text}
    return value if isinstance(value, dict) else {"_value": value}


def _unpublishable_reason(prompt: str, description: str | None) -> str | None:
    for text in (prompt, description or ""):
        if "\x00" in text:  # PostgreSQL cannot even store it; keep both backends publishing the same rows
            return "nul_character"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "invalid_unicode"
    return None


def iter_publishable(conn: Connection, label_version: str, include_no_object: bool, username_salt: str,
                     skipped: dict[str, int]) -> Iterator[PublishRow]:
    for rec in conn.execute(_publishable_query(label_version, include_no_object)).mappings():
        prompt = rec["text"]
        no_object = bool(rec["no_object"])
        description = None if no_object else (rec["description"] or "").strip() or None
        if not no_object and description is None:
            skipped["empty_description"] = skipped.get("empty_description", 0) + 1
            continue
        reason = _unpublishable_reason(prompt, description)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        yield PublishRow(
            row_id=row_id_of(prompt),
            prompt=prompt,
            description=description,
            no_object=no_object,
            channel_id=rec["channel_id"],
            channel_name=rec["channel_name"],
            username_hash=hash_username(rec["username"], username_salt),
            posted_at=as_utc(rec["posted_at"]),
            args=_parse_args(rec["args"]),
            label_version=label_version,
        )


def load_rows(engine: Engine, label_version: str, *, include_no_object: bool, username_salt: str) -> RowSet:
    """Every publishable row, ordered by ``row_id`` (a content order: the same set always comes out the same)."""
    skipped: dict[str, int] = {}
    with engine.connect() as conn:
        rows = list(iter_publishable(conn, label_version, include_no_object, username_salt, skipped))
    rows.sort(key=lambda row: (row.row_id, row.prompt))
    return RowSet(rows=rows, label_version=label_version, skipped=dict(sorted(skipped.items())))


def label_version_info(engine: Engine, label_version: str) -> dict[str, Any]:
    with engine.connect() as conn:
        rec = conn.execute(
            sa.select(label_versions.c.model, label_versions.c.instructions_sha256).where(
                label_versions.c.version == label_version
            )
        ).first()
    info: dict[str, Any] = {"version": label_version}
    if rec is not None:
        info.update(model=rec.model, instructions_sha256=rec.instructions_sha256)
    return info


def store_watermark(engine: Engine, label_version: str) -> dict[str, Any]:
    """How far the store had got when the rows were read: the newest kept prompt and the newest label used."""
    with engine.connect() as conn:
        max_prompt = conn.execute(sa.select(sa.func.max(prompts.c.id)).where(prompts.c.kept.is_(True))).scalar()
        kept = conn.execute(sa.select(sa.func.count()).select_from(prompts).where(prompts.c.kept.is_(True))).scalar()
        newest_label = conn.execute(
            sa.select(sa.func.max(labels.c.labeled_at)).where(labels.c.version == label_version)
        ).scalar()
    if isinstance(newest_label, str):  # SQLite aggregate over a DateTime column comes back as text
        newest_label = dt.datetime.fromisoformat(newest_label)
    return {
        "max_kept_prompt_id": max_prompt,
        "kept_prompts": int(kept or 0),
        "newest_label_at": format_timestamp(as_utc(newest_label)),
    }


def format_timestamp(value: dt.datetime | None) -> str | None:
    """One spelling for every backend: UTC, microseconds, a trailing Z."""
    if value is None:
        return None
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
