"""Generators turn a spec's markdown into an ApplicationIR (tier 3 of the cache).

Which one a run uses is the settings' decision (`Settings.make_generator`).
"""

from __future__ import annotations

from .base import Fingerprinted, GenerationError, Generator, identity_of
from .offline import OfflineGenerator


def generator_label(generator: Generator) -> str:
    return f"{generator.name} ({generator.model})" if generator.model else generator.name


__all__ = ["Fingerprinted", "GenerationError", "Generator", "OfflineGenerator", "generator_label", "identity_of"]
