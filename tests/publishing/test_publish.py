"""publish() against real stores (SQLite and PostgreSQL): what is published, stability, determinism, unchanged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import sqlalchemy as sa
import yaml
from promptmill.publishing import PublishSettings, publish
from promptmill.publishing.destination import Destination
from promptmill.publishing.formats import (
    JSONL_FIELDS,
    parquet_schema,
    read_jsonl,
    read_result_csv,
    read_strings_csv,
    read_strings_txt,
)
from promptmill.publishing.manifest import stable_part
from promptmill.publishing.report import quality_report
from promptmill.publishing.tables import publications
from promptmill.store import db

from tests.publishing.conftest import LABEL_VERSION, SALT, add_dataset, add_row
from tests.test_dedupe import load, raw

REPO_ROOT = Path(__file__).resolve().parents[2]

DATA_FILES = ["train_strings.txt", "test_strings.txt", "train_strings.csv", "val_strings.csv", "result.csv",
              "train.jsonl", "test.jsonl", "train.parquet", "test.parquet"]


def settings_for(root: Path | str, **overrides) -> PublishSettings:
    uri = root if isinstance(root, str) else root.as_uri()
    return PublishSettings(out_uri=uri, label_version=LABEL_VERSION, username_salt=SALT, **overrides)


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def records_by_prompt(folder: Path) -> dict[str, dict]:
    records = read_jsonl((folder / "train.jsonl").read_bytes()) + read_jsonl((folder / "test.jsonl").read_bytes())
    return {r["prompt"]: r for r in records}


def test_publishes_every_format_with_a_manifest_and_latest(engine, tmp_path):
    rows = add_dataset(engine, 40)
    add_row(engine, "surprise me", None, no_object=True)
    add_row(engine, "not kept anymore", "a thing", kept=False)
    add_row(engine, "the labeler failed", None, status="failed")
    add_row(engine, "labeled by an older version", "old", version="lv-old")

    result = publish(engine, settings_for(tmp_path / "pub"), run_id="manual__1")

    assert result.status == "published" and result.version.startswith("v0001-")
    folder = tmp_path / "pub" / result.version
    assert (tmp_path / "pub" / "LATEST").read_text() == result.version + "\n"
    assert sorted(p.name for p in folder.iterdir()) == sorted([*DATA_FILES, "README.md", "manifest.json"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["version"] == result.version and manifest["run_id"] == "manual__1"
    for name, info in manifest["files"].items():
        data = (folder / name).read_bytes()
        assert (info["sha256"], info["bytes"]) == (hashlib.sha256(data).hexdigest(), len(data)), name
    published = records_by_prompt(folder)
    assert set(published) == {prompt for prompt, _ in rows}  # only kept rows with an ok label of the version
    assert manifest["counts"]["train"] + manifest["counts"]["test"] == len(rows) == result.counts["total"]
    assert manifest["counts"]["train"] == len(read_jsonl((folder / "train.jsonl").read_bytes()))
    assert all(r["split"] == "train" for r in read_jsonl((folder / "train.jsonl").read_bytes()))
    assert len(read_strings_txt((folder / "test_strings.txt").read_bytes())) == manifest["counts"]["test"]
    assert len(read_strings_csv((folder / "val_strings.csv").read_bytes())) == manifest["counts"]["test"]
    assert len(read_result_csv((folder / "result.csv").read_bytes())) == len(rows)
    assert manifest["label_versions"][0]["version"] == LABEL_VERSION
    assert manifest["watermark"]["kept_prompts"] == len(rows) + 3
    assert "README.md" in manifest["files"] and result.version in (folder / "README.md").read_text()
    # the raw usernames and the salt appear nowhere
    for name in [*DATA_FILES, "README.md", "manifest.json"]:
        data = (folder / name).read_bytes()
        assert b"user3" not in data and SALT.encode() not in data, name
    extra = result.as_event_extra()
    assert json.loads(json.dumps(extra)) == extra
    assert extra["version"] == result.version and extra["counts"]["total"] == len(rows)
    assert SALT not in json.dumps(extra) and "user" not in json.dumps(extra["counts"])
    with engine.connect() as conn:
        recorded = conn.execute(sa.select(publications)).mappings().all()
    assert [(r["version"], r["train_rows"], r["test_rows"]) for r in recorded] == [
        (result.version, result.counts["train"], result.counts["test"])
    ]


def test_no_object_rows_only_when_asked(engine, tmp_path):
    add_dataset(engine, 10)
    add_row(engine, "surprise me", None, no_object=True)
    default = publish(engine, settings_for(tmp_path / "a"))
    assert default.counts["no_object"] == 0 and default.counts["total"] == 10
    asked = publish(engine, settings_for(tmp_path / "b", include_no_object=True))
    folder = tmp_path / "b" / asked.version
    assert asked.counts["no_object"] == 1 and asked.counts["total"] == 11
    assert ("surprise me", "_no_object") in read_result_csv((folder / "result.csv").read_bytes())
    record = records_by_prompt(folder)["surprise me"]
    assert record["no_object"] is True and record["description"] is None
    strings = read_strings_txt((folder / "train_strings.txt").read_bytes()) + read_strings_txt(
        (folder / "test_strings.txt").read_bytes())
    assert all(prompt != "surprise me" for _, prompt in strings)  # as the original: only real descriptions


def test_refresh_never_moves_a_row_and_only_adds_rows(engine, tmp_path):
    add_dataset(engine, 60)
    first = publish(engine, settings_for(tmp_path / "pub"))
    add_dataset(engine, 40, start=60)
    second = publish(engine, settings_for(tmp_path / "pub"))
    assert second.status == "published" and second.version.startswith("v0002-")
    old = records_by_prompt(tmp_path / "pub" / first.version)
    new = records_by_prompt(tmp_path / "pub" / second.version)
    assert set(old) < set(new) and len(new) == 100
    for prompt, record in old.items():
        assert new[prompt] == record  # same split, same bytes of the record
    assert (tmp_path / "pub" / "LATEST").read_text().strip() == second.version
    assert (tmp_path / "pub" / first.version / "manifest.json").exists()  # the old one is kept


def test_nothing_new_means_unchanged(engine, tmp_path):
    add_dataset(engine, 20)
    first = publish(engine, settings_for(tmp_path / "pub"))
    add_row(engine, "a prompt that is not kept", "x", kept=False)  # the store moved, the publishable rows did not
    again = publish(engine, settings_for(tmp_path / "pub"), run_id="scheduled__2")
    assert again.status == "unchanged" and again.unchanged and again.version == first.version
    assert again.counts == first.counts and again.as_event_extra()["unchanged"] is True
    assert sorted(p.name for p in (tmp_path / "pub").iterdir()) == ["LATEST", first.version]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(publications)).scalar() == 1


def test_same_state_publishes_byte_identical_files(engine, tmp_path):
    add_dataset(engine, 50)
    add_row(engine, 'tricky, "quoted"\nprompt\twith tab', "a tricky\tthing")
    one = publish(engine, settings_for(tmp_path / "one"), run_id="run-1")
    two = publish(engine, settings_for(tmp_path / "two"), run_id="run-2")
    assert one.version == two.version and one.content_sha256 == two.content_sha256
    files_one = folder_files(tmp_path / "one" / one.version)
    files_two = folder_files(tmp_path / "two" / two.version)
    manifest_one = json.loads(files_one.pop("manifest.json"))
    manifest_two = json.loads(files_two.pop("manifest.json"))
    assert files_one == files_two
    assert stable_part(manifest_one) == stable_part(manifest_two)
    assert manifest_one["run_id"] != manifest_two["run_id"]


def test_every_publication_carries_its_quality_report_and_hub_metadata(engine, tmp_path):
    load(engine, [
        raw("k1", "ann", "a lighthouse on a cliff at dusk", 0),
        raw("k2", "ann", "a lighthouse on a cliff at dusk, oil painting", 10),  # k1 its near-duplicate
        raw("k3", "bob", "sex on the beach cocktail", 20),  # nsfw_word: counted, never shown
    ])  # fmt: skip
    add_dataset(engine, 30)  # 12 subjects as descriptions: repeated

    one = publish(engine, settings_for(tmp_path / "one"), run_id="run-1")
    two = publish(engine, settings_for(tmp_path / "two"), run_id="run-2")

    files = folder_files(tmp_path / "one" / one.version)
    manifest = json.loads(files["manifest.json"])
    assert manifest["quality"] == quality_report(engine, LABEL_VERSION)
    assert manifest["quality"]["rejections"]["nsfw_word"] == {"count": 1}
    assert manifest["quality"]["labels"]["most_repeated_descriptions"][0] == ["a cat", 3]
    card = files["README.md"].decode()
    front, body = card.removeprefix("---\n").split("\n---\n", 1)
    meta = yaml.safe_load(front)
    assert meta["license"] == "other" and meta["license_name"]
    assert [(s["name"], s["num_examples"]) for s in meta["dataset_info"]["splits"]] == [
        ("train", manifest["counts"]["train"]), ("test", manifest["counts"]["test"])]
    schema = parquet_schema()
    assert [(f["name"], f["dtype"]) for f in meta["dataset_info"]["features"]] == [
        (name, str(schema.field(name).type)) for name in JSONL_FIELDS]
    assert {f["split"]: f["path"] for f in meta["configs"][0]["data_files"]} == {
        "train": "train.parquet", "test": "test.parquet"}
    assert "## License" in body and "## Quality report" in body
    assert body.index("## How it was made") < body.index("## Quality report")  # after the existing sections
    assert "| nsfw_word | 1 | (not shown) |" in body
    assert "| `a lighthouse on a cliff at dusk` | `a lighthouse on a cliff at dusk, oil painting` |" in body
    for name, data in files.items():  # NSFW text nowhere in the publication
        assert b"beach" not in data, name
    # deterministic: the same store publishes the same card and the same manifest but for the moment and the run
    files_two = folder_files(tmp_path / "two" / two.version)
    assert files_two["README.md"] == files["README.md"]
    assert stable_part(json.loads(files_two["manifest.json"])) == stable_part(manifest)
    # a report that would differ does not make a new version: the content hash covers the data files alone
    load(engine, [raw("k9", "cid", "x", 30)])  # one more rejection, the same published rows
    assert quality_report(engine, LABEL_VERSION) != manifest["quality"]
    again = publish(engine, settings_for(tmp_path / "one"))
    assert again.status == "unchanged" and again.version == one.version


def test_sqlite_and_postgresql_publish_the_same_bytes(tmp_path, pg_url):
    engines = [db.connect(f"sqlite:///{tmp_path / 'same.sqlite'}"), db.connect(pg_url)]
    for engine in engines:
        add_dataset(engine, 30, args={"seed": 1, "scale": 7.5, "steps": 50, "sampler": "k_euler"})
    results = [publish(engine, settings_for(tmp_path / f"pub{i}")) for i, engine in enumerate(engines)]
    files = [folder_files(tmp_path / f"pub{i}" / r.version) for i, r in enumerate(results)]
    manifests = [stable_part(json.loads(f.pop("manifest.json"))) for f in files]
    assert files[0] == files[1]
    assert manifests[0] == manifests[1]  # watermark and counts spelled the same on both backends


def test_description_split_keeps_a_description_on_one_side(engine, tmp_path):
    for i in range(120):
        variant = ["a cat", "A cat", "a  cat "][i % 3] if i % 2 else f"subject {i // 8}"
        # prompts far apart ("prompt 100" and "prompt 101" would be near-identical, and so on one side)
        add_row(engine, f"prompt {i} {hashlib.sha256(str(i).encode()).hexdigest()[:16]}", variant)
    by_prompt = publish(engine, settings_for(tmp_path / "p"))
    by_description = publish(engine, settings_for(tmp_path / "d", split_key="description"))
    records = records_by_prompt(tmp_path / "d" / by_description.version)
    sides: dict[str, set[str]] = {}
    for record in records.values():
        sides.setdefault(" ".join(record["description"].lower().split()), set()).add(record["split"])
    assert all(len(s) == 1 for s in sides.values())
    prompt_sides: dict[str, set[str]] = {}
    for record in records_by_prompt(tmp_path / "p" / by_prompt.version).values():
        prompt_sides.setdefault(" ".join(record["description"].lower().split()), set()).add(record["split"])
    assert any(len(s) == 2 for s in prompt_sides.values())  # the prompt split does straddle groups


def test_hostile_rows_reach_every_safe_format_and_are_counted_when_left_out(engine, tmp_path):
    add_dataset(engine, 5)
    add_row(engine, "cat [BOS] injection", "a cat")
    add_row(engine, "multi\nline\r\nprompt", "a dog </s> b")
    add_row(engine, "ok prompt = with equals", "a horse")
    result = publish(engine, settings_for(tmp_path / "pub"))
    folder = tmp_path / "pub" / result.version
    assert result.counts["excluded_from_strings"] == {"separator_token": 2}
    assert result.counts["strings"]["train"] + result.counts["strings"]["test"] == 6
    assert {"cat [BOS] injection", "multi\nline\r\nprompt"} <= set(records_by_prompt(folder))
    assert ("multi\nline\r\nprompt", "a dog </s> b") in read_result_csv((folder / "result.csv").read_bytes())


def test_empty_store_publishes_nothing(engine, tmp_path):
    result = publish(engine, settings_for(tmp_path / "pub"))
    assert result.status == "empty" and result.version is None
    assert not (tmp_path / "pub").exists()


def test_retention_keeps_the_newest(engine, tmp_path):
    versions = []
    for batch in range(4):
        add_dataset(engine, 3, start=batch * 3)
        versions.append(publish(engine, settings_for(tmp_path / "pub", retention=2)).version)
    kept = sorted(p.name for p in (tmp_path / "pub").iterdir() if p.name.startswith("v"))
    assert kept == sorted(versions[-2:])
    assert Destination((tmp_path / "pub").as_uri()).latest_version() == versions[-1]


def test_current_label_version_comes_from_the_labeling_settings(sqlite_engine, tmp_path, monkeypatch):
    from promptmill.labeling.ledger import resolve_version
    from promptmill.labeling.settings import LabelSettings

    current = resolve_version(LabelSettings()).version
    add_row(sqlite_engine, "labeled with the current version", "a cat", version=current)
    add_row(sqlite_engine, "labeled with another version", "a dog", version="lv-other")
    result = publish(sqlite_engine, PublishSettings(out_uri=(tmp_path / "pub").as_uri()))
    assert result.label_version == current
    assert set(records_by_prompt(tmp_path / "pub" / result.version)) == {"labeled with the current version"}
    assert result.warnings and "USERNAME_SALT" in result.warnings[0]


def test_the_card_says_how_usernames_were_hashed(sqlite_engine, tmp_path):
    """Issue #20.8: the card called username_hash a keyed hash even when no salt was set."""
    from pydantic import SecretStr

    add_row(sqlite_engine, "a prompt about a cat", "a cat")
    plain = publish(sqlite_engine, PublishSettings(out_uri=(tmp_path / "plain").as_uri(), label_version=LABEL_VERSION))
    card = (tmp_path / "plain" / plain.version / "README.md").read_text()
    assert "| username_hash | plain SHA-256 of the Discord username" in card and "HMAC" not in card
    keyed = publish(sqlite_engine, PublishSettings(out_uri=(tmp_path / "keyed").as_uri(), label_version=LABEL_VERSION,
                                                   username_salt=SecretStr("s3cret-salt")))
    card = (tmp_path / "keyed" / keyed.version / "README.md").read_text()
    assert "| username_hash | HMAC-SHA256 of the Discord username" in card and "s3cret-salt" not in card
    assert not keyed.warnings


def test_nothing_to_publish_names_the_label_versions_that_have_labels(sqlite_engine, tmp_path):
    """Found following the README: `label --model M` then `publish` said only "nothing to publish" (publish looks
    for the default model's labels). It now says which label versions have labels and how to pick one."""
    from promptmill.publishing.cli import describe, labeled_versions_hint

    add_row(sqlite_engine, "a prompt about a cat", "a cat")  # labeled with LABEL_VERSION
    result = publish(sqlite_engine, PublishSettings(out_uri=(tmp_path / "pub").as_uri(), label_version="lv-none"))
    assert result.status == "empty"
    hint = labeled_versions_hint(sqlite_engine, result)
    assert f"labels exist for label version {LABEL_VERSION}" in hint
    assert "PROMPTMILL_LABEL_MODEL" in hint and f"--label-version {LABEL_VERSION}" in hint
    assert describe(result).startswith("nothing to publish: no labeled prompt of label version lv-none")
