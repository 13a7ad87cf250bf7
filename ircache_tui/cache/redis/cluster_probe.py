"""Whether a URL names a cluster node: asked once per tier, before its first call (tier.py settles
the mode with it), with the least a restricted user may be allowed."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import ClusterCrossSlotError, NoPermissionError

log = logging.getLogger("ircache")


async def is_cluster_node(client: aioredis.Redis, prefix: str) -> bool:
    """INFO cluster → cluster_enabled. A user without +info is asked with EXISTS of two keys of
    different slots under the prefix, which only a cluster node refuses (CROSSSLOT). Raises
    redis-py's errors otherwise (the caller maps them)."""
    try:
        info = await client.info("cluster")
        return str(info.get("cluster_enabled", 0)) == "1"
    except NoPermissionError:
        pass
    a, b = slot_probe_keys(prefix)
    try:
        await client.exists(a, b)
        return False
    except NoPermissionError:
        log.info("Cannot tell whether Redis is a cluster node (INFO and EXISTS refused): taken as a "
                 "single node; set IR_REDIS_CLUSTER=1 for a cluster")
        return False
    except ClusterCrossSlotError:
        return True


def slot_probe_keys(prefix: str) -> tuple[str, str]:
    """Two keys under the prefix (never IR keys: no `_{hash8}` end) that hash to different slots."""
    first = f"{prefix}:cluster-probe:0"
    for i in range(1, 100):
        other = f"{prefix}:cluster-probe:{i}"
        if key_slot(other.encode()) != key_slot(first.encode()):
            return first, other
    raise AssertionError("unreachable: 100 keys in one slot")
