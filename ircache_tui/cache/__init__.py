"""The cache layer: keys, the Redis and filesystem tiers, the embedded server, IRCache.

Plain asyncio; nothing here imports Textual.
"""

from .embedded import EmbeddedRedis, find_redis_server
from .errors import (
    EmbeddedRedisError,
    ForeignKey,
    IRCacheError,
    ReadOnlyError,
    ReadOnlyMiss,
    RedisCommandError,
    RedisPermissionError,
    RedisUnavailable,
)
from .events import CacheEvent, Counters
from .fs_tier import FileEntry, FilesystemTier
from .ircache import IRCache, Lookup
from .keys import CacheKey, InvalidSpecName, KeySpace, cache_key, spec_hash, spec_name_from_path
from .redis import RedisTier
from .results import CacheInfo, DeleteResult, FlushResult, GenerationTotals, HitCount, HitTotals, WarmResult

__all__ = [
    "CacheEvent",
    "CacheInfo",
    "CacheKey",
    "DeleteResult",
    "Counters",
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "FileEntry",
    "FilesystemTier",
    "FlushResult",
    "ForeignKey",
    "GenerationTotals",
    "HitCount",
    "HitTotals",
    "IRCache",
    "IRCacheError",
    "InvalidSpecName",
    "KeySpace",
    "Lookup",
    "ReadOnlyError",
    "ReadOnlyMiss",
    "RedisCommandError",
    "RedisPermissionError",
    "RedisTier",
    "RedisUnavailable",
    "WarmResult",
    "cache_key",
    "find_redis_server",
    "spec_hash",
    "spec_name_from_path",
]
