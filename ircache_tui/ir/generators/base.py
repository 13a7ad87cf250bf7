"""What every generator promises, and the errors it may raise."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ...errors import IRCacheError
from ..envelope import GeneratorInfo
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

    # Optional, so a generator written before it still is one (see Fingerprinted):
    # `fingerprint`, a short hex digest of what shapes its answers (name, model, prompt, schema).
    # An entry made under another fingerprint is outdated (envelope.GeneratorInfo.outdated_for).

    async def generate(self, spec_markdown: str, spec_name: str) -> ApplicationIR: ...


@runtime_checkable
class Fingerprinted(Protocol):
    """A generator that says what shapes its answers, as a short hex digest (`fingerprint_of`)."""

    @property
    def fingerprint(self) -> str: ...


def fingerprint_of(*parts: str) -> str:
    """16 hex digits of SHA-256 over the parts (each told apart from the next): short enough for
    the first KiB of an entry, long enough that two prompts never share one."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def identity_of(generator: Generator) -> GeneratorInfo:
    """What an entry made now by `generator` records of it (name, model, fingerprint or None)."""
    fingerprint = generator.fingerprint if isinstance(generator, Fingerprinted) else None
    return GeneratorInfo(name=generator.name, model=generator.model, fingerprint=fingerprint)


@runtime_checkable
class ReportsUsage(Protocol):
    """A generator that can also say what a generation used (tokens; the cache adds the
    duration and the dollars). IRCache calls this instead of `generate` when it exists."""

    async def generate_with_usage(self, spec_markdown: str, spec_name: str) -> tuple[ApplicationIR, Usage]: ...


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """Where a Message Batch is: ended or not, and how many of its requests are done."""

    ended: bool
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """One request of an ended batch: its IR (validated) and usage, or None and what went wrong
    ("errored: …", "expired", "canceled", or why the answer is not a valid ApplicationIR). A patch
    request's answer comes unread in `answer` (BatchApi.read_patch reads it against the previous IR,
    which the caller loads only then: a batch's previous IRs are never all in memory at once)."""

    custom_id: str
    ir: ApplicationIR | None
    usage: Usage | None
    problem: str = ""
    answer: Any = None


class BatchApi(Protocol):
    """A model provider's batch interface: submit many first requests at once, half price."""

    def params(self, spec_markdown: str, spec_name: str) -> dict[str, Any]:
        """A request's params, as a direct generation's first request (1 h prompt cache)."""

    def patch_params(self, previous: ApplicationIR, spec_diff: str, spec_markdown: str,
                     spec_name: str) -> dict[str, Any]:
        """A patch request's params (incremental regeneration), as a direct one's (1 h prompt cache)."""

    async def submit(self, requests: list[tuple[str, dict[str, Any]]]) -> str:
        """Create one batch of (custom_id, params); its id. Raises GenerationError."""

    async def status(self, batch_id: str) -> BatchStatus: ...

    def results(self, batch_id: str, patch_ids: Collection[str] = ()) -> AsyncGenerator[BatchOutcome, None]:
        """Every request's outcome; a succeeded one whose custom_id is in `patch_ids` (a patch request)
        comes with its `answer` unread."""

    def read_patch(self, previous: ApplicationIR, outcome: BatchOutcome) -> BatchOutcome:
        """A patch request's outcome read as a direct answer is: `previous` patched and validated, or
        no IR and why not (`problem`); its usage either way (mode "incremental")."""


@runtime_checkable
class SubmitsBatches(Protocol):
    """A generator that can also submit a Message Batch (`warm --batch`)."""

    def batches(self) -> BatchApi: ...


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
