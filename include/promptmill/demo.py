"""`promptmill demo` (behind `make run`): the whole pipeline on the bundled sample exports.

ingest -> dedupe -> (label, when an API key or the base URL of an OpenAI-compatible server is configured;
otherwise the cost estimate and how to configure it) -> publish -> where everything is. Never invents labels.
"""

from __future__ import annotations

from pathlib import Path

from promptmill.settings import Settings
from promptmill.store.db import redact_url

DEMO_FOLDER = "demo"


def demo_settings(settings: Settings, *, database_url: str | None = None) -> Settings:
    """The demo's own store and outputs, in ``<data dir>/demo/``: the synthetic samples never land in the store
    (or the publication destination) a user's own exports go to. Only ``--db`` given to `promptmill demo`
    itself points it elsewhere."""
    data_dir = Path(settings.data_dir) / DEMO_FOLDER
    return Settings(**{**settings.model_dump(exclude={"database_url", "data_dir", "landing_dir"}),
                       "data_dir": data_dir, "database_url": database_url})


def run_demo(settings: Settings, samples: Path) -> int:
    from promptmill.export_cleaned import export_cleaned
    from promptmill.ingest import ingest_paths
    from promptmill.labeling.client import ClientConfig
    from promptmill.labeling.estimate import estimate
    from promptmill.labeling.settings import LabelSettings
    from promptmill.publishing import PublishSettings, publish
    from promptmill.status import format_status, store_status

    url = settings.effective_database_url
    print(f"promptmill demo: store {redact_url(url)}")
    print(f"1. ingesting the sample exports in {samples}")
    engine = settings.connect_store()
    report = ingest_paths(engine, [samples], settings)
    print(
        f"   files: {report.files_ingested} ingested, {report.files_skipped} already ingested, "
        f"{len(report.files_quarantined)} quarantined; {report.messages:,} messages read"
    )
    print()
    print(format_status(store_status(engine, settings)))
    out = Path(settings.data_dir) / "cleaned_discord_prompts.tsv"
    rows = export_cleaned(engine, out)
    print(f"\n   cleaned prompts in the original notebook's format: {out} ({rows:,} rows)")

    label_settings = LabelSettings.from_env()
    client = ClientConfig.from_env()
    est = estimate(engine, label_settings)
    print(f"\n2. labeling: {est['pending']:,} prompts pending for {label_settings.model} (version {est['label_version']})")
    if not (client.api_key or client.base_url):
        print(
            f"   not labeling: no API configured. Labeling them would take about {est['requests']:,} requests, "
            f"{est['input_tokens'] + est['output_tokens']:,} tokens, ${est['cost_usd']:.4f} "
            f"(batch mode: ${est['cost_usd_by_tier']['batch']:.4f}).\n"
            "   To label: export OPENAI_API_KEY=... (OpenAI), or OPENAI_BASE_URL=http://127.0.0.1:8000/v1 for a local\n"
            "   OpenAI-compatible server (vLLM, Ollama, llama.cpp), then `make run` again or `promptmill label`."
        )
    elif est["pending"]:
        from promptmill.labeling.runner import label_pending

        summary = label_pending(engine, label_settings, client)
        done = summary.as_dict()
        print(
            f"   labeled {done.get('labeled', 0):,} ({done.get('no_object', 0):,} _no_object), "
            f"{done.get('failed', 0):,} failed, ${done.get('spend_usd', 0.0):.4f} spent"
        )

    from promptmill.publishing.settings import default_out_uri

    # the demo's own destination, whatever PROMPTMILL_PUBLISH_OUT_URI says
    publish_settings = PublishSettings.from_env(data_dir=settings.data_dir, out_uri=default_out_uri(settings.data_dir))
    result = publish(engine, publish_settings, run_id="promptmill-demo", label_settings=label_settings)
    print("\n3. publishing")
    if result.status == "empty":
        print("   nothing to publish yet: no prompt has a label of the current version (see step 2)")
    else:
        word = "unchanged, still" if result.unchanged else "new version"
        print(f"   {word} {result.version}: {result.counts.get('train', 0):,} train / {result.counts.get('test', 0):,} test rows")
        print(f"   published splits: {result.uri}")
    print(f"\ndemo store: {redact_url(url)} (the demo's own: your exports go to the default store, see "
          "`promptmill status`)  |  `promptmill --help` for more")
    return 0
