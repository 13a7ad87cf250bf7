"""What every generator promises, and the errors it may raise."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..model import ApplicationIR


class GenerationError(Exception):
    """Generation failed; the message is one line fit for a log or a status bar."""


@runtime_checkable
class Generator(Protocol):
    #: Short name recorded in every stored entry and in the log ("offline", "anthropic").
    name: str
    #: The model behind it, or None when there is none.
    model: str | None

    async def generate(self, spec_markdown: str, spec_name: str) -> ApplicationIR: ...
