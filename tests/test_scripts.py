"""The server-side stats step and the flush's quick filter must take exactly the keys KeySpace.belongs accepts.

Hostile keys are stored in a real redis-server and sized by the real script;
its count, bytes and spec names must be those of the keys `belongs` accepts.
Flush and stats then run end to end, and once more under an ACL user that may
not use scripts (the fallback).
"""

from __future__ import annotations

import random

import pytest
import redis

from ircache_tui.cache.redis import sizes
from ircache_tui.cache.keys import KeySpace
from ircache_tui.cache.redis import RedisTier
from tests.support.foreign import FOREIGN_STRINGS, entry_value

pytestmark = pytest.mark.server  # the server-side scripts

HEX = "0a1b2c3d"

HOSTILE = [
    f"ir_cache:ecommerce_{HEX}",
    f"ir_cache:ecommerce_v2_{HEX}",
    f"ir_cache:ecommerce-api_{HEX}",
    f"ir_cache:ecommerce_{HEX}:lock",
    f"ir_cache:ecommerce_{HEX.upper()}",
    f"ir_cache:ecommerce_{HEX}\n",
    f"ir_cache:ecommerce_{HEX}x",
    f"ir_cache:ecommerce_{HEX[:7]}",
    f"ir_cache:_{HEX}",
    f"ir_cache:._{HEX}",
    f"ir_cache:.._{HEX}",
    f"ir_cache:..._{HEX}",
    f"ir_cache:a/b_{HEX}",
    f"ir_cache:a\\b_{HEX}",
    f"ir_cache:a\tb_{HEX}",
    f"ir_cache:a\x00b_{HEX}",
    f"ir_cache:a\x7fb_{HEX}",
    f"ir_cache:{'x' * 200}_{HEX}",
    f"ir_cache:{'x' * 201}_{HEX}",
    f"ir_cache:{'é' * 100}_{HEX}",  # 200 bytes
    f"ir_cache:{'é' * 101}_{HEX}",  # 202 bytes
    f"ir_cache:naïve-spec_{HEX}",
    f"ir_cache:日本語_{HEX}",
    f"ir_cache:emoji-🙂_{HEX}",
    f"ir_cache:eco*_{HEX}",
    f"ir_cache:eco[1]_{HEX}",
    f"ir_cache:spec_{HEX}_{HEX}",
    f"ir_cacheX:ecommerce_{HEX}",
    f"ir_cache_ecommerce_{HEX}",
    f"IR_CACHE:ecommerce_{HEX}",
    f"other:ir_cache:ecommerce_{HEX}",
    f"ecommerce_{HEX}",
    "ir_cache:",
    "ir_cache:ecommerce",
    # hidden, invisible and reordering names (fmt.INVISIBLE): never ours
    f"ir_cache:.hidden_{HEX}",
    f"ir_cache:a.b_{HEX}",
    f"ir_cache:evil\u202egpj_{HEX}",
    f"ir_cache:zero\u200bwidth_{HEX}",
    f"ir_cache:bom\ufeff_{HEX}",
    f"ir_cache:c1\x85_{HEX}",
    f"ir_cache:soft\xadhyphen_{HEX}",
    f"ir_cache:iso\u2066late_{HEX}",
    f"ir_cache:tag\U000e0041_{HEX}",
    f"ir_cache:alm\u061c_{HEX}",
    f"ir_cache:mvs\u180e_{HEX}",
    f"ir_cache:fine\u2010dash_{HEX}",  # a real hyphen: visible, so ours
    f"ir_cache:nbsp\u00a0space_{HEX}",  # a visible space: ours
]
# Not UTF-8 at all, or overlong, or a surrogate, or past U+10FFFF: Python's decoder refuses each.
INVALID_UTF8 = [b"\xff", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc3", b"a\xe2\x82"]


def hostile_keys() -> list[bytes]:
    keys = [k.encode("utf-8") for k in HOSTILE]
    keys += [b"ir_cache:" + bad + b"_" + HEX.encode() for bad in INVALID_UTF8]
    return keys


def random_keys(n: int, seed: int = 7) -> list[bytes]:
    """Keys glued from fragments that sit on the edges of the rule."""
    rng = random.Random(seed)
    fragments = [b"ir_cache:", b"ir_cache", b":", b"_", b"spec", b".", b"..", b"/", b"\\", b"\n", b"\x00",
                 b"\x1f", b"\x7f", b"\xc3\xa9", b"\xe2\x80\xae", b"\xe2\x80\x8b", b"\xc2\x85", b"\xff", b"\xe2\x82", b"\xac", HEX.encode(), b"0A1B2C3D", b"lock",
                 b"x" * 60, b"*", b"["]
    keys = []
    for _ in range(n):
        body = b"".join(rng.choice(fragments) for _ in range(rng.randint(0, 6)))
        tail = rng.choice([b"_" + HEX.encode(), b"_" + HEX.encode()[:7], b"", b"_" + HEX.encode() + b":lock"])
        head = rng.choice([b"ir_cache:", b"ir_cache:", b"ir_cache:", b"ir_cacheX:", b""])
        keys.append(head + body + tail)
    return keys


@pytest.mark.parametrize("spec_name", [None, "ecommerce", "naïve-spec", "eco*"])
def test_quick_python_filter_agrees_with_belongs(spec_name):
    """The flush filters pages with a quick C-level regex first; it must never take more than belongs."""
    keyspace = KeySpace("ir_cache")
    selection = keyspace.select(spec_name)
    keys = hostile_keys() + random_keys(4000)
    expected = sorted(k for k in keys if keyspace.belongs(k, spec_name))
    assert sorted(selection.keep_many(keys)) == expected
    assert all(keyspace.belongs(k, spec_name) for k in keys if selection.quick(k))
    if spec_name is None:
        assert any(not selection.quick(k) for k in expected)  # the slow path is exercised too


async def sizes_match_belongs(url: str, client: redis.Redis, keys: list[bytes], spec_name: str | None,
                              prefix: str = "ir_cache") -> set[bytes]:
    """Store `keys`, size them with the stats script, and require exactly the keys `belongs` accepts."""
    client.flushall()
    pipe = client.pipeline(transaction=False)
    for i, key in enumerate(keys):
        pipe.set(key, entry_value(i % 300))
    pipe.execute()
    keyspace = KeySpace(prefix)
    ours = {k for k in keys if keyspace.belongs(k, spec_name)}
    selection = keyspace.select(spec_name)
    tier = RedisTier(url, keyspace, ttl=3600)
    try:
        found = await sizes.scan_sizes(tier.client, selection, count=50)  # small pages: many steps
    finally:
        await tier.aclose()
    assert found.keys == len(ours)
    assert found.specs == {selection.spec_of(k) for k in ours}
    assert found.bytes == sum(client.memory_usage(k, samples=0) for k in ours)
    return ours


@pytest.mark.parametrize("spec_name", [None, "ecommerce", "naïve-spec", "eco*"])
async def test_stats_script_agrees_with_belongs_on_hostile_keys(redis_url, sync_redis, spec_name):
    ours = await sizes_match_belongs(redis_url, sync_redis, hostile_keys(), spec_name)
    assert ours, "the corpus must hold keys that are ours"


async def test_stats_script_agrees_with_belongs_on_random_keys(redis_url, sync_redis):
    keys = list(dict.fromkeys(random_keys(4000)))
    ours = await sizes_match_belongs(redis_url, sync_redis, keys, None)
    assert 50 < len(ours) < len(keys) - 50  # both answers are well represented


async def test_stats_script_escapes_a_prefix_with_glob_characters(redis_url, sync_redis):
    keys = [f"team[a]*:spec_{HEX}".encode(), f"teama:spec_{HEX}".encode(), f"team[a]x:spec_{HEX}".encode(),
            f"ir_cache:spec_{HEX}".encode()]
    ours = await sizes_match_belongs(redis_url, sync_redis, keys, None, prefix="team[a]*")
    assert ours == {keys[0]}


def populate(client: redis.Redis) -> tuple[list[bytes], list[bytes]]:
    keyspace = KeySpace("ir_cache")
    keys = list(dict.fromkeys(hostile_keys() + random_keys(1500, seed=11)))
    ours = [k for k in keys if keyspace.belongs(k)]
    pipe = client.pipeline(transaction=False)
    for i, key in enumerate(keys):
        pipe.set(key, entry_value(10 + i % 50))
    for i in range(1200):  # enough for several SCAN pages
        key = f"ir_cache:bulk{i % 13}_{i:08x}".encode()
        keys.append(key)
        if i % 4:
            ours.append(key)
            pipe.set(key, entry_value(i % 7))
        elif i % 8:  # another tool's string under our name: never an entry, never deleted
            pipe.set(key, FOREIGN_STRINGS[i % len(FOREIGN_STRINGS)])
        else:  # another tool's hash under our name
            pipe.hset(key, "n", i)
    pipe.execute()
    return ours, [k for k in keys if k not in set(ours)]


async def flush_and_stats(url: str, sync_redis: redis.Redis) -> None:
    """Stats count exactly our keys and their sizes; a flush deletes exactly them."""
    ours, others = populate(sync_redis)
    expected_bytes = sum(sync_redis.memory_usage(k, samples=0) for k in ours)
    keyspace = KeySpace("ir_cache")
    tier = RedisTier(url, keyspace, ttl=3600)
    try:
        stats = await tier.get_ir_cache_stats()
        deleted = await tier.clear_ir_cache()
    finally:
        await tier.aclose()
    assert stats["total_keys"] == len(ours)
    assert stats["foreign_keys"] == 300  # the bulk keys of our name that hold another tool's value
    assert stats["total_size_bytes"] == expected_bytes
    assert set(stats["specs"]) == {keyspace.cache_key_of(k).spec_name for k in ours}
    assert deleted == len(ours)
    assert set(sync_redis.keys("*")) == set(others)


async def test_flush_and_stats_take_exactly_our_keys(redis_url, sync_redis, ircache_logs):
    sync_redis.config_resetstat()
    await flush_and_stats(redis_url, sync_redis)
    stats = sync_redis.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] >= 1 and "refused" not in ircache_logs.text


async def test_without_scripts_the_same_keys_go(redis_url, sync_redis, ircache_logs):
    """A least-privilege user that may not run scripts: flush and stats fall back, same result."""
    sync_redis.acl_setuser("noscripts", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                           commands=["+@all", "-@scripting"], reset=True)
    try:
        url = "unix://noscripts:pw@" + redis_url.removeprefix("unix://")
        await flush_and_stats(url, sync_redis)
        assert "Redis refused the stats script" in ircache_logs.text
    finally:
        sync_redis.acl_deluser("noscripts")


# Values under a name of ours, and whether each is an entry: the envelope's first bytes, or a
# value cut short inside them (a torn write of ours), is; anything else is another tool's.
VALUES = [
    (entry_value(), True),
    (entry_value(3000), True),
    (b'{"schema_version":', True),
    (b'{"schema_ver', True),  # cut short inside the head
    (b"{", True),
    (b'{"schema_version"', True),
    (b'{"user": 1}', False),
    (b'{ "schema_version": 1}', False),  # not how the envelope is written
    (b' {"schema_version":1}', False),
    (b"\x1b]52;c;aGFja2VkCg==\x07", False),
    (b"plain", False),
    (b"x" * 100, False),
]


@pytest.mark.parametrize("scripts_allowed", [True, False], ids=["scripts", "no-scripts"])
async def test_entries_are_told_from_other_tools_values_server_side(redis_url, sync_redis, scripts_allowed):
    """Stats, flush, the top view and the name-based walks take a key for an entry by its value
    too: another tool's string or hash under our name is counted apart and survives. Without
    script rights the same keys are told apart client-side (GETRANGE, then UNLINK)."""
    if not scripts_allowed:
        sync_redis.acl_setuser("noscripts2", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"],
                               commands=["+@all", "-@scripting"], reset=True)
        redis_url = "unix://noscripts2:pw@" + redis_url.removeprefix("unix://")
    keyspace = KeySpace("ir_cache")
    entries, foreign = [], []
    pipe = sync_redis.pipeline(transaction=False)
    for i, (value, is_entry) in enumerate(VALUES):
        key = f"ir_cache:spec{i}_{i:08x}".encode()
        pipe.set(key, value)
        (entries if is_entry else foreign).append(key)
    for i in range(3):  # other types under our names
        key = f"ir_cache:typed{i}_{i:08x}".encode()
        (pipe.hset, pipe.rpush, pipe.sadd)[i](key, *(("a", 1) if i == 0 else ("a",)))
        foreign.append(key)
    pipe.set(b"ir_cache:empty_00000000", b"")  # an empty string: nobody's entry, not deleted
    pipe.execute()
    tier = RedisTier(redis_url, keyspace, ttl=3600)
    try:
        stats = await tier.get_ir_cache_stats()
        assert (stats["total_keys"], stats["foreign_keys"]) == (len(entries), len(foreign))
        assert await tier.count_entries() == (len(entries), len(foreign))
        top = await tier.top_ir_keys("memory", 100)
        assert {f"ir_cache:{p.cache_key}".encode() for p in top} == set(entries)
        walked = [p async for page in tier.scan_ir_keys() for p in page]
        assert {f"ir_cache:{p.cache_key}".encode() for p in walked} == set(entries)
        kept = []
        assert await tier.clear_ir_cache(on_kept=kept.append) == len(entries)
        assert sum(kept) == len(foreign)
    finally:
        await tier.aclose()
        sync_redis.acl_deluser("noscripts2")
    assert set(sync_redis.keys("*")) == {*foreign, b"ir_cache:empty_00000000"}
