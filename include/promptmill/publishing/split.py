"""The stable train/test split: a row's split is a pure function of its key and the test ratio.

The key is hashed (SHA-256 with a fixed domain prefix) to a number in [0, 1); below the ratio is test. Nothing else
takes part (no row order, no ids, no random state), so a refresh never moves a row and adding rows only adds rows.
Raising the ratio only moves rows from train to test, never the other way.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

# Changing this prefix would reshuffle every published split: it is part of the format.
_DOMAIN = b"promptmill-split-v1\x00"
_SCALE = float(1 << 64)
_SPACES = re.compile(r"\s+")

TRAIN = "train"
TEST = "test"


def split_point(key: str) -> float:
    """Where ``key`` falls in [0, 1): the first 8 bytes of its hash as a fraction."""
    digest = hashlib.sha256(_DOMAIN + key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign_split(key: str, test_ratio: float) -> str:
    return TEST if split_point(key) < test_ratio else TRAIN


def description_group(description: str) -> str:
    """The group key of a description: case, Unicode form and spacing do not separate "A cat" from "a  cat"."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", description)).strip().casefold()


def split_key_of(prompt: str, description: str | None, split_key: str) -> str:
    """The text a row's split is keyed on. A row without a description (``_no_object``) falls back to its prompt."""
    if split_key == "description" and description:
        return "description\x00" + description_group(description)
    return "prompt\x00" + prompt
