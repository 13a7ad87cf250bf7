"""Reusing decoded entries: only ever for the very bytes they were decoded from."""

import json
from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from ircache_tui import IRCache, cache_key
from ircache_tui.cache.decoded import DecodedEntries
from ircache_tui.cache.keys import spec_hash
from ircache_tui.ir import ApplicationIR, CorruptEntry, StoredEntry
from tests.support.generators import SPEC, CountingGenerator

KEY = cache_key(SPEC, "shop.md")
WHEN = datetime(2026, 11, 26, tzinfo=timezone.utc)


def stored(name: str, text: str = SPEC) -> bytes:
    ir = ApplicationIR(name=name, domain_model={"entities": [{"name": "Product", "attributes": [{"name": "id"}]}]})
    entry = StoredEntry.create(
        ir, spec_name="shop", spec_hash=spec_hash(text), spec_path="shop.md", generator="x", generated_at=WHEN
    )
    return entry.to_json_bytes()


def test_same_bytes_give_the_same_entry_other_bytes_a_fresh_one():
    memo = DecodedEntries()
    first = memo.decode(KEY, stored("A"))
    again = memo.decode(KEY, bytearray(stored("A")))  # equal bytes, another object
    assert again is first and (memo.decoded, memo.reused) == (1, 1)
    other = memo.decode(KEY, stored("B"))
    assert other.application_ir.name == "B" and (memo.decoded, memo.reused) == (2, 1)
    assert len(memo) == 1 and memo.size_bytes == len(stored("B"))


def test_corrupt_bytes_raise_and_drop_the_old_decode():
    memo = DecodedEntries()
    memo.decode(KEY, stored("A"))
    with pytest.raises(CorruptEntry, match="not JSON"):
        memo.decode(KEY, b"{torn")
    assert len(memo) == 0 and memo.size_bytes == 0
    # The key's hash is still checked on a first decode, and a failure leaves nothing behind.
    with pytest.raises(CorruptEntry, match="does not match"):
        memo.decode("shop_00000000", stored("A"))
    assert len(memo) == 0


def test_a_decode_is_never_shared_between_keys():
    memo = DecodedEntries()
    raw = stored("A")
    other_key = "copy_" + KEY.rsplit("_", 1)[1]
    assert memo.decode(KEY, raw) is not memo.decode(other_key, raw)


def test_bounded_by_entries_and_bytes_least_recently_used_first():
    raws = {f"s{i}_{spec_hash(str(i))[:8]}": stored(f"N{i}", str(i)) for i in range(4)}
    keys = list(raws)
    memo = DecodedEntries(max_entries=2)
    for key in keys[:2]:
        memo.decode(key, raws[key])
    memo.decode(keys[0], raws[keys[0]])  # keys[0] is now the most recent
    memo.decode(keys[2], raws[keys[2]])
    assert memo.decode(keys[0], raws[keys[0]]) is not None and memo.reused == 2
    decoded = memo.decoded
    memo.decode(keys[1], raws[keys[1]])  # evicted: decoded again
    assert memo.decoded == decoded + 1 and len(memo) == 2

    one = len(raws[keys[0]])
    by_bytes = DecodedEntries(max_bytes=one * 2 + one // 2)
    for key in keys:
        by_bytes.decode(key, raws[key])
    assert len(by_bytes) == 2 and by_bytes.size_bytes <= by_bytes.max_bytes

    off = DecodedEntries(max_entries=0)
    assert off.decode(keys[0], raws[keys[0]]) is not off.decode(keys[0], raws[keys[0]])
    assert len(off) == 0 and off.reused == 0
    with pytest.raises(ValueError):
        DecodedEntries(max_entries=-1)


def test_shared_entries_cannot_be_changed():
    entry = DecodedEntries().decode(KEY, stored("A"))
    ir = entry.application_ir
    with pytest.raises(ValidationError, match="frozen"):
        ir.name = "changed"
    with pytest.raises(ValidationError, match="frozen"):
        ir.domain_model.entities[0].attributes[0].is_primary_key = True
    with pytest.raises(AttributeError):
        ir.domain_model.entities.append(ir.domain_model.entities[0])  # tuples, not lists
    with pytest.raises(ValidationError, match="frozen"):
        entry.spec_name = "other"
    changed = ir.model_copy(update={"name": "changed"})  # how a caller derives its own version
    assert changed.name == "changed" and ir.name == "A"


@pytest.fixture
async def cache(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as c:
        yield c


async def test_repeated_hits_reuse_the_decode_until_the_stored_bytes_change(cache, sync_redis):
    await cache.get_application_ir(SPEC, "shop.md")
    first = await cache.lookup(SPEC, "shop.md")
    second = await cache.lookup(SPEC, "shop.md")
    assert (first.tier, second.tier) == ("redis", "redis") and second.entry is first.entry
    assert cache.decoded.reused == 1

    # Another writer replaces the entry: the next hit serves the new bytes, never the old decode.
    data = json.loads(sync_redis.get(f"ir_cache:{KEY}"))
    data["application_ir"]["name"] = "Rewritten elsewhere"
    sync_redis.set(f"ir_cache:{KEY}", json.dumps(data, separators=(",", ":")))  # as an entry is written
    third = await cache.lookup(SPEC, "shop.md")
    assert third.tier == "redis" and third.ir.name == "Rewritten elsewhere"

    # A corrupted value after reused hits is still a Redis miss: deleted, then the file answers.
    sync_redis.set(f"ir_cache:{KEY}", b'{"schema_version":1,\x00garbage')
    fourth = await cache.lookup(SPEC, "shop.md")
    assert fourth.tier == "filesystem" and fourth.ir.name == "Shop API"
    assert json.loads(sync_redis.get(f"ir_cache:{KEY}"))["application_ir"]["name"] == "Shop API"
    assert cache.generator.calls == 1


async def test_filesystem_hits_reuse_the_decode_and_still_warm_redis(cache, sync_redis, cache_dir):
    await cache.get_application_ir(SPEC, "shop.md")
    hits = []
    for _ in range(2):
        sync_redis.delete(f"ir_cache:{KEY}")
        hits.append(await cache.lookup(SPEC, "shop.md"))
        assert sync_redis.exists(f"ir_cache:{KEY}")
    assert [h.tier for h in hits] == ["filesystem", "filesystem"] and hits[1].entry is hits[0].entry

    sync_redis.delete(f"ir_cache:{KEY}")
    (cache_dir / f"{KEY}.json").write_bytes(b'{"schema_version": 1, "trunc')
    assert (await cache.lookup(SPEC, "shop.md")).tier == "generator"
    assert len(list((cache_dir / ".quarantine").iterdir())) == 1


async def test_memo_can_be_turned_off(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator(), decoded_memo=0) as c:
        await c.get_application_ir(SPEC, "shop.md")
        a, b = await c.lookup(SPEC, "shop.md"), await c.lookup(SPEC, "shop.md")
        assert a.tier == b.tier == "redis" and a.entry is not b.entry and a.entry == b.entry


def test_any_buffer_is_compared_as_the_bytes_it_holds():
    memo = DecodedEntries()
    raw = stored("A")
    first = memo.decode(KEY, raw)
    assert memo.decode(KEY, memoryview(raw)) is first
    assert memo.decode(KEY, raw.decode("utf-8")) is first
    buf = bytearray(stored("B"))
    second = memo.decode(KEY, buf)
    buf[:] = raw  # the caller reuses its buffer: what is kept must not change with it
    assert memo.decode(KEY, stored("B")) is second
    off = DecodedEntries(max_entries=0)
    assert off.decode(KEY, raw.decode("utf-8")).application_ir.name == "A"


def test_one_off_walks_do_not_push_out_what_callers_read():
    raws = {f"s{i}_{spec_hash(str(i))[:8]}": stored(f"N{i}", str(i)) for i in range(3)}
    hot, *walked = raws
    memo = DecodedEntries(max_entries=1)
    kept = memo.decode(hot, raws[hot])
    for key in walked:
        assert memo.decode(key, raws[key], remember=False).application_ir.name.startswith("N")
    assert memo.decode(hot, raws[hot]) is kept and len(memo) == 1


async def test_warming_redis_from_disk_keeps_the_hot_decode(redis_url, cache_dir, sync_redis):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator(), decoded_memo=1) as c:
        await c.get_application_ir(SPEC, "shop.md")
        await c.get_application_ir("# Other\n", "other.md")
        hot = await c.lookup(SPEC, "shop.md")  # the one decode kept is shop's
        sync_redis.flushdb()
        assert (await c.warm_redis()).warmed == 2
        again = await c.lookup(SPEC, "shop.md")
        assert again.tier == "redis" and again.entry is hot.entry
