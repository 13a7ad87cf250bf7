"""Real generators for tests: the offline one, counting its calls and optionally slow or failing."""

from __future__ import annotations

import asyncio
import os

from ircache_tui.ir.generators import GenerationError, OfflineGenerator
from ircache_tui.ir.model import ApplicationIR


class CountingGenerator(OfflineGenerator):
    """OfflineGenerator that counts its runs (and appends to `log_path`, across processes)."""

    name = "counting"

    def __init__(self, delay: float = 0.0, log_path: str | None = None, fail: bool = False) -> None:
        self.delay = delay
        self.log_path = log_path
        self.fail = fail
        self.calls = 0

    async def generate(self, spec_markdown: str, spec_name: str) -> ApplicationIR:
        self.calls += 1
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(f"{os.getpid()} {spec_name}\n")
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise GenerationError(f"counting generator told to fail for {spec_name}")
        return await super().generate(spec_markdown, spec_name)


SPEC = """# Shop API

Sells things.

## Entities

### Product
- id: uuid (primary key)
- price: float (required)

## Endpoints
- GET /products - List products

## Validation
- Product.price: must be greater than 0
"""


class GatedGenerator(CountingGenerator):
    """CountingGenerator whose runs wait until `gate` is set: a generation held open for as long
    as a test needs (to rename its spec, say), whatever the machine's load."""

    name = "gated"

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def generate(self, spec_markdown: str, spec_name: str) -> ApplicationIR:
        self.calls += 1
        await self.gate.wait()
        return await OfflineGenerator.generate(self, spec_markdown, spec_name)


class PaidGenerator(CountingGenerator):
    """CountingGenerator that says it asks a paid model (`uses_llm`), as the Anthropic one does:
    what the dashboard's `r` must ask about before spending."""

    name = "paid"
    model = "paid-model-1"
    uses_llm = True
