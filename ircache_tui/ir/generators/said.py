"""What the Anthropic generator and its batches say when something fails: one line, scrubbed of secrets."""

from __future__ import annotations

from ... import redact
from .base import GenerationError


def failure(text: str) -> GenerationError:
    """A one-line GenerationError whose message has been scrubbed of secrets."""
    return GenerationError(" ".join(redact.scrub(text).split()))


def one_line(text: object, limit: int = 200) -> str:
    """`text` scrubbed (before it is cut: a key cut in half would no longer be recognised),
    on one line, at most `limit` characters."""
    flat = " ".join(redact.scrub(str(text or "")).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
