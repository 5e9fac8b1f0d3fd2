"""The shared conversion of environment values and overrides into the three settings objects."""

from __future__ import annotations

from pathlib import Path

import pytest
from promptmill.env_settings import coerce
from promptmill.labeling.settings import LabelSettings
from promptmill.publishing.settings import PublishSettings
from promptmill.settings import Settings


@pytest.mark.parametrize(
    ("hint", "value", "expected"),
    [
        (int, " 7 ", 7),
        (float, "0.25", 0.25),
        (bool, "Yes", True),
        (bool, "off", False),
        (Path, "~/exports", Path.home() / "exports"),
        (Path | None, "none", None),
        (float | None, "", None),
        (int | None, "12", 12),
        (str, " parity ", "parity"),
        (tuple[str, ...], "a, b,,c ", ("a", "b", "c")),
        (tuple[str, ...], ["x", " y "], ("x", "y")),
        (int, 5, 5),  # not a string: as it is
    ],
)
def test_values_take_the_declared_type(hint, value, expected):
    assert coerce(hint, value, "setting test") == expected


def test_a_value_that_does_not_fit_names_the_setting_and_the_value():
    with pytest.raises(ValueError, match=r"^label setting pack_size: cannot use 'many'"):
        LabelSettings().with_overrides(pack_size="many")
    with pytest.raises(ValueError, match=r"^setting ingest_workers: cannot use 'x'"):
        Settings().with_overrides(ingest_workers="x")
    with pytest.raises(ValueError, match=r"^publish setting include_no_object: cannot use 'maybe'"):
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
    assert publish.username_salt == " salt with spaces "  # a secret is taken as given
    assert publish.label_version is None and publish.out_uri == "file:///tmp/published"
