"""Values under our key names: entries (by their first bytes) and other tools' keys that are not.

An entry is a key of the grammar `{prefix}:{spec}_{hash8}` whose value begins as the envelope does
(envelope.ENTRY_HEAD); anything else under those names is another tool's, which the cache must
never count, flush, prune, expire or overwrite.
"""

from __future__ import annotations

import redis
from redis.cluster import RedisCluster

from ircache_tui.ir.envelope import ENTRY_HEAD


def entry_value(size: int = 0) -> bytes:
    """A value the cache takes for one of its entries (a corrupt one beyond its first bytes)."""
    return ENTRY_HEAD + b"1" + b" " * size


# another tool's strings under our names: JSON of another shape, text, a near miss of the head, binary
FOREIGN_STRINGS = [b'{"user": 1}', b"plain text", b'{"schema_versioN":1}', b" " + ENTRY_HEAD + b"1}",
                   b'{ "schema_version": 1}', b"\x00\xff\x1b[2J", b"x" * 5000]


def plant_foreign(client: redis.Redis, n_strings: int, n_hashes: int, *, prefix: str = "ir_cache",
                  spec: str = "teamb") -> list[bytes]:
    """`n_strings` strings and `n_hashes` hashes named like entries (`{prefix}:{spec}-{i}_{8 hex}`),
    none of them an entry; their keys."""
    keys = []
    pipe = client.pipeline(transaction=False)
    for i in range(n_strings):
        key = f"{prefix}:{spec}-s{i}_{i:08x}".encode()
        pipe.set(key, FOREIGN_STRINGS[i % len(FOREIGN_STRINGS)])
        keys.append(key)
    for i in range(n_hashes):
        key = f"{prefix}:{spec}-h{i}_{i:08x}".encode()
        pipe.hset(key, mapping={"owner": "team-b", "n": i})
        keys.append(key)
    pipe.execute()
    return keys


def fill_cluster(url: str, ir: list[bytes], foreign: list[bytes]) -> None:
    """Through the cluster client at `url`: each of `ir` an entry (with a TTL), each of `foreign`
    another tool's string."""
    with RedisCluster.from_url(url) as client:
        pipe = client.pipeline(transaction=False)
        for key in ir:
            pipe.set(key, entry_value(), ex=3600)
        for key in foreign:
            pipe.set(key, b"not ours")
        pipe.execute()
