"""Live key changes: keyspace notifications when the server allows them, polling otherwise.

The embedded server starts without notifications (a pipeline would pay for
events nobody hears); the dashboard turns them on there. On an external
server we use them when `notify-keyspace-events` already covers what we
need, or turn them on when allowed (never in read-only mode); otherwise the
caller polls. A server that restarts forgets a CONFIG SET, so the dashboard
asks again each time Redis comes back. The Redis side is RedisTier's
(`enable_notifications`, `keyspace_events`); this module says what an event
means for an IR key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .keys import ParsedKey

if TYPE_CHECKING:
    from .redis_tier import RedisTier


@dataclass(frozen=True, slots=True)
class KeyChange:
    key: ParsedKey
    event: str  # "set", "del", "expired", "expire", ...

    @property
    def gone(self) -> bool:
        return self.event in ("del", "expired", "evicted", "rename_from", "move_from")


async def key_changes(redis: "RedisTier", on_subscribed: Callable[[], None] | None = None) -> AsyncIterator[KeyChange]:
    """IR key changes as they happen. Ends (raises) when the connection drops.

    `on_subscribed` runs once the subscription is in place: a caller that
    reloads its view then misses nothing that changed before it listened.
    """
    async for redis_key, event in redis.keyspace_events(on_subscribed):
        parsed = redis.keys.cache_key_of(redis_key)
        if parsed is not None:
            yield KeyChange(parsed, event)
