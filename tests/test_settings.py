"""The settings layer (pydantic-settings models): every value validated when the settings are made, from the
environment or from flags, with one line naming the setting; the CLI turns that line into exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from promptmill.choices import NEAR_DUP_METRICS
from promptmill.cli import main
from promptmill.labeling.settings import LabelSettings
from promptmill.publishing.settings import PublishSettings
from promptmill.settings import Settings

METRIC_CHOICES = ", ".join(repr(m) for m in NEAR_DUP_METRICS[:-1]) + f" or {NEAR_DUP_METRICS[-1]!r}"  # as pydantic says


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Settings(near_dup_metric="bogus"),
         f"setting near_dup_metric: Input should be {METRIC_CHOICES} (got 'bogus')"),
        (lambda: Settings.from_env({"PROMPTMILL_NEAR_DUP_METRIC": "bogus"}),
         f"setting near_dup_metric (PROMPTMILL_NEAR_DUP_METRIC): Input should be {METRIC_CHOICES} (got 'bogus')"),
        (lambda: Settings.from_env({"PROMPTMILL_NEAR_DUP_METRIC": "bogus"}, near_dup_metric="indel").with_overrides(
            cleaning_profile="best"), None),
        (lambda: Settings().with_overrides(near_dup_threshold="1.5"),
         "setting near_dup_threshold: Input should be less than or equal to 1 (got '1.5')"),
        (lambda: Settings(near_dup_window_s=0), "setting near_dup_window_s: Input should be greater than 0 (got 0)"),
        (lambda: Settings.from_env({"PROMPTMILL_CLEANING_PROFILE": "best"}),
         "setting cleaning_profile (PROMPTMILL_CLEANING_PROFILE): Input should be 'quality' or 'parity' (got 'best')"),
        (lambda: Settings(ingest_workers=0), "setting ingest_workers: Input should be greater than or equal to 1"),
        (lambda: LabelSettings.from_env({"PROMPTMILL_LABEL_PACK_SIZE": "0"}),
         "label setting pack_size (PROMPTMILL_LABEL_PACK_SIZE): Input should be greater than or equal to 1"),
        (lambda: LabelSettings(service_tier="cheap"), "label setting service_tier: Input should be 'auto', "),
        (lambda: PublishSettings(split_key="user"), "publish setting split_key: Input should be 'prompt' or "),
        (lambda: PublishSettings().with_overrides(test_ratio=1), "publish setting test_ratio: Input should be less than 1"),
    ],
)
def test_a_bad_value_fails_when_the_settings_are_made_with_one_line_naming_it(make, message):
    with pytest.raises(ValueError) as caught:
        make()
    text = str(caught.value)
    assert "\n" not in text
    if message is None:  # an override replaces the bad environment value: only the profile is wrong
        assert text.startswith("setting cleaning_profile: ") and "near_dup_metric" not in text
    else:
        assert text.startswith(message), text


def test_two_bad_values_are_both_named_on_one_line():
    with pytest.raises(ValueError) as caught:
        Settings.from_env({"PROMPTMILL_NEAR_DUP_METRIC": "bogus", "PROMPTMILL_NEAR_DUP_THRESHOLD": "high"})
    text = str(caught.value)
    assert "\n" not in text and "near_dup_metric" in text and "near_dup_threshold" in text


def test_a_secret_is_never_repeated_in_an_error_or_a_repr():
    publish = PublishSettings.from_env({"PROMPTMILL_PUBLISH_USERNAME_SALT": "s3cr3t-salt"})
    assert "s3cr3t" not in repr(publish) and "s3cr3t" not in str(publish.model_dump())
    assert "s3cr3t" not in json.dumps(publish.public_dict())
    with pytest.raises(ValueError) as caught:
        PublishSettings(username_salt=["s3cr3t-salt"])
    assert "username_salt" in str(caught.value) and "s3cr3t" not in str(caught.value)


def test_defaults_then_environment_then_overrides():
    env = {
        "PROMPTMILL_NEAR_DUP_METRIC": "token_set",
        "PROMPTMILL_NEAR_DUP_THRESHOLD": "0.8",
        "PROMPTMILL_NEAR_DUP_WINDOW_S": "",  # empty: unset
        "PROMPTMILL_CHANNELS": " 101 ,dreambot-2,, ",
        "PROMPTMILL_LANDING_DIR": "~/landing",
        "promptmill_cleaning_profile": "quality",  # names are not case-sensitive
    }
    settings = Settings.from_env(env, near_dup_threshold=0.7, near_dup_metric=None)  # None: not overridden
    assert (settings.near_dup_metric, settings.near_dup_threshold, settings.near_dup_window_s) == ("token_set", 0.7, 3600)
    assert settings.channels == ("101", "dreambot-2") and settings.cleaning_profile == "quality"
    assert settings.landing_dir == Path.home() / "landing"
    assert Settings.from_env({}) == Settings()  # the environment is read by from_env only
    # the environment is read once: an override later keeps it, and is validated like it
    assert settings.with_overrides(near_dup_window_s="60").near_dup_window_s == 60
    assert settings.with_overrides(near_dup_window_s="60").near_dup_metric == "token_set"
    # channels from a list (the DAG param) or a comma-separated string (a flag, the environment)
    assert Settings().with_overrides(channels=[" a ", "", "b"]).channels == ("a", "b")


@pytest.mark.parametrize(("text", "value"), [("1", True), ("yes", True), ("On", True), ("TRUE", True),
                                             ("0", False), ("no", False), ("off", False), ("false", False)])
def test_booleans_accept_the_usual_words(text, value):
    assert PublishSettings.from_env({"PROMPTMILL_PUBLISH_INCLUDE_NO_OBJECT": text}).include_no_object is value


def test_settings_are_frozen():
    settings = Settings()
    with pytest.raises(ValueError):
        settings.near_dup_metric = "off"


def _cli(argv, capsys, monkeypatch, env=None):
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["status"], {"PROMPTMILL_NEAR_DUP_METRIC": "bogus"}, "near_dup_metric (PROMPTMILL_NEAR_DUP_METRIC)"),
        (["dedupe", "--near-dup-threshold", "1.5"], {}, "near_dup_threshold"),
        (["ingest", "x", "--near-dup-window", "-5"], {}, "near_dup_window_s"),
        (["status"], {"PROMPTMILL_ZIP_MAX_RATIO": "0"}, "zip_max_ratio"),
        (["estimate"], {"PROMPTMILL_LABEL_MODE": "turbo"}, "mode (PROMPTMILL_LABEL_MODE)"),
        (["publish"], {"PROMPTMILL_PUBLISH_RETENTION": "-1"}, "retention (PROMPTMILL_PUBLISH_RETENTION)"),
    ],
)
def test_the_cli_exits_2_with_one_line_naming_the_setting(argv, env, named, tmp_path, capsys, monkeypatch):
    code, err = _cli([*argv, "--db", f"sqlite:///{tmp_path / 'store.sqlite'}"], capsys, monkeypatch, env)
    assert code == 2 and err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "store.sqlite").exists() or argv[0] in ("estimate", "publish")
