"""The publishing stage: stable train/test splits of the labeled prompts in versioned, complete folders."""

from promptmill.publishing.errors import PublishError
from promptmill.publishing.publish import PublishResult, publish
from promptmill.publishing.settings import PublishSettings

__all__ = ["PublishError", "PublishResult", "PublishSettings", "publish"]
