"""Environment values and overrides into the three settings objects (pydantic-settings: see test_settings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from promptmill.labeling.settings import LabelSettings
from promptmill.publishing.settings import PublishSettings
from promptmill.settings import Settings


@pytest.mark.parametrize(
    ("make", "field", "expected"),
    [
        (lambda v: LabelSettings().with_overrides(pack_size=v), "pack_size", (" 7 ", 7)),
        (lambda v: PublishSettings().with_overrides(test_ratio=v), "test_ratio", ("0.25", 0.25)),
        (lambda v: PublishSettings().with_overrides(include_no_object=v), "include_no_object", ("Yes", True)),
        (lambda v: PublishSettings().with_overrides(include_no_object=v), "include_no_object", ("off", False)),
        (lambda v: Settings().with_overrides(landing_dir=v), "landing_dir", ("~/exports", Path.home() / "exports")),
        (lambda v: Settings().with_overrides(landing_dir=v), "landing_dir", ("none", None)),
        (lambda v: LabelSettings().with_overrides(temperature=v), "temperature", ("", None)),
        (lambda v: LabelSettings().with_overrides(max_tokens=v), "max_tokens", ("12", 12)),
        (lambda v: Settings().with_overrides(cleaning_profile=v), "cleaning_profile", (" parity ", "parity")),
        (lambda v: Settings().with_overrides(channels=v), "channels", ("a, b,,c ", ("a", "b", "c"))),
        (lambda v: Settings().with_overrides(channels=v), "channels", (["x", " y "], ("x", "y"))),
        (lambda v: LabelSettings().with_overrides(pack_size=v), "pack_size", (5, 5)),  # not a string: as it is
    ],
)
def test_values_take_the_declared_type(make, field, expected):
    value, result = expected
    assert getattr(make(value), field) == result


def test_a_value_that_does_not_fit_names_the_setting_and_the_value():
    with pytest.raises(ValueError, match=r"^label setting pack_size: .*\(got 'many'\)$"):
        LabelSettings().with_overrides(pack_size="many")
    with pytest.raises(ValueError, match=r"^setting ingest_workers: .*\(got 'x'\)$"):
        Settings().with_overrides(ingest_workers="x")
    with pytest.raises(ValueError, match=r"^publish setting include_no_object: .*\(got 'maybe'\)$"):
        PublishSettings().with_overrides(include_no_object="maybe")
    with pytest.raises(ValueError, match="unknown label setting 'ENV_PREFIX'"):
        LabelSettings().with_overrides(ENV_PREFIX="X_")


def test_environment_then_overrides_over_the_defaults():
    env = {
        "PROMPTMILL_DATABASE_URL": "sqlite:///elsewhere.sqlite",
        "PROMPTMILL_CHANNELS": "101, dreambot-2",
        "PROMPTMILL_INGEST_WORKERS": "",  # empty counts as unset
        "PROMPTMILL_LABEL_MAX_USD": "2.5",
        "PROMPTMILL_LABEL_LIMIT": "null",
        "PROMPTMILL_PUBLISH_USERNAME_SALT": " salt with spaces ",
        "PROMPTMILL_PUBLISH_LABEL_VERSION": "none",
    }
    settings = Settings.from_env(env, near_dup_threshold="0.8")
    assert settings.database_url == "sqlite:///elsewhere.sqlite" and settings.channels == ("101", "dreambot-2")
    assert settings.ingest_workers == Settings().ingest_workers and settings.near_dup_threshold == 0.8
    label = LabelSettings.from_env(env, max_usd=None, limit="40")  # None: not overridden
    assert (label.max_usd, label.limit) == (2.5, 40)
    publish = PublishSettings.from_env(env, out_uri=Path("/tmp/published"))
    assert publish.username_salt.get_secret_value() == " salt with spaces "  # a secret is taken as given
    assert publish.label_version is None and publish.out_uri == "file:///tmp/published"
