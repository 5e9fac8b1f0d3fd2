"""The labeling tasks: the mapped one labels its batch in the worker (sync mode) or submits (or re-attaches to)
Batch API jobs (batch mode); collect_batches then defers to the triggerer while OpenAI works, so no worker slot
waits for hours, and reconciles what came back."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger(__name__)


def _resolve(context):
    """(store engine, labeling settings, client config) of a labeling task, from its run's params."""
    from promptmill_airflow import config

    params = context["params"]
    settings = config.settings(params)
    return settings.connect_store(), config.label_settings(params, context["run_id"]), config.client_config()


class LabelBatchOperator(BaseOperator):
    """Label the pending prompts of one batch descriptor (ids and counts only, never the payload)."""

    ui_color = "#f2e6ff"

    def __init__(self, *, descriptor: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.descriptor = descriptor

    def execute(self, context) -> dict[str, Any]:
        engine, label_settings, client_config = _resolve(context)
        log.info(
            "labeling %s with %s (%s mode)",
            self.descriptor.get("label"),
            label_settings.model,
            label_settings.mode,
        )
        if label_settings.mode == "batch":
            from promptmill.labeling.batch_mode import submit_or_attach

            # Submit only: the job rows and batch ids are committed at once (a retried task re-attaches, never
            # re-pays), and collect_batches waits for every run's jobs in one place.
            return submit_or_attach(engine, label_settings, client_config, self.descriptor)
        from promptmill.labeling import label_batch

        return label_batch(engine, label_settings, client_config, self.descriptor)


class CollectBatchesOperator(BaseOperator):
    """Fold the answers of submitted Batch API jobs into labels, whichever run submitted them.

    The newest run (see promptmill.pipeline.is_catching_up) defers to the triggerer until every submitted job
    is done, then reconciles them all; a run catching up (a backfill of past days) reconciles what is finished
    and goes on, so N backfilled days wait for one batch turnaround, in the newest run, instead of N.
    """

    ui_color = "#f2e6ff"

    def execute(self, context) -> dict[str, Any]:
        from promptmill.labeling.batch_mode import submitted_jobs
        from promptmill.pipeline import is_catching_up

        engine, label_settings, client_config = _resolve(context)
        if not (client_config.api_key or client_config.base_url):
            return {}  # labeling is off (the plan said why); nothing can be polled either
        jobs = submitted_jobs(engine, label_settings)
        if not jobs["job_ids"]:
            return {}
        if is_catching_up(context.get("logical_date")):
            log.info("catching up: %d submitted batch jobs are collected without waiting; the newest run waits",
                     len(jobs["job_ids"]))
            return self.reconcile_batches(context, job_ids=jobs["job_ids"])
        self.defer(
            trigger=BatchDoneTrigger(batch_ids=jobs["batch_ids"], job_ids=jobs["job_ids"],
                                     poll_s=label_settings.batch_poll_s),
            method_name="reconcile_batches",
            kwargs={"job_ids": jobs["job_ids"]},
            timeout=timedelta(hours=26),  # the Batch API's 24 h window, plus finalizing
        )

    def reconcile_batches(
        self, context, event: dict | None = None, job_ids: list[int] | None = None
    ) -> dict[str, Any]:
        from promptmill.labeling.batch_mode import reconcile

        if event and not event.get("done"):
            raise RuntimeError(f"batch wait ended without completion: {event}")
        # The event echoes the job ids too: `dag.test` resumes with the event alone, dropping the defer kwargs.
        job_ids = job_ids or (event or {}).get("job_ids")
        engine, label_settings, client_config = _resolve(context)
        result = reconcile(engine, label_settings, client_config, list(job_ids or []))
        log.info("reconciled batch jobs %s: %s", job_ids, result)
        return result


class BatchDoneTrigger(BaseTrigger):
    """Polls OpenAI batch jobs from the triggerer until every one of them reached a final state."""

    def __init__(self, batch_ids: list[str], job_ids: list[int] | None = None, poll_s: float = 60.0):
        super().__init__()
        self.batch_ids = list(batch_ids)
        self.job_ids = list(job_ids or [])
        self.poll_s = float(poll_s)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Only ids and the interval are stored in the database; the API key is resolved in the triggerer.
        return (
            "promptmill_airflow.labeling.BatchDoneTrigger",
            {"batch_ids": self.batch_ids, "job_ids": self.job_ids, "poll_s": self.poll_s},
        )

    async def _client_config(self):
        # The client stack (openai, httpx) takes about a second to import: in a thread, so that the triggerer's
        # event loop, shared by every deferred task, is not held up while it loads.
        await asyncio.to_thread(importlib.import_module, "promptmill.labeling.batch_mode")
        from promptmill.labeling import ClientConfig

        from promptmill_airflow.config import OPENAI_CONN_ID

        try:
            from airflow.sdk import Connection

            conn = await Connection.async_get(OPENAI_CONN_ID)
        except Exception:  # not defined: fall back to the environment
            conn = None
        if conn is not None:
            return ClientConfig.from_connection(
                password=conn.password, host=conn.host, extra=conn.extra_dejson
            )
        return ClientConfig.from_env()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client_config = await self._client_config()  # imports the client stack off the event loop first
        from promptmill.labeling.batch_mode import apoll

        while True:
            status = await apoll(client_config, self.batch_ids)
            if status["done"]:
                yield TriggerEvent(
                    {
                        "done": True,
                        "job_ids": self.job_ids,
                        "states": status["states"],
                        "counts": status.get("counts"),
                    }
                )
                return
            self.log.info("batches not done yet: %s", status["states"])
            await asyncio.sleep(self.poll_s)
