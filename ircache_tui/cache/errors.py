"""Errors the cache layer raises; each carries a one-line message for humans."""

from __future__ import annotations


class IRCacheError(Exception):
    """Base class for errors the cache reports to its caller."""


class RedisUnavailable(IRCacheError):
    """Redis could not be reached (or is known to be down and is being skipped)."""


class EmbeddedRedisError(IRCacheError):
    """The private redis-server could not be found or started."""
