"""What every generator promises, and the errors it may raise."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ...errors import IRCacheError
from ..model import ApplicationIR
from ..usage import Usage


class GenerationError(IRCacheError):
    """Generation failed; the message is one line fit for a log or a status bar."""


@runtime_checkable
class Generator(Protocol):
    # Read-only (properties), so a generator may declare them narrower (`model: str` when it
    # always has one): the cache only reads them.
    @property
    def name(self) -> str:
        """Short name recorded in every stored entry and in the log ("offline", "anthropic")."""

    @property
    def model(self) -> str | None:
        """The model behind it, or None when there is none."""

    async def generate(self, spec_markdown: str, spec_name: str) -> ApplicationIR: ...


@runtime_checkable
class ReportsUsage(Protocol):
    """A generator that can also say what a generation used (tokens; the cache adds the
    duration and the dollars). IRCache calls this instead of `generate` when it exists."""

    async def generate_with_usage(self, spec_markdown: str, spec_name: str) -> tuple[ApplicationIR, Usage]: ...


class IncrementalFailed(GenerationError):
    """A regeneration from a patch that gave nothing usable (a refusal, a cut-off, a patch that does
    not apply, an invalid result); `usage`: the tokens it spent all the same."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage


@runtime_checkable
class RegeneratesFromPatch(Protocol):
    """A generator that can also regenerate a changed spec's IR from its previous IR and the spec's
    unified diff (the optional incremental method of the Generator protocol). It returns the new IR,
    validated, and the tokens the request used; it raises GenerationError (IncrementalFailed with the
    tokens, when an answer came) and the cache then generates in full (cache/incremental.py)."""

    async def regenerate_with_usage(
        self, previous: ApplicationIR, spec_diff: str, spec_markdown: str, spec_name: str,
    ) -> tuple[ApplicationIR, Usage]: ...
