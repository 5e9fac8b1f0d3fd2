"""One source of truth for the choices: the settings, the CLI, the rules and the error messages all take them from
promptmill.choices (the DAG's params: tests/dags). Adding a metric or a profile in one place only fails here."""

from __future__ import annotations

import argparse
import re
import typing
from pathlib import Path

import pytest
from promptmill import choices
from promptmill.cli import build_parser
from promptmill.labeling.settings import LabelSettings
from promptmill.publishing.settings import PublishSettings
from promptmill.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _choices_of(command: str, option: str) -> tuple:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return tuple(next(a for a in sub._actions if option in a.option_strings).choices)


@pytest.mark.parametrize(
    ("commands", "option", "literal"),
    [
        (("ingest", "dedupe", "reprocess"), "--profile", choices.CleaningProfile),
        (("ingest", "dedupe", "reprocess"), "--near-dup-metric", choices.NearDupMetric),
        (("label", "estimate"), "--mode", choices.LabelMode),
        (("label", "estimate"), "--service-tier", choices.ServiceTier),
        (("publish",), "--split-key", choices.SplitKey),
    ],
)
def test_the_cli_offers_exactly_the_literal_choices(commands, option, literal):
    for command in commands:
        assert _choices_of(command, option) == typing.get_args(literal), (command, option)


@pytest.mark.parametrize(
    ("cls", "field", "literal"),
    [
        (Settings, "cleaning_profile", choices.CleaningProfile),
        (Settings, "near_dup_metric", choices.NearDupMetric),
        (LabelSettings, "mode", choices.LabelMode),
        (LabelSettings, "service_tier", choices.ServiceTier | None),
        (LabelSettings, "reasoning_effort", choices.ReasoningEffort | None),
        (PublishSettings, "split_key", choices.SplitKey),
    ],
)
def test_the_settings_fields_are_the_literal_types(cls, field, literal):
    assert cls.model_fields[field].annotation == literal


def test_every_metric_has_a_similarity_and_every_profile_cleans():
    from promptmill.bots import extract
    from promptmill.cleaning import PROFILES, clean
    from promptmill.dedupe import similarity_function

    for metric in choices.NEAR_DUP_METRICS:
        function = similarity_function(metric)
        assert (function is None) == (metric == "off")
        assert function is None or 0.0 <= function("a red fox", "a red box") <= 1.0
    with pytest.raises(ValueError, match=re.escape(", ".join(choices.NEAR_DUP_METRICS))):
        similarity_function("bogus")
    assert PROFILES == choices.CLEANING_PROFILES
    for profile in choices.CLEANING_PROFILES:
        assert clean("a red fox", profile=profile).text == "a red fox"
        assert extract("Dreamt in `1s` for @ann... `/dream prompt:a fox seed:1`", profile=profile).reject is None


@pytest.mark.parametrize("literal", [choices.CleaningProfile, choices.NearDupMetric, choices.LabelMode,
                                     choices.ServiceTier, choices.ReasoningEffort, choices.SplitKey])
def test_each_set_of_choices_is_written_out_only_in_choices_py(literal):
    """No other module or the DAG spells the set out again (all its values in a row, quoted, in brackets)."""
    values = r"\s*,\s*".join(rf"""["']{value}["']""" for value in typing.get_args(literal))
    spelled = re.compile(rf"[\[(]\s*{values}\s*,?\s*[\])]")
    sources = [*(REPO / "include").rglob("*.py"), *(REPO / "dags").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]
    found = [str(path.relative_to(REPO)) for path in sources if spelled.search(path.read_text(encoding="utf-8"))]
    assert found == ["include/promptmill/choices.py"]
