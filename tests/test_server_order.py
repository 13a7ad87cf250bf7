"""Ties are broken by name, so every server shows the same order (issue 22).

SCAN returns keys in an order of the server's own (its hash table, its version), and
Lua's `table.sort` is not stable: "largest first" over keys of equal size, or the keys
pane sorted by a column where rows tie, must not depend on either. Real servers; run
with IRCACHE_REDIS_SERVER to see it on each.
"""

from __future__ import annotations

import pytest
import redis

from ircache_tui.cache.redis import sizes
from ircache_tui.cache.browse import KeyRow
from ircache_tui.cache.keys import KeySpace
from ircache_tui.cache.redis import RedisTier
from ircache_tui.tui.widgets.keys import SORT_KEYS, SORTS
from tests.support.foreign import entry_value

pytestmark = pytest.mark.server

KEYSPACE = KeySpace("ir_cache")
TIED = 200  # more than one top step keeps, all on one SCAN page (COUNT 500)


@pytest.fixture
async def tier(redis_url):
    t = RedisTier(redis_url, KEYSPACE, ttl=3600)
    yield t
    await t.aclose()


def plant_ties(client: redis.Redis) -> tuple[int, list[str]]:
    """TIED entries of one size under names of one length, and three larger ones; returns `n`
    and the cache keys of the `n` largest by MEMORY USAGE, ties by name. The allocator may put
    some of the "same" entries a size step apart (Valkey 8.1 splits them 400/384 bytes), so the
    ranking is computed from what the server says they take, and `n` is chosen to cut the
    largest tie in the middle: a ranking that broke ties another way would differ."""
    pipe = client.pipeline(transaction=False)
    tied = [f"spec-{i:04d}_{i * 7919 % 16**8:08x}" for i in range(TIED)]
    for key in tied:
        pipe.set(KEYSPACE.redis_key(key), entry_value(300))
    large = [f"large-{i:03d}_0000000{i}" for i in range(3)]
    for i, key in enumerate(large):
        pipe.set(KEYSPACE.redis_key(key), entry_value(5000 * (3 - i)))
    pipe.execute()
    size = {k: client.memory_usage(KEYSPACE.redis_key(k), samples=0) for k in tied + large}
    ranked = sorted(size, key=lambda k: (-size[k], k))
    assert ranked[:3] == large
    sizes = [size[k] for k in ranked]
    tie = max(set(sizes[3:]), key=sizes.count)
    first, count = sizes.index(tie), sizes.count(tie)
    assert count >= 20, f"most of the {TIED} entries should take one size: {sorted(set(sizes))}"
    n = first + count // 2
    assert size[ranked[n - 1]] == size[ranked[n]], "the cut should fall inside a tie"
    return n, ranked[:n]


async def test_largest_first_breaks_ties_by_name(tier, sync_redis):
    n, expected = plant_ties(sync_redis)
    top = await tier.top_ir_keys("memory", n)
    assert [p.cache_key for p in top] == expected


@pytest.mark.parametrize("scripted", [True, False], ids=["script", "client-side"])
async def test_scan_top_breaks_ties_by_name_either_way(tier, sync_redis, scripted):
    n, expected = plant_ties(sync_redis)
    ranked, ran = await sizes.scan_top(tier.client, KEYSPACE.select(), "memory", n, scripted=scripted)
    assert ran is scripted
    assert [KEYSPACE.cache_key_of(key).cache_key for key, _ in ranked] == expected


@pytest.mark.parametrize("scripted", [True, False], ids=["script", "client-side"])
async def test_expiring_first_breaks_ties_by_name(tier, sync_redis, scripted):
    """Keys given one absolute expiry (PEXPIREAT) tie on PTTL when read at one moment: the ranking
    must then follow their names, not SCAN's order (between steps the PTTLs may differ by the
    milliseconds that passed, which the ranking follows first)."""
    pipe = sync_redis.pipeline(transaction=False)
    tied = [f"spec-{i:04d}_{i * 7919 % 16**8:08x}" for i in range(TIED)]
    at = (int(sync_redis.time()[0]) + 3600) * 1000
    for key in tied:
        pipe.set(KEYSPACE.redis_key(key), entry_value(300))
        pipe.pexpireat(KEYSPACE.redis_key(key), at)
    pipe.execute()
    ranked, _ = await sizes.scan_top(tier.client, KEYSPACE.select(), "ttl", 10, scripted=scripted)
    got = [(value, KEYSPACE.cache_key_of(key).cache_key) for key, value in ranked]
    assert got == sorted(got) and len(got) == 10
    assert len({value for value, _ in got}) < 10, "no two PTTLs tied: nothing was tested"


def test_merge_top_breaks_ties_by_name():
    parts = [[(b"ir_cache:b_00000001", 10), (b"ir_cache:d_00000001", 5)],
             [(b"ir_cache:a_00000001", 10), (b"ir_cache:c_00000001", 5)]]
    assert [k for k, _ in sizes.merge_top(parts, "memory", 3)] == [
        b"ir_cache:a_00000001", b"ir_cache:b_00000001", b"ir_cache:c_00000001"]
    assert [k for k, _ in sizes.merge_top(parts, "ttl", 3)] == [
        b"ir_cache:c_00000001", b"ir_cache:d_00000001", b"ir_cache:a_00000001"]


def _row(spec: str, hash8: str) -> KeyRow:
    return KeyRow(cache_key=f"{spec}_{hash8}", spec_name=spec, hash8=hash8, ttl=60, memory=100,
                  generated_at="2026-01-01T00:00:00+00:00", generator="offline", fetched_at=0.0,
                  cost_usd=0.01, hits=3, last_hit=1.0)


@pytest.mark.parametrize("column", SORTS)
def test_keys_pane_sorts_break_ties_by_name(column):
    """Rows that tie on the column (two entries of one spec, equal in everything shown) come in the
    order of their names whatever order the page brought them in."""
    rows = [_row("petstore", "ffff0000"), _row("petstore", "0000ffff"), _row("orders", "aaaa0000")]
    for arrived in (rows, rows[::-1]):
        ordered = sorted(arrived, key=SORT_KEYS[column])
        assert [r.cache_key for r in ordered] == ["orders_aaaa0000", "petstore_0000ffff", "petstore_ffff0000"]
