"""The dataset page's data, HTML and JSON on SQLite and PostgreSQL, through the FastAPI app (no Airflow)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient
from promptmill.dashboard import collect_summary, create_app
from promptmill.dashboard.page import fmt_int, fmt_usd
from promptmill.store.db import connect
from promptmill.store.schema import message_verdicts, prompts

from tests.ops.dataset import CURRENT_VERSION, OLD_VERSION


def _client(engine, **kwargs) -> TestClient:
    return TestClient(create_app(lambda: str(engine.url.render_as_string(hide_password=False)),
                                 label_version_resolver=lambda: CURRENT_VERSION, **kwargs))


def test_summary_counts_match_the_store(filled):
    engine, facts = filled
    summary = collect_summary(engine, label_version=CURRENT_VERSION)
    with engine.connect() as conn:
        by_status = dict(conn.execute(sa.select(message_verdicts.c.status, sa.func.count()).group_by(message_verdicts.c.status)).all())
        reasons = dict(conn.execute(
            sa.select(message_verdicts.c.reason, sa.func.count()).where(message_verdicts.c.status == "rejected").group_by(message_verdicts.c.reason)
        ).all())
        kept_prompts = conn.execute(sa.select(sa.func.count()).where(prompts.c.kept.is_(True))).scalar_one()
    msgs = summary["messages"]
    assert msgs["total"] == sum(by_status.values()) > 0
    assert msgs["kept"] == by_status["kept"] and msgs["rejected"] == by_status["rejected"]
    assert msgs["rejected_by_reason"] == reasons
    assert list(msgs["rejected_by_reason"].values()) == sorted(reasons.values(), reverse=True)
    assert msgs["unique_prompts"] == kept_prompts == facts.kept_prompts
    # channels add up to the messages, each split into kept and rejected
    assert sum(c["total"] for c in summary["channels"]) == msgs["total"]
    assert sum(c["kept"] for c in summary["channels"]) == msgs["kept"]
    assert summary["files"]["ingested"] >= 1


def test_labeling_progress_and_spend(filled):
    engine, facts = filled
    labeling = collect_summary(engine, label_version=CURRENT_VERSION)["labeling"]
    versions = {v["version"]: v for v in labeling["versions"]}
    assert [v["version"] for v in labeling["versions"]][0] == CURRENT_VERSION  # the current one leads
    current, old = versions[CURRENT_VERSION], versions[OLD_VERSION]
    assert current["current"] and not old["current"]
    assert (current["labeled"], current["failed"], current["no_object"]) == (
        facts.labeled_current, facts.failed_current, facts.no_object_current)
    # failed labels are not pending: they were answered (and paid for)
    assert current["pending"] == facts.kept_prompts - facts.labeled_current - facts.failed_current
    assert old["labeled"] == facts.labeled_old and old["pending"] == facts.kept_prompts - facts.labeled_old
    per_day: dict[str, float] = {}
    for row in labeling["per_day"]:
        per_day[row["day"]] = per_day.get(row["day"], 0.0) + row["spend_usd"]
    assert per_day.keys() == facts.spend_by_day.keys()
    for day, spend in facts.spend_by_day.items():
        assert per_day[day] == pytest.approx(spend, abs=1e-5)
    assert labeling["spend_usd_total"] == pytest.approx(sum(facts.spend_by_day.values()), abs=1e-5)
    assert current["spend_usd"] + old["spend_usd"] == pytest.approx(labeling["spend_usd_total"], abs=1e-5)


def test_spend_window_keeps_the_latest_days(filled):
    engine, facts = filled
    rows = collect_summary(engine, spend_days=2)["labeling"]["per_day"]
    assert sorted({row["day"] for row in rows}) == sorted(facts.spend_by_day)[-2:]


def test_publications_newest_first_without_credentials(filled):
    engine, facts = filled
    pubs = collect_summary(engine, publications_limit=2)["publications"]
    assert len(pubs) == 2 < facts.publications
    assert pubs[0]["created_at"] > pubs[1]["created_at"]
    everything = collect_summary(engine)["publications"]
    assert len(everything) == facts.publications
    assert all("hunter2" not in p["destination"] and "publisher" not in p["destination"] for p in everything)
    assert {p["destination"] for p in everything} >= {"s3://datasets/prompts"}


def test_json_page_and_manifest_endpoints(filled):
    engine, _ = filled
    client = _client(engine)
    data = client.get("/api/summary").json()
    assert data["messages"]["kept"] == collect_summary(engine)["messages"]["kept"]
    html = client.get("/").text
    # the page shows the same numbers as the JSON
    assert re.search(rf'id="card-messages"><div class="value">{re.escape(fmt_int(data["messages"]["total"]))}<', html)
    assert re.search(rf'id="card-kept"><div class="value">{re.escape(fmt_int(data["messages"]["kept"]))}<', html)
    assert fmt_usd(data["labeling"]["spend_usd_total"]) in html
    for reason in data["messages"]["rejected_by_reason"]:
        assert f"<code>{reason}</code>" in html
    assert html.count("<svg") == 2  # spend over time, kept vs rejected per channel
    newest = data["publications"][0]
    assert f'href="/publications/{newest["id"]}/manifest.json"' in html
    manifest = client.get(f"/publications/{newest['id']}/manifest.json").json()
    assert manifest["version"] == newest["version"]
    assert {k: manifest["counts"][k] for k in ("train", "test")} == {"train": newest["train_rows"],
                                                                      "test": newest["test_rows"]}
    assert client.get("/publications/999999/manifest.json").status_code == 404
    for body in (html, client.get("/api/summary").text):
        assert "hunter2" not in body


def test_quality_of_the_newest_publication(filled):
    engine, _ = filled
    client = _client(engine)
    data = client.get("/api/summary").json()
    quality = data["quality"]
    newest = data["publications"][0]
    assert quality["version"] == newest["version"] and quality["created_at"] == newest["created_at"]
    manifest = client.get(f"/publications/{newest['id']}/manifest.json").json()
    counts = manifest["counts"]
    assert quality["split"]["clusters"] == counts["clusters"] and quality["split"]["held_out"] == counts["held_out"]
    assert quality["split"]["leakage"] == {k: counts["leakage"][k]
                                           for k in ("test_rows_with_near_identical_train_row", "share")}
    report = quality["report"]
    assert {r: e["count"] for r, e in report["rejections"].items()} == data["messages"]["rejected_by_reason"]
    assert report["rejections"]["nsfw"] == {"count": data["messages"]["rejected_by_reason"]["nsfw"], "examples": []}
    assert report["near_duplicate_merges"] == manifest["quality"]["near_duplicate_merges"] != []
    assert report["labels"] == manifest["quality"]["labels"] and report["labels"]["labeled"] > 0
    html = client.get("/").text
    assert f'<h2 id="quality">Quality of <code>{newest["version"]}</code></h2>' in html
    for table in ("quality-rejections", "quality-merges", "quality-labels", "quality-repeated"):
        assert f'<table id="{table}">' in html, table
    for card, value in (("clusters", counts["clusters"]["clusters"]), ("cross-user", counts["clusters"]["cross_user"]),
                        ("held-out", counts["held_out"])):
        assert re.search(rf'id="card-{card}"><div class="value">{re.escape(fmt_int(value))}<', html), card
    assert 'id="card-leakage"><div class="value">0 (0.00%)<' in html
    for reason, entry in report["rejections"].items():
        assert f"<code>{reason}</code></td><td class=\"num\">{fmt_int(entry['count'])}<" in html


@pytest.mark.parametrize("reason", ["nsfw_word"])
def test_quality_never_shows_nsfw_text(engine, tmp_path, reason):
    from promptmill.publishing import PublishSettings, publish

    from tests.publishing.conftest import add_dataset
    from tests.test_dedupe import load, raw

    load(engine, [raw("k1", "ann", "a lighthouse on a cliff at dusk", 0),
                  raw("k2", "ann", "a lighthouse on a cliff at dusk, oil painting", 10),
                  raw("k3", "bob", "sex on the beach cocktail", 20)])
    add_dataset(engine, 20)
    result = publish(engine, PublishSettings(out_uri=(tmp_path / "pub").as_uri(), label_version="lv-test-1"))
    client = _client(engine)
    data = client.get("/api/summary").json()
    assert data["quality"]["version"] == result.version
    assert data["quality"]["report"]["rejections"][reason] == {"count": 1, "examples": []}
    assert data["quality"]["split"]["clusters"] == result.counts["clusters"]
    assert data["quality"]["report"]["near_duplicate_merges"] == [
        {"dropped": "a lighthouse on a cliff at dusk", "kept": "a lighthouse on a cliff at dusk, oil painting"}]
    html = client.get("/").text
    assert "<code>a lighthouse on a cliff at dusk, oil painting</code>" in html
    for body in (html, client.get("/api/summary").text):
        assert "beach" not in body


def test_a_publication_made_before_reports(sqlite_url):
    import json

    from promptmill.publishing.tables import publications

    engine = connect(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.insert(publications).values(
            destination="file:///p", version="v0001-000000000001", content_sha256="1" * 64, label_version="lv",
            train_rows=3, test_rows=1, run_id=None, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            manifest=json.dumps({"counts": {"train": 3, "test": 1}})))
    client = TestClient(create_app(lambda: sqlite_url, label_version_resolver=lambda: None))
    quality = client.get("/api/summary").json()["quality"]
    assert quality["report"] is None and quality["split"]["held_out"] == 0
    assert "This publication was made before quality reports." in client.get("/").text
    engine.dispose()


def test_links_follow_the_mount_prefix(sqlite_url):
    engine = connect(sqlite_url)
    parent = FastAPI()
    parent.mount("/promptmill", create_app(lambda: sqlite_url, label_version_resolver=lambda: None))
    client = TestClient(parent)
    html = client.get("/promptmill/").text
    assert 'href="/promptmill/api/summary"' in html
    assert client.get("/promptmill/api/summary").json()["messages"]["total"] == 0
    engine.dispose()


def test_empty_store_renders(sqlite_url):
    connect(sqlite_url)
    client = TestClient(create_app(lambda: sqlite_url, label_version_resolver=lambda: None))
    response = client.get("/")
    assert response.status_code == 200
    assert "Nothing published yet." in response.text and "Nothing labeled yet." in response.text
    assert response.headers["cache-control"] == "no-store"


def test_unreachable_store_is_a_503_without_the_password():
    url = "postgresql+psycopg2://reader:t0p-s3cret@127.0.0.1:9/nowhere"
    client = TestClient(create_app(lambda: url, label_version_resolver=lambda: None))
    page = client.get("/")
    assert page.status_code == 503 and "cannot connect" in page.text and "t0p-s3cret" not in page.text
    api = client.get("/api/summary")
    assert api.status_code == 503 and "t0p-s3cret" not in api.text and "error" in api.json()


def test_dependencies_guard_every_route(sqlite_url):
    def deny() -> None:
        raise HTTPException(status_code=401, detail="Not authenticated")

    client = TestClient(create_app(lambda: sqlite_url, dependencies=[Depends(deny)]))
    for path in ("/", "/api/summary", "/publications/1/manifest.json"):
        assert client.get(path).status_code == 401


def test_names_from_the_store_are_escaped(sqlite_url):
    engine = connect(sqlite_url)
    from promptmill.store.schema import channels

    with engine.begin() as conn:
        conn.execute(sa.insert(channels).values(channel_id="1", name="<script>alert(1)</script>"))
        conn.execute(sa.insert(message_verdicts).values(
            key="1:1", channel_id="1", posted_at=sa.func.current_timestamp(), status="rejected",
            reason="<b>odd</b>"))
    html = TestClient(create_app(lambda: sqlite_url, label_version_resolver=lambda: None)).get("/").text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>odd</b>" not in html


def test_labels_of_prompts_no_longer_kept_are_counted_apart(filled):
    """Issue #19.6: "LABELED, CURRENT VERSION 316" above "KEPT 312" with 0 left to label: labels of prompts a
    later dedupe dropped were counted as labeled."""
    engine, facts = filled
    with engine.begin() as conn:
        from promptmill.labeling.tables import labels

        labeled_ok = [row[0] for row in conn.execute(
            sa.select(labels.c.prompt_id).where(labels.c.version == CURRENT_VERSION, labels.c.status == "ok")
            .order_by(labels.c.prompt_id).limit(3))]
        conn.execute(sa.update(prompts).where(prompts.c.id.in_(labeled_ok)).values(kept=False))
    current = next(v for v in collect_summary(engine, label_version=CURRENT_VERSION)["labeling"]["versions"]
                   if v["version"] == CURRENT_VERSION)
    assert current["labeled"] == facts.labeled_current - 3
    assert current["labeled_not_kept"] == 3
    assert current["labeled"] + current["failed"] + current["pending"] == facts.kept_prompts - 3


def test_spend_axis_ticks_never_read_alike():
    """Issue #20.8: the spend chart's axis showed $0.0002 twice."""
    from promptmill.dashboard.page import axis_usd

    for axis_max in (0.0005, 0.00025, 0.002, 0.05, 1.0, 2.5, 250.0):
        ticks = [axis_usd(axis_max * t / 4, axis_max / 4) for t in range(5)]
        assert len(set(ticks)) == 5, ticks
