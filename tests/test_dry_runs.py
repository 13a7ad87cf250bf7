"""Dry runs and counts first (issue 23, item 2), through the real command on a real Redis and
cache dir: `flush --dry-run` counts per tier and deletes nothing, the prompt on a terminal says the
counts before it asks, and `prune` summarises its lists (all of them with -v)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from ircache_tui.cache.audit import AUDIT_FILE
from tests.support.cli import ENTRY_POINT, cli_env, run_cli
from tests.support.foreign import entry_value

pytestmark = [pytest.mark.server, pytest.mark.e2e]


@pytest.fixture
def filled(sync_redis, cache_dir):
    """3 entries of `shop` and 2 of `shop_v2` in both tiers, and another tool's value under a shop key."""
    cache_dir.mkdir(parents=True)
    keys = [f"shop_{i:08x}" for i in range(3)] + [f"shop_v2_{i:08x}" for i in range(2)]
    for key in keys:
        sync_redis.set(f"ir_cache:{key}", entry_value(10))
        (cache_dir / f"{key}.json").write_bytes(b"{}")
    sync_redis.set("ir_cache:shop_0000000f", '{"user": 1}')
    return keys


def state(sync_redis, cache_dir) -> tuple[int, int]:
    return len(sync_redis.keys("ir_cache:*")), len(list(cache_dir.glob("*.json")))


def test_flush_dry_run_counts_and_deletes_nothing(redis_url, sync_redis, cache_dir, filled):
    env = cli_env(redis_url, cache_dir)
    before = state(sync_redis, cache_dir)
    out = run_cli("flush", "shop", "--filesystem", "--dry-run", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("would flush spec 'shop': 3 Redis keys, 3 files (keeping 1 key under the prefix "
                                  "that is not IR entries (another tool's values)); nothing deleted (--dry-run)")
    out = run_cli("flush", "--dry-run", "--json", env=env)
    assert json.loads(out.stdout) == {"redis": 5, "foreign_kept": 1, "dry_run": True}
    assert state(sync_redis, cache_dir) == before
    assert not (cache_dir / AUDIT_FILE).exists()  # counting is not an action
    done = run_cli("flush", "shop", "--filesystem", "--yes", "--json", env=env)
    assert json.loads(done.stdout) == {"redis": 3, "filesystem": 3, "foreign_kept": 1}  # what the dry run said


def test_the_question_says_the_counts_first(redis_url, sync_redis, cache_dir, filled):
    master, slave = os.openpty()
    proc = subprocess.Popen([ENTRY_POINT, "flush", "shop_v2", "--filesystem"], env=cli_env(redis_url, cache_dir),
                            stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    shown = bytearray()
    try:
        while b"[y/N]" not in shown:  # a hang guard: the test timeout
            shown.extend(os.read(master, 4096))
        os.write(master, b"n\n")
        assert proc.wait(30) == 1  # cancelled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert "Flush spec 'shop_v2' from Redis and the filesystem: 2 Redis keys, 2 files? [y/N]" in shown.decode()
    assert state(sync_redis, cache_dir) == (6, 5)


def test_prune_summarises_its_lists(redis_url, sync_redis, cache_dir, tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "mine.md").write_text("# Mine\n")
    for i in range(12):  # entries of specs not under DIR: listed as kept
        sync_redis.set(f"ir_cache:theirs-{i:02d}_{i:08x}", entry_value(10))
    env = cli_env(redis_url, cache_dir)
    short = run_cli("prune", str(specs), "--dry-run", env=env).stdout.splitlines()
    listed = [line for line in short if line.startswith(f"not under {specs} (kept) in Redis: theirs-")]
    assert len(listed) == 5
    assert f"not under {specs} (kept) in Redis: … and 7 more (-v lists them all)" in short
    every = run_cli("prune", str(specs), "--dry-run", "-v", env=env).stdout.splitlines()
    assert len([line for line in every if line.startswith(f"not under {specs} (kept) in Redis: theirs-")]) == 12
    assert not any("more (-v" in line for line in every)
