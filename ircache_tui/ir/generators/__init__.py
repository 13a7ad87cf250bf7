"""Generators turn a spec's markdown into an ApplicationIR (tier 3 of the cache)."""

from __future__ import annotations

import os

from .base import GenerationError, Generator
from .offline import OfflineGenerator


def default_generator() -> Generator:
    """Claude when `ANTHROPIC_API_KEY` is set, else the offline generator."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        from .anthropic import AnthropicGenerator  # the SDK is only imported when used

        return AnthropicGenerator()
    return OfflineGenerator()


def generator_label(generator: Generator) -> str:
    return f"{generator.name} ({generator.model})" if generator.model else generator.name


__all__ = ["GenerationError", "Generator", "OfflineGenerator", "default_generator", "generator_label"]
