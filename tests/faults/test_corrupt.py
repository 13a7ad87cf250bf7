"""Corrupt entries in either tier are misses: deleted from Redis or quarantined on disk (never
followed, never opened if they are not regular files), then regenerated once. A writer killed
mid-write never leaves a torn entry, and its temp file is gone after the next open.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ircache_tui.cache.ircache import IRCache
from ircache_tui.cache.keys import cache_key
from ircache_tui.ir.envelope import SCHEMA_VERSION, decode_entry
from tests.support.generators import SPEC, CountingGenerator

KEY = cache_key(SPEC, "shop.md")


CORRUPT_BYTES = {
    "truncated": lambda good: good[: len(good) // 2],
    "wrong shape": lambda good: b"[1, 2, 3]",
    "wrong schema_version": lambda good: good.replace(
        f'"schema_version":{SCHEMA_VERSION}'.encode(), b'"schema_version":999'),
    "not UTF-8": lambda good: b"\xff\xfe" + good[2:],
    "50 MB of junk": lambda good: os.urandom(1024) * (50 * 1024),
}


async def good_bytes(redis_url: str, tmp_path: Path) -> bytes:
    async with IRCache(redis_url=redis_url, cache_dir=tmp_path / "seed", generator=CountingGenerator()) as cache:
        await cache.lookup(SPEC, "shop.md")
    return (tmp_path / "seed" / f"{KEY}.json").read_bytes()


# In Redis an entry is a value that begins as the envelope does: those that do are ours, however
# broken after that; the others are another tool's values under our names (FOREIGN_IN_REDIS).
CORRUPT_IN_REDIS = {
    **{kind: CORRUPT_BYTES[kind] for kind in ("truncated", "wrong schema_version")},
    "not JSON past its head": lambda good: good[:30] + b"\xff\xfe\x00",
    "wrong shape past its head": lambda good: f'{{"schema_version":{SCHEMA_VERSION}}}'.encode(),
}
FOREIGN_IN_REDIS = {kind: CORRUPT_BYTES[kind] for kind in ("wrong shape", "not UTF-8", "50 MB of junk")}


@pytest.mark.parametrize("kind", list(CORRUPT_IN_REDIS))
async def test_a_corrupt_redis_entry_is_deleted_and_regenerated_once(kind, redis_url, sync_redis, tmp_path):
    good = await good_bytes(redis_url, tmp_path)
    bad = CORRUPT_IN_REDIS[kind](good)
    assert bad != good
    sync_redis.flushall()
    sync_redis.set(f"ir_cache:{KEY}", bad)
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=tmp_path / "cache", generator=gen) as cache:
        assert (await cache.lookup(SPEC, "shop.md")).tier == "generator"
        assert (await cache.lookup(SPEC, "shop.md")).tier == "redis"
    assert gen.calls == 1
    assert decode_entry(sync_redis.get(f"ir_cache:{KEY}")).spec_name == "shop"


@pytest.mark.parametrize("kind", [*FOREIGN_IN_REDIS, "a hash"])
async def test_another_tools_value_under_our_key_is_a_miss_and_is_never_replaced(kind, redis_url, sync_redis,
                                                                                 tmp_path, ircache_logs):
    """Not an entry, so not ours: a miss, said once, generated once into the filesystem, which
    answers after that; the value in Redis is never deleted or overwritten."""
    good = await good_bytes(redis_url, tmp_path)
    sync_redis.flushall()
    rkey = f"ir_cache:{KEY}"
    if kind == "a hash":
        sync_redis.hset(rkey, "a", "b")
    else:
        sync_redis.set(rkey, FOREIGN_IN_REDIS[kind](good))
    before = sync_redis.dump(rkey)
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=tmp_path / "cache", generator=gen) as cache:
        assert (await cache.lookup(SPEC, "shop.md")).tier == "generator"
        assert (await cache.lookup(SPEC, "shop.md")).tier == "filesystem"
        assert await cache.warm_key(KEY) is False  # not ours to overwrite
    assert gen.calls == 1
    assert sync_redis.dump(rkey) == before
    assert ircache_logs.text.count("not an IR entry (another tool's key?)") == 1


def plant(kind: str, path: Path, good: bytes, outside: Path) -> None:
    if kind in CORRUPT_BYTES:
        path.write_bytes(CORRUPT_BYTES[kind](good))
    elif kind == "a directory":
        path.mkdir()
        (path / "inside").write_text("x")
    elif kind == "a FIFO":
        os.mkfifo(path)  # nobody writes to it: opening it for reading would hang
    elif kind == "a dangling symlink":
        path.symlink_to(outside / "gone.json")
    elif kind == "a symlink to a valid entry elsewhere":
        (outside / "elsewhere.json").write_bytes(good)
        path.symlink_to(outside / "elsewhere.json")


FS_KINDS = [*CORRUPT_BYTES, "a directory", "a FIFO", "a dangling symlink", "a symlink to a valid entry elsewhere"]


@pytest.mark.parametrize("kind", FS_KINDS)
async def test_a_corrupt_file_is_quarantined_and_regenerated_once(kind, redis_url, sync_redis, tmp_path):
    good = await good_bytes(redis_url, tmp_path)
    sync_redis.flushall()
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    plant(kind, cache_dir / f"{KEY}.json", good, outside)
    gen = CountingGenerator()
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=gen) as cache:
        assert (await cache.lookup(SPEC, "shop.md")).tier == "generator"
    assert gen.calls == 1
    entry = cache_dir / f"{KEY}.json"
    assert entry.is_file() and not entry.is_symlink()
    assert decode_entry(entry.read_bytes()).spec_name == "shop"
    quarantined = list((cache_dir / ".quarantine").iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.startswith(f"{KEY}.")
    if kind == "a symlink to a valid entry elsewhere":  # the link moved, its target untouched
        assert quarantined[0].is_symlink() and (outside / "elsewhere.json").read_bytes() == good


WRITER = """
import os, sys, itertools
from pathlib import Path
from ircache_tui.cache.fs_tier import atomic_write
path, a, b = Path(sys.argv[1]), Path(sys.argv[2]).read_bytes(), Path(sys.argv[3]).read_bytes()
print("ready", flush=True)
for data in itertools.cycle((a, b)):
    atomic_write(path, data)
"""


@pytest.mark.e2e
@pytest.mark.slow
async def test_a_writer_killed_mid_write_never_leaves_a_torn_entry(redis_url, tmp_path):
    """SIGKILL a process rewriting one entry (two valid 2 MB versions) at random moments, 12 times."""
    good = await good_bytes(redis_url, tmp_path)
    doc = json.loads(good)
    versions = []
    for n, name in enumerate(("First", "Second")):
        doc["application_ir"]["name"] = name
        doc["application_ir"]["description"] = name * (400_000 + n)  # ~2 MB, so a kill lands mid-write
        versions.append(json.dumps(doc).encode())
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(versions[0])
    b.write_bytes(versions[1])
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    entry = cache_dir / f"{KEY}.json"
    rng = random.Random(5)
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(entry), str(a), str(b)], stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.01, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        if entry.exists():
            assert entry.read_bytes() in versions  # the old file or the new one, never half
    leftovers = list(cache_dir.glob(".*.tmp"))
    assert leftovers, "no kill landed mid-write: the test proved nothing"  # 12 kills of 2 MB writes: some do
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        assert (await cache.lookup(SPEC, "shop.md")).tier in ("redis", "filesystem")
    assert not list(cache_dir.glob(".*.tmp")), f"temp files of dead writers left: {leftovers}"
