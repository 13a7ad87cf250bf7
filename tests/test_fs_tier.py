import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ircache_tui.cache.fs_tier import INLINE_READ_MAX, FilesystemTier, atomic_write


@pytest.fixture
def fs(cache_dir):
    return FilesystemTier(cache_dir)


async def test_write_read_list_stats(fs, cache_dir):
    await fs.write_raw("petstore_0a1b2c3d", b'{"a": 1}')
    await fs.write_raw("shop_ffffffff", b'{"b": 22}')
    (cache_dir / "notes.txt").write_text("not an entry")
    (cache_dir / "random.json").write_text("{}")
    assert await fs.read_raw("petstore_0a1b2c3d") == b'{"a": 1}'
    assert await fs.read_raw("missing_0a1b2c3d") is None
    entries = await fs.list_entries()
    assert [(e.cache_key, e.size) for e in entries] == [("petstore_0a1b2c3d", 8), ("shop_ffffffff", 9)]
    stats = await fs.stats()
    assert stats == {"directory": str(cache_dir), "file_count": 2, "total_size_bytes": 17}


async def test_stats_of_missing_dir(tmp_path):
    fs = FilesystemTier(tmp_path / "nope")
    assert (await fs.stats())["file_count"] == 0
    assert await fs.clear() == 0


async def test_clear_one_spec_is_exact(fs, cache_dir):
    for key in ["ecommerce_0a1b2c3d", "ecommerce_11111111", "ecommerce_v2_0a1b2c3d", "ecommerce-api_0a1b2c3d", "e*_0a1b2c3d"]:
        await fs.write_raw(key, b"{}")
    (cache_dir / "ecommerce_keepme.json").write_text("{}")
    assert await fs.clear("ecommerce") == 2
    left = sorted(p.name for p in cache_dir.iterdir())
    assert left == sorted(["ecommerce_v2_0a1b2c3d.json", "ecommerce-api_0a1b2c3d.json", "e*_0a1b2c3d.json", "ecommerce_keepme.json"])
    assert await fs.clear("e*") == 1
    assert await fs.clear() == 2
    assert sorted(p.name for p in cache_dir.iterdir()) == ["ecommerce_keepme.json"]


async def test_quarantine_moves_aside(fs, cache_dir):
    await fs.write_raw("bad_0a1b2c3d", b"garbage")
    target = await fs.quarantine("bad_0a1b2c3d", "not JSON")
    assert target.parent == cache_dir / ".quarantine"
    assert target.read_bytes() == b"garbage"
    assert not (cache_dir / "bad_0a1b2c3d.json").exists()
    listed = await fs.list_entries(include_quarantined=True)
    assert [(e.cache_key, e.quarantined) for e in listed] == [("bad_0a1b2c3d", True)]
    assert await fs.list_entries() == []


async def test_leftover_temp_files_are_cleaned(fs, cache_dir):
    cache_dir.mkdir(parents=True)
    old = cache_dir / ".petstore_0a1b2c3d.abc123.tmp"
    old.write_bytes(b"half")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    fresh = cache_dir / ".petstore_0a1b2c3d.def456.tmp"
    fresh.write_bytes(b"in progress")
    assert await fs.cleanup_temp_files() == 1
    assert not old.exists() and fresh.exists()


def test_atomic_write_leaves_no_temp_on_success(tmp_path):
    atomic_write(tmp_path / "a.json", b"1")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


WRITER = r"""
import sys
from pathlib import Path
from ircache_tui.cache.fs_tier import atomic_write
path = Path(sys.argv[1])
big = b'"' + b"x" * 20_000_000 + b'"'
i = 0
while True:
    i += 1
    atomic_write(path, b'{"n": %d, "pad": ' % i + big + b"}")
"""


@pytest.mark.e2e
def test_writer_killed_mid_write_leaves_old_or_new_file(tmp_path):
    path = tmp_path / "spec_0a1b2c3d.json"
    atomic_write(path, b'{"n": 0, "pad": ""}')
    for _ in range(3):
        before = set(tmp_path.glob(".spec_0a1b2c3d.*.tmp"))
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        deadline = time.monotonic() + 30
        while not set(tmp_path.glob(".spec_0a1b2c3d.*.tmp")) - before:  # a write is under way
            assert time.monotonic() < deadline and proc.poll() is None, "the writer never started a write"
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = json.loads(path.read_bytes())  # a torn file would not parse
        assert isinstance(data["n"], int)
    # the kills landed mid-write (temp files were left), yet no entry was torn;
    # the leftovers are never read as entries and are swept later
    assert list(tmp_path.glob(".spec_0a1b2c3d.*.tmp"))
    fs = FilesystemTier(tmp_path)
    import asyncio

    assert [e.cache_key for e in asyncio.run(fs.list_entries())] == ["spec_0a1b2c3d"]


async def test_reads_small_entries_inline_and_large_ones_whole(fs, cache_dir):
    small, large = b'{"a": 1}', b"[" + b"0," * (INLINE_READ_MAX // 2 + 10) + b"0]"
    assert len(large) > INLINE_READ_MAX
    await fs.write_raw("small_0a1b2c3d", small)
    await fs.write_raw("large_0a1b2c3d", large)
    assert await fs.read_raw("small_0a1b2c3d") == small
    assert await fs.read_raw("large_0a1b2c3d") == large
    assert await fs.read_raw("absent_0a1b2c3d") is None


async def test_a_fifo_or_directory_under_an_entry_name_is_an_error_not_a_hang(fs, cache_dir):
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.mkfifo(cache_dir / "fifo_0a1b2c3d.json")  # nobody ever writes to it: a blocking open would hang
    (cache_dir / "dir_0a1b2c3d.json").mkdir()
    for key, error in (("fifo_0a1b2c3d", "not a regular file"), ("dir_0a1b2c3d", "not a regular file")):
        with pytest.raises(OSError, match=error):
            await asyncio.wait_for(fs.read_raw(key), timeout=5)


async def test_a_cancelled_large_read_leaves_no_descriptor_behind(fs, cache_dir):
    """The thread that reads a large entry owns its descriptor and closes it, cancelled or not."""
    large = b"[" + b"1," * INLINE_READ_MAX + b"1]"
    await fs.write_raw("large_0a1b2c3d", large)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        task = asyncio.create_task(fs.read_raw("large_0a1b2c3d"))
        await asyncio.sleep(0)  # let it open the file and hand the read to a thread
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for _ in range(100):
        if len(os.listdir("/proc/self/fd")) <= before:
            break
        await asyncio.sleep(0.05)  # the threads finish their reads and close
    assert len(os.listdir("/proc/self/fd")) <= before
    assert await fs.read_raw("large_0a1b2c3d") == large
