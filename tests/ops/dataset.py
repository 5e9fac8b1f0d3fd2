"""A store filled the way production fills it, for the dataset page tests and the README screenshot.

Messages come from the synthetic DiscordChatExporter generator through the real ingest (so statuses and rejection
reasons are the pipeline's own); labeling ledger rows, labels and publications are inserted directly, spread over
days and two label versions, with costs computed from token counts (no labeling server needed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from promptmill.ingest import ingest_paths
from promptmill.labeling.tables import label_requests, label_versions, labels
from promptmill.publishing.report import quality_report
from promptmill.publishing.tables import publications
from promptmill.settings import Settings
from promptmill.store.schema import prompts

from tests.synth import SynthConfig, write_exports

OLD_VERSION = "lv-2f81c0a9"
CURRENT_VERSION = "lv-7d3e52b4"
PACK = 25
DAY0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)
# dollars per token, like a small model's list price
PROMPT_PRICE, COMPLETION_PRICE = 0.15 / 1e6, 0.60 / 1e6


@dataclass(frozen=True)
class FilledStore:
    kept_prompts: int
    labeled_current: int
    failed_current: int
    no_object_current: int
    labeled_old: int
    spend_by_day: dict[str, float]
    publications: int


def fill_store(engine, work_dir: Path, *, messages: int = 1200, seed: int = 11) -> FilledStore:
    landing = work_dir / "landing"
    write_exports(landing, SynthConfig(messages=messages, seed=seed, channels=4, era="mixed", users=40))
    ingest_paths(engine, [landing], Settings(database_url=str(engine.url), data_dir=work_dir))

    with engine.begin() as conn:
        kept_ids = [row[0] for row in conn.execute(
            sa.select(prompts.c.id).where(prompts.c.kept.is_(True)).order_by(prompts.c.id)
        )]
        conn.execute(sa.insert(label_versions), [
            {"version": OLD_VERSION, "model": "gpt-4o-mini", "instructions_sha256": "1" * 64,
             "created_at": DAY0 - dt.timedelta(days=6)},
            {"version": CURRENT_VERSION, "model": "gpt-6-luna", "instructions_sha256": "2" * 64,
             "created_at": DAY0},
        ])
        old_ids = kept_ids[: len(kept_ids) * 2 // 5]
        current_ids = kept_ids[: len(kept_ids) * 3 // 4]
        spend_by_day: dict[str, float] = {}
        request_no = 0
        stats = {"ok": 0, "failed": 0, "no_object": 0}
        for version, ids, first_day, days in ((OLD_VERSION, old_ids, -6, 3), (CURRENT_VERSION, current_ids, 0, 8)):
            packs = [ids[i:i + PACK] for i in range(0, len(ids), PACK)]
            for pack_no, pack in enumerate(packs):
                request_no += 1
                # more work on later days, like a backlog being worked through
                day = first_day + min(days - 1, int(days * (pack_no / max(len(packs), 1)) ** 0.7))
                created = DAY0 + dt.timedelta(days=day, minutes=pack_no)
                prompt_tokens, completion_tokens = 900 + 31 * len(pack), 14 * len(pack)
                cost = prompt_tokens * PROMPT_PRICE * (3 if version == CURRENT_VERSION else 1) + (
                    completion_tokens * COMPLETION_PRICE * (3 if version == CURRENT_VERSION else 1))
                key = created.strftime("%Y-%m-%d")
                spend_by_day[key] = spend_by_day.get(key, 0.0) + cost
                request_id = conn.execute(sa.insert(label_requests).values(
                    request_key=hashlib.sha256(f"{version}-{pack_no}".encode()).hexdigest()[:32],
                    run_key=f"scheduled__{key}", mode="sync", model="m", version=version, item_count=len(pack),
                    labeled_count=len(pack), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    cost_usd=cost, status="ok", created_at=created,
                ).returning(label_requests.c.id)).scalar_one()
                rows = []
                for position, prompt_id in enumerate(pack):
                    failed = version == CURRENT_VERSION and position == 7
                    no_object = not failed and position % 11 == 3
                    if version == CURRENT_VERSION:
                        stats["failed" if failed else "ok"] += 1
                        stats["no_object"] += int(no_object)
                    rows.append({
                        "prompt_id": prompt_id, "version": version, "status": "failed" if failed else "ok",
                        # a few descriptions repeat, as real labels do
                        "description": None if failed or no_object else (
                            "a lone tree on a hill" if position % 13 == 5 else f"description {prompt_id}"),
                        "no_object": no_object, "error": "invalid item" if failed else None, "model": "m",
                        "tokens": 40, "cost_usd": cost / len(pack), "request_id": request_id, "labeled_at": created,
                    })
                conn.execute(sa.insert(labels), rows)

        for number in range(1, 4):
            train, test = 200 * number + 17, 50 * number + 3
            created = DAY0 + dt.timedelta(days=2 * number, hours=3)
            manifest = {
                "format": "promptmill-publication/1", "version": f"v{number:04d}-{number:012x}",
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "counts": {"train": train, "test": test},
                "settings": {"test_ratio": 0.2, "username_hash": "hmac-sha256"},
                "files": {"train.jsonl": {"rows": train}, "test.jsonl": {"rows": test}},
            }
            conn.execute(sa.insert(publications).values(
                # an old row written before destinations were redacted: the page must not show the password
                destination="s3://publisher:hunter2@datasets/prompts" if number == 1 else "file:///srv/promptmill/published",
                version=manifest["version"], content_sha256=f"{number:064x}", label_version=CURRENT_VERSION,
                train_rows=train, test_rows=test, run_id=f"scheduled__{created:%Y-%m-%d}", created_at=created,
                manifest=json.dumps(manifest),
            ))
    # the newest publication carries the quality report of the store as it is (earlier ones predate reports)
    newest, quality = f"v{3:04d}-{3:012x}", quality_report(engine, CURRENT_VERSION)
    with engine.begin() as conn:
        manifest = json.loads(conn.execute(
            sa.select(publications.c.manifest).where(publications.c.version == newest)).scalar_one())
        manifest["counts"].update({
            "held_out": 4, "one_per_cluster_removed": 0,
            "clusters": {"clusters": 21, "cross_user": 9, "rows": 47, "largest": 4},
            "leakage": {"test_rows_with_near_identical_train_row": 0, "share": 0.0},
        })
        manifest["quality"] = quality
        conn.execute(sa.update(publications).where(publications.c.version == newest)
                     .values(manifest=json.dumps(manifest)))
    return FilledStore(
        kept_prompts=len(kept_ids),
        labeled_current=stats["ok"],
        failed_current=stats["failed"],
        no_object_current=stats["no_object"],
        labeled_old=len(old_ids),
        spend_by_day=spend_by_day,
        publications=3,
    )
