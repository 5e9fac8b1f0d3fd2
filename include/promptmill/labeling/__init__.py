"""Labeling stage: pending prompts -> short image descriptions through an OpenAI-compatible API.

Airflow-free entry points for the CLI and the DAG; see README.md in this folder for the wire contract.
The names below are imported lazily, so importing a light submodule (settings) does not load the client stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClientConfig": "promptmill.labeling.client",
    "LabelSettings": "promptmill.labeling.settings",
    "label_batch": "promptmill.labeling.planner",
    "label_status": "promptmill.labeling.ledger",
    "plan_batches": "promptmill.labeling.planner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'promptmill.labeling' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
