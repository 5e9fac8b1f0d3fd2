"""Offline token estimates with the o200k_base encoding (bpe-openai ships it; tiktoken would download it)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

# Chat framing: each message costs a few tokens beyond its content, and the reply is primed with a few more.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3


@lru_cache(maxsize=1)
def _encoding():
    import bpe_openai

    return bpe_openai.get_encoding("o200k_base")


def count_tokens(text: str) -> int:
    return len(_encoding().encode(text))


def chat_prompt_tokens(messages: Sequence[dict]) -> int:
    """Prompt tokens of a chat request as the API counts them (content plus framing; schema not included)."""
    return TOKENS_REPLY_PRIMING + sum(TOKENS_PER_MESSAGE + count_tokens(str(m.get("content") or "")) for m in messages)
