"""The root of every error the package raises on purpose.

A caller can catch `IRCacheError` and know it has every failure the package reports in one line
(settings, spec names, generation, corrupt entries, Redis, the filesystem tier, the CLI), and
nothing else: a bug still surfaces as itself. The errors live beside what raises them; only
the root is here, below every layer.
"""

from __future__ import annotations


class IRCacheError(Exception):
    """Base class for every error the package reports to its caller; its message is one line."""
