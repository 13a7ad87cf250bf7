"""ircache-tui: a tiered cache for LLM-generated ApplicationIRs, and a dashboard to run it.

    import asyncio
    from ircache_tui import IRCache

    async def main():
        async with IRCache() as cache:
            ir = await cache.get_application_ir(open("spec.md").read(), "spec.md")

The library never imports Textual; the dashboard lives in `ircache_tui.tui`.
"""

from .cache import (
    CacheEvent,
    EmbeddedRedis,
    FilesystemTier,
    ForeignKey,
    InvalidSpecName,
    IRCache,
    IRCacheError,
    Lookup,
    ReadOnlyError,
    ReadOnlyMiss,
    RedisCommandError,
    RedisPermissionError,
    RedisTier,
    RedisUnavailable,
    cache_key,
)
from .ir import SCHEMA_VERSION, ApplicationIR, CorruptEntry, StoredEntry
from .ir.generators import GenerationError, Generator, OfflineGenerator
from .settings import Settings, SettingsError

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "ApplicationIR",
    "CacheEvent",
    "CorruptEntry",
    "EmbeddedRedis",
    "FilesystemTier",
    "ForeignKey",
    "GenerationError",
    "Generator",
    "IRCache",
    "IRCacheError",
    "InvalidSpecName",
    "Lookup",
    "OfflineGenerator",
    "ReadOnlyError",
    "ReadOnlyMiss",
    "RedisCommandError",
    "RedisPermissionError",
    "RedisTier",
    "RedisUnavailable",
    "Settings",
    "SettingsError",
    "StoredEntry",
    "cache_key",
    "__version__",
]
