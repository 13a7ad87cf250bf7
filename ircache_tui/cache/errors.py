"""Errors the cache layer raises; each carries a one-line message for humans.

Everything above `cache/` catches these, never redis-py's exceptions: the
Redis tier turns every Redis error into one of them at the door.
"""

from __future__ import annotations

from ..errors import IRCacheError
from ..settings import SettingsError

__all__ = ["IRCacheError"]  # (the package's root, re-exported: the cache's errors derive from it)


class RedisUnavailable(IRCacheError):
    """Redis could not be reached (or is known to be down and is being skipped)."""


class RedisBusy(RedisUnavailable):
    """Every connection this process may open to Redis is in use, and none came free in time: the
    caller goes on as if Redis were down (the filesystem answers), but Redis is not marked down."""


class ClusterRefused(RedisUnavailable, SettingsError):
    """IR_REDIS_CLUSTER=0 (--no-cluster) and the Redis at REDIS_URL is a cluster node.

    Walking one node of a cluster would report a part of the cache as the
    whole (a count of one node's keys, a flush that misses two thirds), so
    the cache refuses it. Found at open, it is a usage error (the CLI exits
    2); found later (Redis was down at open), Redis stays unusable with this
    reason, as if it were down: nothing partial is ever reported.
    """


class RedisCommandError(IRCacheError):
    """Redis answered a command with an error (a wrong type, a bad argument, ...)."""


class RedisPermissionError(RedisCommandError):
    """The ACL user may not run a command the operation needs; says which rule to add."""

    def __init__(self, command: str, detail: str = "") -> None:
        self.command = command.lower()
        self.rule = f"+{self.command.replace(' ', '|')}"
        super().__init__(
            f"Redis refused {self.command.upper()} for this user (NOPERM): add {self.rule} to its ACL"
            + (f" ({detail})" if detail else "")
        )


class RedisKeyPermissionError(RedisPermissionError):
    """A key the operation touches is outside the ACL user's key patterns; says which pattern to add."""

    def __init__(self, pattern: str) -> None:
        self.command = "key access"
        self.rule = pattern
        RedisCommandError.__init__(
            self, f"Redis refused access to a key for this user (NOPERM): add {pattern} to its ACL key patterns"
        )


class ForeignKey(IRCacheError):
    """A key of our name (`{prefix}:{spec}_{hash8}`) that holds something other than an entry: another
    type, or a string that does not begin as our envelope does. Another tool's: never read as an
    entry, overwritten, expired or deleted."""

    def __init__(self, redis_key: str, what: str) -> None:
        self.redis_key = redis_key
        self.what = what
        super().__init__(f"{redis_key} holds {what}, not an IR entry (another tool's key?): left as it is")


class FlushIncomplete(IRCacheError):
    """A flush (or delete) stopped partway; `done` says what each tier lost before it did."""

    _NOUNS = {"redis": ("Redis key", "Redis keys"), "filesystem": ("file", "files")}

    def __init__(self, done: dict[str, int], reason: str) -> None:
        self.done = dict(done)
        self.reason = reason
        gone = ", ".join(
            f"{n:,} {self._NOUNS.get(tier, (tier, tier))[n != 1]}" for tier, n in self.done.items()
        ) or "nothing"
        super().__init__(f"{reason}; deleted before it stopped: {gone}")


class ReadOnlyError(IRCacheError):
    """A write was asked of a read-only cache (IRCache(read_only=True), --read-only, IR_READ_ONLY=1)."""


class ReadOnlyMiss(ReadOnlyError):
    """A read-only cache has no entry for the spec and may not generate one."""

    def __init__(self, spec_name: str, cache_key: str) -> None:
        self.spec_name = spec_name
        self.cache_key = cache_key
        super().__init__(
            f"IR for {spec_name} ({cache_key}) is not cached, and a read-only cache does not generate"
        )


class EmbeddedRedisError(IRCacheError):
    """The private redis-server could not be found or started."""


class BatchInFlight(IRCacheError):
    """A spec is being generated in a Message Batch another process submitted (`get --no-wait`)."""


class BatchUnsupported(IRCacheError):
    """The generator has no batch interface (the offline generator): `warm --batch` cannot batch."""
