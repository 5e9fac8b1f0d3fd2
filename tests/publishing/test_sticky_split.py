"""The cluster split through publish() on real stores: near-identical rows on one side, sides recorded per
destination and never moved, rows tied to both sides held out, --one-per-cluster, the manifest's figures."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from promptmill.publishing import clusters, publish
from promptmill.publishing.cli import describe
from promptmill.publishing.formats import read_jsonl
from promptmill.publishing.rows import row_id_of
from promptmill.publishing.split import assign_split, split_key_of
from promptmill.publishing.tables import published_splits
from promptmill.store import db
from promptmill.store.schema import prompts

from tests.publishing.conftest import add_row
from tests.publishing.test_publish import settings_for

DAM = "A hydroelectric dam on the surface of Pluto, highly detailed matte painting"
T0 = dt.datetime(2022, 8, 20, tzinfo=dt.UTC)


def sides_of(root: Path, version: str) -> dict[str, str]:
    folder = root / version
    records = read_jsonl((folder / "train.jsonl").read_bytes()) + read_jsonl((folder / "test.jsonl").read_bytes())
    return {r["prompt"]: r["split"] for r in records}


def recorded(engine, root: Path) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(published_splits.c.prompt, published_splits.c.split).where(
            published_splits.c.destination == root.resolve().as_uri()))
        return dict(rows.all())


def distinct(i: int) -> str:
    """Prompts far from each other and from the dam."""
    return f"{hashlib.sha256(str(i).encode()).hexdigest()[:32]} scene"


def test_near_identical_rows_of_other_users_and_channels_publish_on_one_side(engine, tmp_path):
    variants = [DAM, DAM + ", full color", DAM.lower() + ",  8k", "  " + DAM + ", 4k hdr"]
    for i, prompt in enumerate(variants):
        add_row(engine, prompt, "a dam", username=f"user{i}#1", channel_id=str(100 + i), channel_name=f"dream-{i}",
                posted_at=T0 + dt.timedelta(days=i))
    for i in range(30):
        add_row(engine, distinct(i), f"thing {i}")
    result = publish(engine, settings_for(tmp_path / "pub", test_ratio=0.5))
    sides = sides_of(tmp_path / "pub", result.version)
    assert len({sides[p] for p in variants}) == 1
    assert {"train", "test"} <= set(sides.values())
    counts = result.counts
    assert counts["held_out"] == 0 and counts["one_per_cluster_removed"] == 0
    assert counts["clusters"] == {"clusters": 1, "cross_user": 1, "rows": 4, "largest": 4}
    assert counts["leakage"]["test_rows_with_near_identical_train_row"] == 0 and counts["leakage"]["share"] == 0.0
    assert "MinHash LSH" in counts["leakage"]["measured_by"]
    manifest = json.loads((tmp_path / "pub" / result.version / "manifest.json").read_text())
    assert manifest["counts"]["clusters"] == counts["clusters"] and manifest["settings"]["one_per_cluster"] is False
    card = (tmp_path / "pub" / result.version / "README.md").read_text()
    assert "Held out of both sides" in card and "as the MinHash LSH finds them" in card
    assert recorded(engine, tmp_path / "pub") == sides  # every published row, with its side


def test_sides_never_move_and_new_rows_join_their_clusters(engine, tmp_path):
    castle = "a castle on a hill in the clouds at dawn, by craig mullins"
    for i in range(40):
        add_row(engine, distinct(i), f"thing {i}")
    add_row(engine, DAM, "a dam")
    add_row(engine, castle, "a castle")
    first = publish(engine, settings_for(tmp_path / "pub", test_ratio=0.5))
    before = sides_of(tmp_path / "pub", first.version)
    add_row(engine, DAM + ", full color", "a dam")
    add_row(engine, castle + ", 8k", "a castle")
    for i in range(40, 60):
        add_row(engine, distinct(i), f"thing {i}")
    second = publish(engine, settings_for(tmp_path / "pub", test_ratio=0.9))  # another ratio moves no row
    after = sides_of(tmp_path / "pub", second.version)
    assert {p: after[p] for p in before} == before
    assert after[DAM + ", full color"] == after[DAM] and after[castle + ", 8k"] == after[castle]
    assert second.counts["held_out"] == 0 and len(after) == 64
    assert recorded(engine, tmp_path / "pub") == after


def test_a_new_row_near_both_sides_is_held_out_and_said(engine, tmp_path):
    add_row(engine, DAM, "a dam")
    first = publish(engine, settings_for(tmp_path / "pub", test_ratio=0.5))
    side = sides_of(tmp_path / "pub", first.version)[DAM]
    # a prompt not near-identical to the dam (0.88) whose hash puts it on the other side
    right = next(p for p in (DAM.replace("Pluto", "Plato") + f", full color, {k}k" for k in range(1, 60))
                 if assign_split(split_key_of(p, None, "prompt"), 0.5) != side)
    add_row(engine, right, "a dam")
    second = publish(engine, settings_for(tmp_path / "pub", test_ratio=0.5))
    assert sides_of(tmp_path / "pub", second.version) == {DAM: side, right: "test" if side == "train" else "train"}
    bridge = DAM + ", full color"  # near-identical to both (0.93 and 0.96)
    norms = [clusters.normalise(p) for p in (DAM, right, bridge)]
    assert clusters.similarity(norms[0], norms[1]) < 0.9 <= min(clusters.similarity(norms[2], n) for n in norms[:2])
    add_row(engine, bridge, "a dam")
    third = publish(engine, settings_for(tmp_path / "pub", test_ratio=0.5))
    assert third.unchanged and third.counts["held_out"] == 1  # the same files; the count in the result
    assert "held out: 1 (near-identical to published rows of both sides)" in describe(third)
    assert bridge not in recorded(engine, tmp_path / "pub")
    # a row an older split put on the other side than its near-identical one: kept there, and measured
    older = DAM + ", hdr"
    with engine.begin() as conn:
        conn.execute(sa.insert(published_splits).values(
            destination=(tmp_path / "pub").resolve().as_uri(), row_id=row_id_of(older), prompt=older,
            split="test" if side == "train" else "train", version="v0000-older"))
    add_row(engine, older, "a dam")
    fourth = publish(engine, settings_for(tmp_path / "pub", test_ratio=0.5))
    assert sides_of(tmp_path / "pub", fourth.version)[older] != side
    assert fourth.counts["leakage"]["test_rows_with_near_identical_train_row"] == 1
    assert fourth.counts["leakage"]["share"] == round(1 / fourth.counts["test"], 6)


def test_each_destination_keeps_its_own_sides(engine, tmp_path):
    for i in range(30):
        add_row(engine, distinct(i), f"thing {i}")
    one = publish(engine, settings_for(tmp_path / "one", test_ratio=0.5))
    two = publish(engine, settings_for(tmp_path / "two", test_ratio=0.5))
    assert one.content_sha256 == two.content_sha256  # the same store state, the same files
    assert recorded(engine, tmp_path / "one") == recorded(engine, tmp_path / "two") != {}


def test_a_row_no_longer_published_still_holds_its_side(engine, tmp_path):
    for i in range(20):
        add_row(engine, distinct(i), f"thing {i}")
    add_row(engine, DAM, "a dam")
    first = publish(engine, settings_for(tmp_path / "pub", test_ratio=0.5))
    side = sides_of(tmp_path / "pub", first.version)[DAM]
    with engine.begin() as conn:  # e.g. a reprocess no longer keeps it
        conn.execute(sa.update(prompts).where(prompts.c.text == DAM).values(kept=False))
    for ratio in (0.01, 0.99):  # whatever the hash of the new row would say
        add_row(engine, DAM + f", full color {ratio}", "a dam")
    second = publish(engine, settings_for(tmp_path / "pub", test_ratio=0.5))
    sides = sides_of(tmp_path / "pub", second.version)
    assert DAM not in sides
    assert sides[DAM + ", full color 0.01"] == sides[DAM + ", full color 0.99"] == side


def test_an_unchanged_publication_still_records_its_sides(engine, tmp_path):
    for i in range(10):
        add_row(engine, distinct(i), f"thing {i}")
    first = publish(engine, settings_for(tmp_path / "pub"))
    with engine.begin() as conn:  # a store that never recorded them (published by an older promptmill)
        conn.execute(sa.delete(published_splits))
    again = publish(engine, settings_for(tmp_path / "pub"))
    assert again.unchanged and recorded(engine, tmp_path / "pub") == sides_of(tmp_path / "pub", first.version)


def test_one_per_cluster_keeps_the_earliest_posted_row(engine, tmp_path):
    variants = [DAM + ", full color", DAM, DAM + ", 8k"]
    for i, prompt in enumerate(variants):
        add_row(engine, prompt, "a dam", username=f"user{i}#1", posted_at=T0 + dt.timedelta(hours=i))
    for i in range(10):
        add_row(engine, distinct(i), f"thing {i}")
    result = publish(engine, settings_for(tmp_path / "pub", one_per_cluster=True))
    sides = sides_of(tmp_path / "pub", result.version)
    assert [p for p in variants if p in sides] == [variants[0]]  # the earliest posted
    assert result.counts["one_per_cluster_removed"] == 2 and result.counts["total"] == 11
    assert result.counts["clusters"]["clusters"] == 1  # counted before the choice
    assert "left out by --one-per-cluster: 2" in describe(result)
    manifest = json.loads((tmp_path / "pub" / result.version / "manifest.json").read_text())
    assert manifest["settings"]["one_per_cluster"] is True
    assert set(recorded(engine, tmp_path / "pub")) == set(sides)  # the rows left out are not recorded


@st.composite
def batches(draw):
    """Prompts (near-identical families and unrelated ones) added in batches, a publication after each."""
    families = [DAM, "a red fox sleeping in the snow under the northern lights, oil painting",
                "portrait of an old fisherman mending nets, oil on canvas, dusk"]
    edits = ["", ", full color", ", 8k", "!", ", hdr"]
    prompts = []
    for i in range(draw(st.integers(2, 14))):
        if draw(st.booleans()):
            prompts.append(draw(st.sampled_from(families)) + "".join(draw(st.lists(st.sampled_from(edits),
                                                                                     max_size=2))))
        else:
            prompts.append(distinct(i))
    prompts = list(dict.fromkeys(prompts))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(prompts)), max_size=3))) | {len(prompts)})
    return prompts, cuts, draw(st.sampled_from([0.2, 0.5, 0.8]))


_n = iter(range(10**6))


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches())
def test_publication_sequences_never_move_a_row_nor_straddle_a_cluster(tmp_path, data):
    prompts, cuts, ratio = data
    run = next(_n)
    engine = db.connect(f"sqlite:///{tmp_path / f'h{run}.sqlite'}")
    root = tmp_path / f"pub{run}"
    seen: dict[str, str] = {}
    added = 0
    for cut in cuts:
        for prompt in prompts[added:cut]:
            add_row(engine, prompt, "a thing")
        added = cut
        result = publish(engine, settings_for(root, test_ratio=ratio))
        sides = sides_of(root, result.version)
        assert {p: sides[p] for p in seen if p in sides} == seen  # never moved
        published = list(sides)
        for i, j in clusters.near_identical_pairs(published).tolist():
            assert sides[published[i]] == sides[published[j]]
        assert set(sides) | set(seen) <= set(prompts[:cut])
        assert len(sides) + result.counts["held_out"] == cut
        seen.update(sides)
    engine.dispose()
