"""Message Batches through the official `anthropic` SDK: what `warm --batch` submits through.

Half the price, answers within 24 h. A batch request's `params` are a direct generation's first
request (request_params), with the system prompt and schema cached for 1 hour: a batch's requests
are processed over minutes to hours, past a 5-minute cache. A patch request (incremental
regeneration) is regenerate_with_usage's request (patch_request_params) with the same 1-hour cache.
Each result's Message is read exactly as a direct answer (read_answer; a patch request's by
read_patch, with the generator's read_patch_answer, once the caller has loaded the previous IR):
nothing invalid comes out of here. Every API failure is one GenerationError line, scrubbed of secrets, as for direct
requests.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Collection, Iterator
from typing import Any, Literal, Protocol

import anthropic

from ..model import ApplicationIR
from ..usage import Usage
from .base import BatchOutcome, BatchStatus
from .said import failure as _failure
from .said import one_line as _line

BATCH_CACHE_TTL: Literal["1h"] = "1h"


class _Generator(Protocol):
    """What of AnthropicGenerator its batches use (a protocol: that module builds on this one)."""

    @property
    def client(self) -> anthropic.AsyncAnthropic: ...

    def request_params(self, spec_markdown: str, spec_name: str, *,
                       cache_ttl: Literal["5m", "1h"] | None = None) -> dict[str, Any]: ...

    def patch_request_params(self, previous: ApplicationIR, spec_diff: str, spec_markdown: str, spec_name: str, *,
                             cache_ttl: Literal["5m", "1h"] | None = None) -> dict[str, Any]: ...

    def read_answer(self, message: Any) -> tuple[ApplicationIR | None, str, Usage]: ...

    def read_patch_answer(self, previous: ApplicationIR, message: Any) -> tuple[ApplicationIR | None, str, Usage]: ...

    def _status_problem(self, exc: anthropic.APIStatusError) -> str: ...


class AnthropicBatches:
    """The Message Batches of an AnthropicGenerator: full requests and patch requests (incremental
    regeneration, cache/incremental.py), each answer read by the generator's own readers."""

    def __init__(self, generator: _Generator) -> None:
        self._generator = generator
        self._batches = generator.client.messages.batches

    def params(self, spec_markdown: str, spec_name: str) -> dict[str, Any]:
        return self._generator.request_params(spec_markdown, spec_name, cache_ttl=BATCH_CACHE_TTL)

    def patch_params(self, previous: ApplicationIR, spec_diff: str, spec_markdown: str,
                     spec_name: str) -> dict[str, Any]:
        return self._generator.patch_request_params(previous, spec_diff, spec_markdown, spec_name,
                                                    cache_ttl=BATCH_CACHE_TTL)

    async def submit(self, requests: list[tuple[str, dict[str, Any]]]) -> str:
        with self._said("submitting a batch of %d requests" % len(requests)):
            batch = await self._batches.create(
                requests=[{"custom_id": custom_id, "params": params} for custom_id, params in requests])  # type: ignore[typeddict-item]
        return batch.id

    async def status(self, batch_id: str) -> BatchStatus:
        with self._said(f"asking about batch {batch_id}"):
            batch = await self._batches.retrieve(batch_id)
        counts = batch.request_counts
        done = counts.succeeded + counts.errored + counts.canceled + counts.expired
        return BatchStatus(batch.processing_status == "ended", done, done + counts.processing)

    async def results(self, batch_id: str, patch_ids: Collection[str] = ()) -> AsyncGenerator[BatchOutcome, None]:
        with self._said(f"fetching the results of batch {batch_id}"):
            lines = await self._batches.results(batch_id)
            async for line in lines:
                result = line.result
                if result.type == "succeeded" and line.custom_id in patch_ids:
                    yield BatchOutcome(line.custom_id, None, None, answer=result.message)  # read by read_patch
                elif result.type == "succeeded":
                    ir, problem, usage = self._generator.read_answer(result.message)
                    yield BatchOutcome(line.custom_id, ir, usage, problem)
                elif result.type == "errored":
                    error = result.error.error
                    yield BatchOutcome(line.custom_id, None, None,
                                       f"errored ({error.type}: {_line(error.message, 120)})")
                else:
                    yield BatchOutcome(line.custom_id, None, None, result.type)  # expired, canceled

    def read_patch(self, previous: ApplicationIR, outcome: BatchOutcome) -> BatchOutcome:
        ir, problem, usage = self._generator.read_patch_answer(previous, outcome.answer)
        return BatchOutcome(outcome.custom_id, ir, usage, problem)

    @contextlib.contextmanager
    def _said(self, doing: str) -> Iterator[None]:
        """The SDK's errors while `doing`, as one GenerationError line."""
        try:
            yield
        except anthropic.APIStatusError as exc:
            raise _failure(f"Anthropic Message Batches API error {exc.status_code} {doing}: "
                           f"{self._generator._status_problem(exc)}") from None
        except anthropic.APIConnectionError:
            raise _failure(f"Anthropic Message Batches API unreachable {doing}: check ANTHROPIC_BASE_URL and "
                           "the network") from None
        except (anthropic.AnthropicError, json.JSONDecodeError) as exc:
            raise _failure(f"Anthropic Message Batches API failed {doing}: {exc.__class__.__name__}: "
                           f"{_line(str(exc))}") from None
