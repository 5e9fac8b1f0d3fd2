"""
### promptmill: Discord prompt dataset

Turns DiscordChatExporter exports of Stable Diffusion bot channels, dropped in the landing folder, into a
deduplicated prompt store (and, in later stages, labels and published train/test splits).

**Flow:** `discover_exports` lists the export files with content not ingested yet (grouped) ->
`ingest_exports` (mapped, one group each) stores every message with a status -> `dedupe_messages` applies the
original exact / near-duplicate rules to whatever changed.

**Store:** the Airflow connection `promptmill_db` (PostgreSQL); without it, the embedded SQLite default.
**Landing folder:** the `landing_dir` param, else `PROMPTMILL_LANDING_DIR`. Date-partitioned landing folders
(`<landing>/<YYYY-MM-DD>/...`): a run for a date ingests that date's partition; a manual run without a date
takes everything new. Every task is idempotent (content hashes, upserts), so retries and re-runs are safe.

All logic lives in the `promptmill` package (include/promptmill); this file only wires it to Airflow.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

DAG_ID = "promptmill"
STORE_CONN_ID = "promptmill_db"

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
        type="array",
        items={"type": "string"},
        title="Channels",
        description="Only ingest these channels (ids or names); empty = every channel.",
        section="Ingest",
    ),
    "cleaning_profile": Param(
        "parity",
        type="string",
        enum=["parity", "improved"],
        title="Cleaning profile",
        description="parity reproduces the original notebook exactly; improved fixes its known defects.",
        section="Cleaning and dedupe",
    ),
    "near_dup_metric": Param(
        "jaro",
        type="string",
        enum=["jaro", "token_set", "indel", "off"],
        title="Near-duplicate metric",
        description="How similar two attempts of a user are (jaro = the original rule).",
        section="Cleaning and dedupe",
    ),
    "near_dup_threshold": Param(
        0.6,
        type="number",
        minimum=0,
        maximum=1,
        title="Near-duplicate threshold",
        description="Similarity above which the older attempt is dropped (0.6 = the original).",
        section="Cleaning and dedupe",
    ),
}


def _store_url() -> str | None:
    """The store URL from the `promptmill_db` connection, or None for the embedded default. Never logged."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get(STORE_CONN_ID)
    except AirflowNotFoundException:
        return None
    from sqlalchemy.engine import URL

    if conn.conn_type in ("sqlite",):
        return f"sqlite:///{conn.host}"
    return URL.create(
        "postgresql+psycopg2",
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    ).render_as_string(hide_password=False)


def _settings():
    from promptmill.settings import Settings

    params = get_current_context()["params"]
    return Settings.from_env(
        database_url=_store_url(),
        landing_dir=params.get("landing_dir") or None,
        channels=params.get("channels") or None,
        cleaning_profile=params.get("cleaning_profile"),
        near_dup_metric=params.get("near_dup_metric"),
        near_dup_threshold=params.get("near_dup_threshold"),
    )


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
        """Group the landing folder's files that hold new content (never payloads: paths only)."""
        from promptmill.pipeline import plan_ingest

        context = get_current_context()
        logical_date = context.get("logical_date")
        run_date = logical_date.date().isoformat() if logical_date else None
        groups = plan_ingest(_settings(), run_date=run_date)
        return [{"group": i + 1, "of": len(groups), "paths": paths} for i, paths in enumerate(groups)]

    @task(multiple_outputs=False, map_index_template="{{ ingest_label }}")
    def ingest_exports(group: dict) -> dict:
        """Ingest one group of export files: every message stored with a status, bad files quarantined."""
        from promptmill.pipeline import ingest_group

        context = get_current_context()
        context["ingest_label"] = f"group {group['group']}/{group['of']}: {len(group['paths'])} files"
        return ingest_group(_settings(), group["paths"])

    @task(multiple_outputs=False, trigger_rule="none_failed")
    def dedupe_messages(reports) -> dict:
        """Apply the exact and near-duplicate rules to what changed; summarise the run."""
        from promptmill.pipeline import dedupe

        reports = list(reports or [])
        result = dedupe(_settings())
        result["ingested_files"] = sum(r["files_ingested"] for r in reports)
        result["quarantined"] = [q for r in reports for q in r["files_quarantined"]]
        return result

    ingested = ingest_exports.expand(group=discover_exports())
    dedupe_messages(ingested)


promptmill()
