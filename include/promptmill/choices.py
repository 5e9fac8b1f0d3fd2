"""Every fixed set of choices of the settings, written once.

The settings declare their fields with these ``Literal`` types (pydantic validates them); the CLI's ``choices=``,
the DAG's ``Param`` enums and the error messages use the tuples derived from them. A new choice is added here and
nowhere else (tests/test_choices.py fails otherwise). The DAG file imports this module when it is parsed: it
imports nothing but ``typing``.
"""

from __future__ import annotations

from typing import Literal, get_args

# "quality" (the default) keeps good prompts and drops junk, measured against human judgement; "parity" reproduces the
# original notebook exactly, defects included (cleaning.py, bots.py, dedupe_rules.py)
CleaningProfile = Literal["quality", "parity"]
# the similarity of two attempts of one user (similarity.py); "jaro" is the original rule, "content_words" the
# quality profile's
NearDupMetric = Literal["jaro", "token_set", "indel", "content_words", "off"]
# labeling: Chat Completions now, or the Batch API at half price
LabelMode = Literal["sync", "batch"]
ServiceTier = Literal["auto", "default", "flex", "scale", "priority"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]
# publishing: what keeps rows on one side of the train/test split
SplitKey = Literal["prompt", "description"]

CLEANING_PROFILES: tuple[str, ...] = get_args(CleaningProfile)
NEAR_DUP_METRICS: tuple[str, ...] = get_args(NearDupMetric)
LABEL_MODES: tuple[str, ...] = get_args(LabelMode)
SERVICE_TIERS: tuple[str, ...] = get_args(ServiceTier)
REASONING_EFFORTS: tuple[str, ...] = get_args(ReasoningEffort)
SPLIT_KEYS: tuple[str, ...] = get_args(SplitKey)
