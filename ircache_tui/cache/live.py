"""Live key changes: keyspace notifications when the server allows them, polling otherwise.

The embedded server starts without notifications (a pipeline would pay for
events nobody hears); the dashboard turns them on there. On an external
server we use them when `notify-keyspace-events` already covers what we
need, or turn them on when allowed (never in read-only mode); otherwise the
caller polls. A server that restarts forgets a CONFIG SET, so the dashboard
asks again each time Redis comes back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from .errors import RedisUnavailable
from .keys import ParsedKey, glob_escape
from .redis_tier import RedisTier

log = logging.getLogger("ircache")

# K keyspace channel; g generic (del, expire, rename); $ string (set); x expired
_NEEDED = "Kg$x"


@dataclass(frozen=True, slots=True)
class KeyChange:
    key: ParsedKey
    event: str  # "set", "del", "expired", "expire", ...

    @property
    def gone(self) -> bool:
        return self.event in ("del", "expired", "evicted", "rename_from", "move_from")


def _covers(flags: str) -> bool:
    if "K" not in flags:
        return False
    if "A" in flags:
        return True
    return all(c in flags for c in "g$x")


async def enable_notifications(redis: RedisTier, *, may_configure: bool) -> bool:
    """True if keyspace notifications for our keys are (now) on."""
    try:
        flags = (await redis._run(lambda: redis.client.config_get("notify-keyspace-events"))).get(
            "notify-keyspace-events", ""
        )
        if isinstance(flags, bytes):
            flags = flags.decode()
        if _covers(flags):
            return True
        if not may_configure:
            return False
        wanted = "".join(sorted(set(flags) | set(_NEEDED)))
        await redis._run(lambda: redis.client.config_set("notify-keyspace-events", wanted))
        log.info("Enabled keyspace notifications (notify-keyspace-events %s)", wanted)
        return True
    except (RedisError, RedisUnavailable) as exc:
        log.info("Keyspace notifications unavailable (%s); polling instead", str(exc).splitlines()[0])
        return False


async def key_changes(redis: RedisTier, on_subscribed: Callable[[], None] | None = None) -> AsyncIterator[KeyChange]:
    """IR key changes as they happen. Ends (raises) when the connection drops.

    `on_subscribed` runs once the subscription is in place: a caller that
    reloads its view then misses nothing that changed before it listened.
    """
    db = redis.client.connection_pool.connection_kwargs.get("db", 0)
    channel_prefix = f"__keyspace@{db}__:"
    pubsub = redis.client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.psubscribe(f"{glob_escape(channel_prefix)}{glob_escape(redis.keys.prefix)}:*")
        if on_subscribed is not None:
            on_subscribed()
        async for message in pubsub.listen():
            if message.get("type") != "pmessage":
                continue
            channel = message["channel"]
            if isinstance(channel, bytes):
                channel = channel.decode("utf-8", errors="replace")
            parsed = redis.keys.cache_key_of(channel[len(channel_prefix):])
            if parsed is None:
                continue
            event = message["data"]
            yield KeyChange(parsed, event.decode() if isinstance(event, bytes) else str(event))
    finally:
        await pubsub.aclose()
