"""PublishSettings from the environment, and `promptmill publish` through add_commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from promptmill.publishing.cli import add_commands
from promptmill.publishing.settings import PublishSettings
from promptmill.settings import Settings

from tests.publishing.conftest import LABEL_VERSION, add_dataset, add_row


def test_from_env_reads_every_field_and_keeps_the_salt_out_of_repr(tmp_path):
    env = {
        "PROMPTMILL_PUBLISH_OUT_URI": "memory://bucket/x",
        "PROMPTMILL_PUBLISH_TEST_RATIO": "0.25",
        "PROMPTMILL_PUBLISH_SPLIT_KEY": "description",
        "PROMPTMILL_PUBLISH_INCLUDE_NO_OBJECT": "false",
        "PROMPTMILL_PUBLISH_RETENTION": "3",
        "PROMPTMILL_PUBLISH_USERNAME_SALT": "s3cr3t",
    }
    settings = PublishSettings.from_env(env)
    assert (settings.out_uri, settings.test_ratio, settings.split_key, settings.retention) == (
        "memory://bucket/x", 0.25, "description", 3)
    assert settings.include_no_object is False  # a real boolean: "false" is false (the original -r defect)
    assert PublishSettings.from_env({"PROMPTMILL_PUBLISH_INCLUDE_NO_OBJECT": "yes"}).include_no_object is True
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in json.dumps(settings.public_dict())
    assert PublishSettings.from_env(env, test_ratio=0.1).test_ratio == 0.1  # overrides beat the environment
    assert PublishSettings.from_env({}, data_dir=tmp_path).out_uri == (tmp_path / "published").resolve().as_uri()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PROMPTMILL_PUBLISH_INCLUDE_NO_OBJECT": "maybe"}, "include_no_object"),
        ({"PROMPTMILL_PUBLISH_TEST_RATIO": "1.5"}, "test_ratio"),
        ({"PROMPTMILL_PUBLISH_SPLIT_KEY": "user"}, "split_key"),
        ({"PROMPTMILL_PUBLISH_RETENTION": "-1"}, "retention"),
    ],
)
def test_bad_settings_are_rejected_with_the_setting_named(env, message):
    with pytest.raises(ValueError, match=message):
        PublishSettings.from_env(env)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db")
    parser = argparse.ArgumentParser(prog="promptmill", parents=[common])
    add_commands(parser.add_subparsers(dest="command"), common)
    return parser


def test_publish_command_prints_version_counts_and_path(sqlite_engine, tmp_path, capsys, monkeypatch):
    add_dataset(sqlite_engine, 15)
    monkeypatch.setenv("PROMPTMILL_PUBLISH_LABEL_VERSION", LABEL_VERSION)
    out = (tmp_path / "pub").as_uri()
    args = _parser().parse_args(["publish", "--out", out, "--test-ratio", "0.3", "--json"])
    assert args.handler(args, sqlite_engine, Settings(data_dir=tmp_path)) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["status"] == "published" and payload["counts"]["total"] == 15
    assert payload["uri"] == f"{out}/{payload['version']}"
    manifest = json.loads((tmp_path / "pub" / payload["version"] / "manifest.json").read_text())
    assert manifest["settings"]["test_ratio"] == 0.3

    args = _parser().parse_args(["publish", "--out", out, "--test-ratio", "0.3"])
    assert args.handler(args, sqlite_engine, Settings(data_dir=tmp_path)) == 0
    text = capsys.readouterr().out
    assert f"unchanged: {payload['version']}" in text and "15 total" in text and payload["uri"] in text


def test_publish_command_defaults_to_the_data_folder(sqlite_engine, tmp_path, capsys, monkeypatch):
    add_dataset(sqlite_engine, 4)
    monkeypatch.setenv("PROMPTMILL_PUBLISH_LABEL_VERSION", LABEL_VERSION)
    args = _parser().parse_args(["publish", "--include-no-object"])
    assert args.include_no_object is True
    assert args.handler(args, sqlite_engine, Settings(data_dir=tmp_path)) == 0
    assert (Path(tmp_path) / "published" / "LATEST").exists()


def test_one_per_cluster_is_off_by_default_and_set_by_the_environment_or_the_flag(sqlite_engine, tmp_path, capsys,
                                                                                  monkeypatch):
    assert PublishSettings().one_per_cluster is False
    assert PublishSettings.from_env({"PROMPTMILL_PUBLISH_ONE_PER_CLUSTER": "true"}).one_per_cluster is True
    assert _parser().parse_args(["publish"]).one_per_cluster is None  # not given: the setting decides
    add_dataset(sqlite_engine, 4)
    for variant in ("!", ", 8k"):
        add_row(sqlite_engine, "a castle on a hill in the clouds at dawn" + variant, "a castle")
    monkeypatch.setenv("PROMPTMILL_PUBLISH_LABEL_VERSION", LABEL_VERSION)
    monkeypatch.setenv("PROMPTMILL_PUBLISH_ONE_PER_CLUSTER", "true")
    for argv, removed in ((["--no-one-per-cluster"], 0), ([], 1)):
        out = (tmp_path / f"pub{removed}").as_uri()
        args = _parser().parse_args(["publish", "--out", out, "--json", *argv])
        assert args.handler(args, sqlite_engine, Settings(data_dir=tmp_path)) == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["counts"]["one_per_cluster_removed"] == removed and payload["counts"]["total"] == 6 - removed
