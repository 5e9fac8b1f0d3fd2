"""The wire contract: what one labeling request looks like and how its answer is checked.

Any OpenAI-compatible Chat Completions server can serve it:

* system message: the instructions template (with its few-shot examples);
* last user message: a JSON array ``[{"id": <int>, "prompt": <string>}, ...]``, ids small and local to the request;
* ``response_format``: strict ``json_schema``; root object with one property ``labels``, an array of
  ``{"id": <int>, "description": <string>}``; ``description`` is the description or ``_no_object``.

Prompts travel only as JSON string values, so a prompt that "ignores the above" is data for its own item: it
cannot add items, rename ids or reach another item's answer (the answer is joined back on ids only).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from promptmill.labeling.errors import FatalAPIError
from promptmill.labeling.settings import LabelSettings

NO_OBJECT = "_no_object"
SCHEMA_NAME = "prompt_labels"

RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "labels": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"id": {"type": "integer"}, "description": {"type": "string"}},
                "required": ["id", "description"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["labels"],
    "additionalProperties": False,
}

RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": SCHEMA_NAME, "schema": RESPONSE_SCHEMA, "strict": True},
}

# max_completion_tokens when the settings leave it open: the JSON frame plus a generous line per item,
# so a pack is never cut short (a truncated array loses the whole request).
_ANSWER_FRAME_TOKENS = 32
_ANSWER_TOKENS_PER_ITEM = 60


class ContractError(Exception):
    """The instructions template cannot be used (missing, empty). Names the file."""


@dataclass(frozen=True, slots=True)
class Instructions:
    text: str
    sha256: str
    path: Path


@lru_cache(maxsize=16)
def _load_instructions(path: Path, mtime_ns: int) -> Instructions:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ContractError(f"cannot read the labeling instructions {path}: {exc.strerror or exc}") from None
    if not text:
        raise ContractError(f"the labeling instructions {path} are empty")
    return Instructions(text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), path=path)


def load_instructions(settings: LabelSettings) -> Instructions:
    path = settings.effective_instructions_file.resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ContractError(f"cannot read the labeling instructions {path}: {exc.strerror or exc}") from None
    return _load_instructions(path, mtime)


def label_version(model: str, instructions: Instructions) -> str:
    """The label version: a short hash of the model and the instructions (with the schema they answer in)."""
    material = "\0".join([model, instructions.sha256, json.dumps(RESPONSE_FORMAT, sort_keys=True)])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:16]


def user_message(items: Sequence[tuple[int, str]]) -> str:
    """The items as compact JSON (every separator space is a token paid per item)."""
    return json.dumps([{"id": local_id, "prompt": text} for local_id, text in items], ensure_ascii=False, separators=(",", ":"))


def max_completion_tokens(settings: LabelSettings, item_count: int) -> int:
    if settings.max_tokens:
        return settings.max_tokens
    return _ANSWER_FRAME_TOKENS + _ANSWER_TOKENS_PER_ITEM * item_count


# What a server that rejects strict structured outputs gets instead (the answer is validated here either way),
# with the shape the schema would have enforced spelled out.
JSON_MODE: dict[str, Any] = {"type": "json_object"}
JSON_MODE_SHAPE = ('Answer with one JSON object and nothing else: {"labels": [{"id": <the item\'s id>, '
                   '"description": "<its description>"}, ...]}, one entry per item.')


class RequestShape:
    """What this server accepts: every request body of a run is built here, and a server that rejects an optional
    field (many local OpenAI-compatible servers: a strict json_schema response_format, reasoning_effort) is
    answered by :meth:`learn`, after which bodies go without it (JSON mode, the answer validated here as always;
    the field left out)."""

    _FIELDS = (
        ("reasoning_effort", ("reasoning_effort",), "left out"),
        ("response_format", ("response_format", "json_schema", "structured output"), "JSON mode instead"),
    )

    def __init__(self, settings: LabelSettings, instructions: Instructions) -> None:
        self.settings = settings
        self.instructions = instructions
        self.unsupported: frozenset[str] = frozenset()

    def body(self, items: Sequence[tuple[int, str]]) -> dict[str, Any]:
        return request_body(self.settings, self.instructions, items, unsupported=self.unsupported)

    async def chat(self, client: Any, items: Sequence[tuple[int, str]], on_fallback: Callable[[str], None]) -> Any:
        """``client.chat`` of ``items`` in this shape; a field the server rejects is learned (``on_fallback`` gets
        the note to report) and the request goes again without it. Other errors are raised."""
        while True:
            try:
                return await client.chat(self.body(items), items=len(items))
            except FatalAPIError as exc:
                note = self.learn(exc.status, str(exc))
                if note is None:
                    raise
                on_fallback(note)

    def learn(self, status: int | None, message: str) -> str | None:
        """The note to report when ``message`` (a 400/422) rejects a field this shape still sends, else None."""
        if status not in (400, 422):
            return None
        text = message.lower()
        for name, words, instead in self._FIELDS:
            if name not in self.unsupported and any(word in text for word in words):
                self.unsupported |= {name}
                return f"the server rejected {name}: {instead}"
        return None


def request_body(
    settings: LabelSettings, instructions: Instructions, items: Sequence[tuple[int, str]], *, for_batch: bool = False,
    unsupported: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The Chat Completions body for ``items`` (local id, prompt text); the same for sync calls and batch lines.
    ``unsupported`` names what the server rejected (``response_format``: JSON mode instead of a strict schema;
    ``reasoning_effort``: left out)."""
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": [
            {"role": "system", "content": instructions.text},
            {"role": "user", "content": user_message(items)},
        ],
        "response_format": JSON_MODE if "response_format" in unsupported else RESPONSE_FORMAT,
        "max_completion_tokens": max_completion_tokens(settings, len(items)),
    }
    if "response_format" in unsupported:
        body["messages"][0] = {"role": "system", "content": f"{instructions.text}\n\n{JSON_MODE_SHAPE}"}
    if settings.temperature is not None:
        body["temperature"] = settings.temperature
    if settings.reasoning_effort and "reasoning_effort" not in unsupported:
        body["reasoning_effort"] = settings.reasoning_effort
    if settings.service_tier and not for_batch:
        body["service_tier"] = settings.service_tier
    return body


@dataclass(slots=True)
class AnswerCheck:
    """The verdict on one answer, per local id."""

    accepted: dict[int, str] = field(default_factory=dict)  # id -> description (may be NO_OBJECT)
    invalid: dict[int, str] = field(default_factory=dict)  # id -> why the description was refused
    missing: set[int] = field(default_factory=set)  # asked for, not (usably) answered
    unknown_ids: int = 0  # answered ids that were never asked
    duplicate_ids: int = 0  # extra answers for an id
    malformed: str | None = None  # the whole answer was unusable, and why

    @property
    def complete(self) -> bool:
        return not (self.invalid or self.missing or self.malformed)


def check_description(value: Any, max_chars: int) -> tuple[str | None, str | None]:
    """(clean description, None) or (None, reason). A description is one trimmed line of bounded length."""
    if not isinstance(value, str):
        return None, f"description is {type(value).__name__}, not a string"
    text = value.strip()
    if not text:
        return None, "empty description"
    if any(ch in text for ch in "\r\n\u2028\u2029"):
        return None, "description spans several lines"
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        return None, "description contains control characters"
    if len(text) > max_chars:
        return None, f"description longer than {max_chars} characters"
    if text.lower() == NO_OBJECT:
        return NO_OBJECT, None
    return text, None


def check_answer(content: str | None, expected_ids: Sequence[int], *, max_chars: int) -> AnswerCheck:
    """Join an answer back on ids. Every asked id must come back exactly once with a valid description.

    Unknown ids are ignored (counted). An id answered several times is accepted only when every copy agrees;
    otherwise it is treated as missing (counted) since there is no telling which copy belongs to the item.
    """
    result = AnswerCheck()
    expected = set(expected_ids)
    try:
        data = json.loads(content) if content is not None else None
    except (TypeError, ValueError) as exc:
        result.malformed = f"answer is not valid JSON: {exc}"
    else:
        if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
            result.malformed = "answer has no 'labels' array"
    if result.malformed:
        result.missing = expected
        return result

    answers: dict[int, list[Any]] = {}
    for entry in data["labels"]:
        local_id = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(local_id, bool) or not isinstance(local_id, int) or local_id not in expected:
            result.unknown_ids += 1
            continue
        answers.setdefault(local_id, []).append(entry.get("description"))

    for local_id in expected_ids:
        copies = answers.get(local_id)
        if not copies:
            result.missing.add(local_id)
            continue
        if len(copies) > 1:
            result.duplicate_ids += len(copies) - 1
            if len(Counter(c if isinstance(c, str) else repr(c) for c in copies)) > 1:
                result.missing.add(local_id)
                continue
        description, reason = check_description(copies[0], max_chars)
        if description is None:
            result.invalid[local_id] = reason or "invalid description"
        else:
            result.accepted[local_id] = description
    return result
