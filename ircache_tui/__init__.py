"""ircache-tui: a tiered cache for LLM-generated ApplicationIRs, and a dashboard to run it.

    import asyncio
    from ircache_tui import IRCache

    async def main():
        async with IRCache() as cache:
            ir = await cache.get_application_ir(open("spec.md").read(), "spec.md")

The library never imports Textual; the dashboard lives in `ircache_tui.tui`. This is the public
API: `IRCache` is the one door to both tiers (the tiers themselves live in `ircache_tui.cache`),
and every error it raises is an `IRCacheError`.
"""

from .cache import (
    CacheEvent,
    CacheKey,
    ForeignKey,
    InvalidSpecName,
    IRCache,
    IRCacheError,
    Lookup,
    ReadOnlyError,
    ReadOnlyMiss,
    RedisCommandError,
    RedisPermissionError,
    RedisUnavailable,
    cache_key,
)
from .cache.batch import BatchProgress, BatchWarmResult
from .cache.errors import BatchInFlight, BatchUnsupported, ClusterRefused, EmbeddedRedisError, FlushIncomplete, RedisBusy
from .cache.export import ExportDone, ExportRow
from .cache.results import (CacheInfo, DeleteResult, FlushResult, GenerationTotals, HitCount, HitTotals,
                            NotificationsRestored, Savings, WarmResult)
from .cache.server_facts import NodeFacts, ServerFacts
from .ir import SCHEMA_VERSION, ApplicationIR, CorruptEntry, StoredEntry
from .ir.generators import GenerationError, Generator, OfflineGenerator
from .settings import Settings, SettingsError

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "ApplicationIR",
    "BatchInFlight",
    "BatchProgress",
    "BatchUnsupported",
    "BatchWarmResult",
    "CacheEvent",
    "CacheInfo",
    "CacheKey",
    "ClusterRefused",
    "CorruptEntry",
    "DeleteResult",
    "EmbeddedRedisError",
    "ExportDone",
    "ExportRow",
    "FlushIncomplete",
    "FlushResult",
    "ForeignKey",
    "GenerationError",
    "GenerationTotals",
    "Generator",
    "HitCount",
    "HitTotals",
    "IRCache",
    "IRCacheError",
    "InvalidSpecName",
    "Lookup",
    "NodeFacts",
    "NotificationsRestored",
    "OfflineGenerator",
    "ReadOnlyError",
    "ReadOnlyMiss",
    "RedisBusy",
    "RedisCommandError",
    "RedisPermissionError",
    "RedisUnavailable",
    "Savings",
    "ServerFacts",
    "Settings",
    "SettingsError",
    "StoredEntry",
    "WarmResult",
    "cache_key",
    "__version__",
]
