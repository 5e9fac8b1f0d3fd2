"""
### promptmill: Discord prompt dataset

Turns DiscordChatExporter exports of Stable Diffusion bot channels, dropped in the landing folder, into a
deduplicated prompt store, labels each new prompt once with an OpenAI-compatible model, and publishes a
versioned train/test split.

| task | what it does |
|---|---|
| `discover_exports` | lists the export files with content not ingested yet, in size-balanced groups (paths only) |
| `ingest_exports` | mapped, one group each: every message stored with a status; bad files quarantined with the reason |
| `dedupe_messages` | the original exact / near-duplicate rules, over what changed (with `recompute`: every message) |
| `plan_labeling` | pending prompts of the current label version -> at most 1,024 batch descriptors (ids, never payloads) |
| `label_prompts` | mapped, pool `openai`: labels one batch (sync), or submits it to the Batch API (batch mode) |
| `collect_batches` | batch mode: the newest run defers until every submitted job is done and folds in the answers |
| `publish_dataset` | a new versioned split folder when anything changed, and only then a `promptmill_splits` asset event |

**Connections:** `promptmill_db` (PostgreSQL store; without it the embedded SQLite default) and `openai_default`
(password = API key, host = base URL of any OpenAI-compatible server). Without an OpenAI connection or key,
labeling is skipped with the cost estimate in the log, and publishing runs with what is labeled.

**Landing folder:** the `landing_dir` param, else `PROMPTMILL_LANDING_DIR`. Date-partitioned landing folders
(`<landing>/<YYYY-MM-DD>/...`): a run for a date (scheduled, backfill, or triggered from the UI with the logical
date now) ingests every new file dated up to that date plus unpartitioned files, and logs what it leaves to the
runs of later dates; a run without a date takes everything new. Every task is idempotent (content
hashes, upserts, a ledger of paid requests), so retries, re-runs and backfills never duplicate or re-pay.

**Cleaning and dedupe options:** the store records the options its verdicts were computed with. Empty params
(the default) use them; a run given other ones fails its first task with one line saying which the store uses,
unless `recompute` is on: then the dedupe task re-derives every message and recomputes every verdict with the
run's options, which become the store's.

All logic lives in the `promptmill` package (include/promptmill); this file only wires it to Airflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Asset, AssetAlias, Param, dag, get_current_context, task
from promptmill.choices import CLEANING_PROFILES, LABEL_MODES, NEAR_DUP_METRICS  # typing only: cheap to parse
from promptmill_airflow.labeling import CollectBatchesOperator, LabelBatchOperator

DAG_ID = "promptmill"
OPENAI_POOL = "openai"
SPLITS = Asset(name="promptmill_splits", group="promptmill")
# The publish task's outlet: an event for SPLITS is added through it only when a new version is published, so a
# training DAG scheduled on SPLITS does not run again for a day that changed nothing.
PUBLISHED = AssetAlias(name="promptmill_splits_published", group="promptmill")

# A param is optional in the trigger form (no asterisk) only when its type includes "null": every param whose empty
# value means "the default" says so.
PARAMS = {
    "landing_dir": Param(
        None,
        type=["null", "string"],
        title="Landing folder",
        description="Folder holding the exports to ingest; empty = the configured PROMPTMILL_LANDING_DIR.",
        section="Ingest",
    ),
    "channels": Param(
        [],
        type=["null", "array"],
        items={"type": "string"},
        title="Channels",
        description="Only ingest these channels (ids or names); empty = every channel.",
        section="Ingest",
    ),
    # Empty (the default) = the store's options: scheduled runs and backfills follow the store, whatever a CLI
    # `promptmill dedupe --full` or `reprocess` changed. A run given other ones fails its first task with one line
    # (no retries), unless `recompute` is on.
    "cleaning_profile": Param(
        None,
        type=["null", "string"],
        enum=[None, *CLEANING_PROFILES],
        title="Cleaning profile",
        description="Empty = the store's (a new store: quality). quality keeps good prompts and drops junk, "
        "measured against human judgement; parity reproduces the original notebook exactly, defects included.",
        section="Cleaning and dedupe",
    ),
    "near_dup_metric": Param(
        None,
        type=["null", "string"],
        enum=[None, *NEAR_DUP_METRICS],
        title="Near-duplicate metric",
        description="Empty = the store's (a new store: the profile's, content_words for quality, jaro for parity). "
        "How similar two attempts of one user are.",
        section="Cleaning and dedupe",
    ),
    "near_dup_threshold": Param(
        None,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        title="Near-duplicate threshold",
        description="Empty = the store's (a new store: the profile's, 0.8 for quality, 0.6 for parity). "
        "Similarity above which the older attempt is dropped.",
        section="Cleaning and dedupe",
    ),
    "near_dup_window_s": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Near-duplicate window (seconds)",
        description="Empty = the store's (a new store: 3600, the original hour). How close two attempts must be.",
        section="Cleaning and dedupe",
    ),
    "recompute": Param(
        False,
        type=["null", "boolean"],
        title="Recompute the whole store",
        description="Apply the options above to every stored message: re-derive each one and recompute every "
        "verdict (as `promptmill reprocess`), then record them as the store's. Off: options other than the "
        "store's fail the run.",
        section="Cleaning and dedupe",
    ),
    "labeling": Param(
        True,
        type=["null", "boolean"],
        title="Label new prompts",
        description="Off: ingest and publish only (no API calls).",
        section="Labeling",
    ),
    "label_mode": Param(
        "sync",
        type="string",
        enum=list(LABEL_MODES),
        title="Mode",
        description="sync: Chat Completions now; batch: the Batch API at half price, results within 24 h.",
        section="Labeling",
    ),
    "model": Param(
        None,
        type=["null", "string"],
        title="Model",
        description="Empty = the configured default (PROMPTMILL_LABEL_MODEL). A new model makes prompts pending again.",
        section="Labeling",
    ),
    "pack_size": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        maximum=100,
        title="Prompts per request",
        description="Empty = the configured default (25).",
        section="Labeling",
    ),
    "prompt_limit": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        title="Prompt limit",
        description="Label at most this many prompts in this run; empty = all pending.",
        section="Labeling",
    ),
    "budget_usd": Param(
        None,
        type=["null", "number"],
        minimum=0,
        title="Budget (USD)",
        description="Stop taking new requests once this run has spent this much; empty = no cap.",
        section="Labeling",
    ),
    "test_ratio": Param(
        0.2,
        type="number",
        exclusiveMinimum=0,
        exclusiveMaximum=1,
        title="Test ratio",
        description="Share of rows in the test split (stable: a row never moves).",
        section="Publishing",
    ),
    "include_no_object": Param(
        False,
        type=["null", "boolean"],
        title="Include _no_object rows",
        description="Also publish the prompts the labeler found nothing concrete to describe in (labeled "
                    "_no_object: abstract patterns, text, gibberish); off = leave them out, as the original dataset "
                    "did.",
        section="Publishing",
    ),
    "one_per_cluster": Param(
        False,
        type=["null", "boolean"],
        title="One prompt per cluster",
        description="Publish only the earliest prompt of each cluster of near-identical prompts (across users): "
                    "a smaller, more diverse dataset.",
        section="Publishing",
    ),
}


def _params() -> dict:
    return get_current_context()["params"]


@dag(
    dag_id=DAG_ID,
    schedule="@daily",
    start_date=datetime(2022, 8, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    params=PARAMS,
    tags=["promptmill", "etl", "dataset"],
    default_args={
        "owner": "promptmill",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
    },
)
def promptmill():
    @task
    def discover_exports() -> list[dict]:
        """Group the landing folder's files that hold new content (paths only, never payloads)."""
        from promptmill.pipeline import plan_ingest
        from promptmill_airflow import config

        context = get_current_context()
        logical_date = context.get("logical_date")
        run_date = logical_date.date().isoformat() if logical_date else None
        params = _params()
        with config.options_conflict_fails_the_task():
            groups = plan_ingest(config.settings(params), run_date=run_date, recompute=params.get("recompute", False))
        return [{"group": i + 1, "of": len(groups), "paths": paths} for i, paths in enumerate(groups)]

    @task(
        multiple_outputs=False,
        map_index_template="{{ ingest_label }}",
        # a mapped TaskFlow task does not take its docstring as doc_md: say it explicitly
        doc_md="Ingest one group of export files: every message stored with a status, bad files quarantined.",
    )
    def ingest_exports(group: dict) -> dict:
        """Ingest one group of export files: every message stored with a status, bad files quarantined."""
        from promptmill.pipeline import ingest_group
        from promptmill_airflow import config

        context = get_current_context()
        files = len(group["paths"])
        context["ingest_label"] = f"group {group['group']} of {group['of']}: {files} file{'s' if files != 1 else ''}"
        params = _params()
        with config.options_conflict_fails_the_task():
            return ingest_group(config.settings(params), group["paths"], recompute=params.get("recompute", False))

    @task(multiple_outputs=False, trigger_rule="none_failed")
    def dedupe_messages(reports) -> dict:
        """Apply the exact and near-duplicate rules to what changed; summarise the run."""
        from promptmill.pipeline import dedupe
        from promptmill_airflow import config

        # One slice request for every mapped result: iterating asks for one past the end, which the API server
        # logs as an error ("XCom not found") on every successful run.
        reports = list(reports[:]) if reports is not None else []
        params = _params()
        with config.options_conflict_fails_the_task():
            result = dedupe(config.settings(params), recompute=params.get("recompute", False))
        result["ingested_files"] = sum(r["files_ingested"] for r in reports)
        result["quarantined"] = [q for r in reports for q in r["files_quarantined"]]
        return result

    @task(trigger_rule="none_failed")
    def plan_labeling(_dedupe_summary) -> list[dict]:
        """Pending prompts -> at most 1,024 batch descriptors; [] (mapped task skipped) when nothing to do."""
        from promptmill.pipeline import plan_labeling as plan
        from promptmill_airflow import config

        params = _params()
        if params.get("labeling") is False:  # None (an emptied checkbox) = the default, on
            return []
        context = get_current_context()
        return plan(
            config.settings(params),
            config.label_settings(params, context["run_id"]),
            config.client_config(),
        )

    labeled = LabelBatchOperator.partial(
        task_id="label_prompts",
        pool=OPENAI_POOL,
        map_index_template="{{ task.descriptor['label'] }}",
        retries=3,
        doc_md="Label one batch of pending prompts (sync), or submit it to the Batch API (batch mode).",
    ).expand(descriptor=plan_labeling(dedupe_messages(ingest_exports.expand(group=discover_exports()))))

    collected = CollectBatchesOperator(
        task_id="collect_batches",
        trigger_rule="none_failed",
        doc_md="Batch mode: wait (deferred, newest run only) for every submitted Batch API job, then fold the answers "
               "into labels; a run catching up takes what is finished and goes on.",
    )

    @task(multiple_outputs=False, outlets=[PUBLISHED], trigger_rule="none_failed")
    def publish_dataset() -> dict:
        """Publish a new split version when the labeled set changed; only then an asset event (version, counts)."""
        from airflow.sdk.exceptions import AirflowSkipException
        from promptmill.pipeline import is_catching_up, publish
        from promptmill_airflow import config

        context = get_current_context()
        if is_catching_up(context.get("logical_date")):
            raise AirflowSkipException("catching up (a run of a past day): publishing is left to the newest run")
        params = context["params"]
        settings = config.settings(params)
        extra = publish(
            settings,
            config.publish_settings(params, settings.data_dir),
            config.label_settings(params, context["run_id"]),
            run_id=context["run_id"],
        )
        if not extra.get("unchanged"):
            context["outlet_events"][PUBLISHED].add(SPLITS, extra=extra)
        return extra

    labeled >> collected >> publish_dataset()


promptmill()
