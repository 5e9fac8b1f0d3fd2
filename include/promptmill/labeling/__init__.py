"""Labeling stage: pending prompts -> short image descriptions through an OpenAI-compatible API.

Airflow-free entry points for the CLI and the DAG; see README.md in this folder for the wire contract.
"""

from promptmill.labeling.client import ClientConfig
from promptmill.labeling.ledger import label_status
from promptmill.labeling.planner import label_batch, plan_batches
from promptmill.labeling.settings import LabelSettings

__all__ = ["ClientConfig", "LabelSettings", "label_batch", "label_status", "plan_batches"]
