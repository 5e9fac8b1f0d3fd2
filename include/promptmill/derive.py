"""What a stored message row holds besides the raw message: the bot parser's and the clean-up's results.

Pure functions of the message content (and the cleaning profile), shared by ingest and reprocess.
"""

from __future__ import annotations

import functools
import hashlib

import orjson

from promptmill.bots import extract
from promptmill.cleaning import clean
from promptmill.records import RawMessage
from promptmill.store.bulk import MESSAGE_COLUMNS

PRE_REASON_INDEX = MESSAGE_COLUMNS.index("pre_reason")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@functools.lru_cache(maxsize=16_384)
def _prompt_columns(raw_prompt: str, profile: str) -> tuple[str, str | None, str | None, str | None]:
    """(raw_hash, clean_text, clean_hash, clean_reason) of a raw prompt. Cached: a user's retries often repeat the
    same prompt, and the clean-up is a large part of the work per message."""
    raw_hash = text_hash(raw_prompt)
    cleaned = clean(raw_prompt, profile=profile)
    if cleaned.reject is None and cleaned.text:
        return raw_hash, cleaned.text, text_hash(cleaned.text), None
    return raw_hash, None, None, cleaned.reject or "empty"


def build_row(raw: RawMessage, file_id: int, profile: str) -> tuple:
    """The stored row of one message (column order: store.bulk.MESSAGE_COLUMNS)."""
    gen = extract(raw.content, profile=profile)
    raw_prompt = gen.raw_prompt if gen.reject is None else None
    raw_hash = clean_text = clean_hash = clean_reason = None
    if raw_prompt is not None:
        raw_hash, clean_text, clean_hash, clean_reason = _prompt_columns(raw_prompt, profile)
    return (
        raw.key,
        raw.channel_id,
        raw.author_id,
        raw.author,
        raw.posted_at,
        raw.edited_at,
        raw.content,
        orjson.dumps(list(raw.attachments)).decode() if raw.attachments else None,
        file_id,
        gen.era,
        gen.username,
        raw_prompt,
        raw_hash,
        orjson.dumps(gen.args, default=str).decode() if gen.args else None,
        bool(gen.nsfw),
        gen.reject,
        clean_text,
        clean_hash,
        clean_reason,
        raw.seq,
    )
