"""Errors of the publishing stage."""

from __future__ import annotations


class PublishError(Exception):
    """A publication cannot be made or read. The message names the destination (without credentials) and why."""
