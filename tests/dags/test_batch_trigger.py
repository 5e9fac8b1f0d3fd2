"""The deferrable wait for Batch API jobs (BatchDoneTrigger) against the local fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.fake_openai.server import FakeOpenAI

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys, threading

    watched = ("openai", "promptmill.labeling.batch_mode")  # the slow part: the OpenAI client and its stack
    imported_on_loop_thread = {}

    class ImportSpy:
        def find_spec(self, name, path=None, target=None):
            if name in watched and name not in imported_on_loop_thread:
                imported_on_loop_thread[name] = threading.current_thread() is threading.main_thread()
            return None

    sys.meta_path.insert(0, ImportSpy())
    from promptmill_airflow.labeling import BatchDoneTrigger

    async def first_event():
        trigger = BatchDoneTrigger(batch_ids=[sys.argv[1]], job_ids=[1], poll_s=0.05)
        async for event in trigger.run():
            return event.payload

    payload = asyncio.run(first_event())
    print(json.dumps({"payload": payload, "imported_on_loop_thread": imported_on_loop_thread}))
    """
)


def test_the_trigger_imports_the_client_stack_off_the_event_loop():
    """Issue #19.8: the trigger blocked the triggerer's event loop (shared by every deferred task) for about a
    second while it imported the OpenAI client inside run()."""
    server = FakeOpenAI(api_key="sk-trigger").start()
    try:
        server.batches["batch_done"] = {"id": "batch_done", "object": "batch", "status": "completed",
                                        "created_at": int(time.time()), "request_counts": None, "metadata": {}}
        env = {**os.environ, "OPENAI_API_KEY": "sk-trigger", "OPENAI_BASE_URL": server.base_url,
               "PYTHONPATH": os.pathsep.join([str(REPO / "include"), os.environ.get("PYTHONPATH", "")])}
        out = subprocess.run([sys.executable, "-c", CHILD, "batch_done"], env=env, capture_output=True, text=True,
                             timeout=120, check=True)
    finally:
        server.stop()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["payload"]["done"] is True and result["payload"]["states"] == {"batch_done": "completed"}
    assert result["imported_on_loop_thread"], "the client stack was imported before the trigger ran"
    assert not any(result["imported_on_loop_thread"].values()), result["imported_on_loop_thread"]
