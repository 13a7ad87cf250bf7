"""Message Batches for the Anthropic generator: half the price, answers within 24 h.

A batch request's `params` are a direct generation's first request (AnthropicGenerator.
request_params), with the system prompt and schema cached for 1 hour: a batch's requests are
processed over minutes to hours, past a 5-minute cache. Each result's Message is read exactly as a
direct answer (AnthropicGenerator.read_answer): nothing invalid comes out of here. Every API failure
is one GenerationError line, scrubbed of secrets, as for direct requests.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Literal

import anthropic

from .anthropic import _failure, _line
from .base import BatchOutcome, BatchStatus

if TYPE_CHECKING:
    from .anthropic import AnthropicGenerator

BATCH_CACHE_TTL: Literal["1h"] = "1h"


class AnthropicBatches:
    def __init__(self, generator: AnthropicGenerator) -> None:
        self._generator = generator
        self._batches = generator.client.messages.batches

    def params(self, spec_markdown: str, spec_name: str) -> dict[str, Any]:
        return self._generator.request_params(spec_markdown, spec_name, cache_ttl=BATCH_CACHE_TTL)

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

    async def results(self, batch_id: str) -> AsyncIterator[BatchOutcome]:
        with self._said(f"fetching the results of batch {batch_id}"):
            lines = await self._batches.results(batch_id)
            async for line in lines:
                result = line.result
                if result.type == "succeeded":
                    ir, problem, usage = self._generator.read_answer(result.message)
                    yield BatchOutcome(line.custom_id, ir, usage, problem)
                elif result.type == "errored":
                    error = result.error.error
                    yield BatchOutcome(line.custom_id, None, None,
                                       f"errored ({error.type}: {_line(error.message, 120)})")
                else:
                    yield BatchOutcome(line.custom_id, None, None, result.type)  # expired, canceled

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
