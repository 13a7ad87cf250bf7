"""The audit trail (issue 23, item 1): one JSON line per action that changes the cache, from the
library, the commands and the dashboard, on a real Redis and a real cache dir; appends from
several processes never tear; the file rotates; `ircache-tui audit` shows it; read-only writes none.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from datetime import datetime, timedelta, timezone

import pytest

from ircache_tui import IRCache, ReadOnlyError, cache_key
from ircache_tui.cache.audit import AUDIT_FILE, AuditTrail, read_trail
from ircache_tui.tui.services import build_services
from tests.support.cli import cli_env, run_cli
from tests.support.generators import SPEC, CountingGenerator
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.server

KEY = cache_key(SPEC, "specs/shop.md")


def trail(cache_dir) -> list[dict]:
    records, bad = read_trail(cache_dir)
    assert bad == 0
    return records


async def test_every_action_of_the_library_is_one_line(redis_url, sync_redis, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, ttl=3600, generator=CountingGenerator()) as cache:
        await cache.lookup(SPEC, "specs/shop.md")  # a generation on a miss: not an action of anyone's
        assert trail(cache_dir) == []
        await cache.reset_ttl(KEY, 600)
        await cache.lookup(SPEC, "specs/shop.md", force_refresh=True)
        await cache.delete_entry(KEY, "redis")
        assert (await cache.warm_redis()).warmed == 1
        assert await cache.delete_entries([KEY], [KEY], action="prune")
        await cache.lookup(SPEC, "specs/shop.md")
        await cache.clear_cache(spec_name="shop")
    records = trail(cache_dir)
    assert [(r["action"], r["key"] or r["spec"], r["touched"], r["outcome"]) for r in records] == [
        ("ttl", KEY, {"redis": 1}, "ok"),
        ("regenerate", KEY, {}, "ok"),
        ("delete", KEY, {"redis": 1}, "ok"),
        ("warm", None, {"warmed": 1, "failed": 0, "left": 0}, "ok"),
        ("prune", None, {"redis": 1, "filesystem": 1}, "ok"),
        ("flush", "shop", {"redis": 1, "filesystem": 1, "foreign_kept": 0}, "ok"),
    ]
    first = records[0]
    assert first["from"] == "library" and first["pid"] == os.getpid() and first["uid"] == os.getuid()
    assert first["user"] and first["host"]
    when = datetime.fromisoformat(first["at"])
    assert when.tzinfo is not None and abs(datetime.now(timezone.utc) - when) < timedelta(hours=1)
    assert records[-1]["tiers"] == ["redis", "filesystem"]
    assert oct((cache_dir / AUDIT_FILE).stat().st_mode & 0o777) == "0o600"


async def test_a_failed_flush_says_so_and_what_went(tmp_path):
    with RedisServer() as server:
        async with IRCache(redis_url=server.url, cache_dir=tmp_path / "ir", generator=CountingGenerator()) as cache:
            await cache.lookup(SPEC, "specs/shop.md")
            server.stop()
            with pytest.raises(Exception):
                await cache.clear_cache(spec_name="shop")
    (record,) = trail(tmp_path / "ir")
    assert record["action"] == "flush" and record["outcome"].startswith("failed: Redis unavailable"), record


async def test_read_only_sessions_write_none(redis_url, cache_dir):
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, generator=CountingGenerator()) as cache:
        await cache.lookup(SPEC, "specs/shop.md")
    async with IRCache(redis_url=redis_url, cache_dir=cache_dir, read_only=True) as cache:
        for action in (cache.clear_cache(), cache.reset_ttl(KEY), cache.delete_entry(KEY, "redis")):
            with pytest.raises(ReadOnlyError):
                await action
        await cache.lookup(SPEC, "specs/shop.md")
    assert not (cache_dir / AUDIT_FILE).exists()


def _append(directory, n: int, tag: int) -> None:
    audit = AuditTrail(directory, f"worker {tag}", enabled=True, max_bytes=10**9)
    for i in range(n):
        audit.write("delete", key=f"spec{tag}_{i:08x}", touched={"redis": 1, "pad": tag * 10**12})


def test_appends_from_several_processes_never_tear(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append, args=(tmp_path, 300, tag)) for tag in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    lines = (tmp_path / AUDIT_FILE).read_text().splitlines()
    assert len(lines) == 1200
    records = [json.loads(line) for line in lines]  # every line whole
    for tag in range(4):
        mine = [r["key"] for r in records if r["from"] == f"worker {tag}"]
        assert mine == [f"spec{tag}_{i:08x}" for i in range(300)]  # each process's lines in its order


def test_the_trail_rotates_and_is_read_oldest_first(tmp_path):
    audit = AuditTrail(tmp_path, "library", enabled=True, max_bytes=2000, keep=2)
    for i in range(60):
        audit.write("ttl", key=f"s_{i:08x}")
    files = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(AUDIT_FILE))
    assert files == [AUDIT_FILE, f"{AUDIT_FILE}.1", f"{AUDIT_FILE}.2"]
    assert all((tmp_path / f).stat().st_size <= 2000 + 300 for f in files)
    keys = [r["key"] for r in trail(tmp_path)]
    assert keys == sorted(keys) and keys[-1] == f"s_{59:08x}" and len(keys) < 60  # the oldest dropped


def test_a_trail_that_cannot_be_written_does_not_fail_the_action(tmp_path, caplog):
    (tmp_path / AUDIT_FILE).mkdir()  # not a file
    audit = AuditTrail(tmp_path, "library", enabled=True)
    with audit.recording("flush") as touched:
        touched.counts["redis"] = 3
    audit.write("ttl")
    assert sum("Cannot write the audit trail" in r.getMessage() for r in caplog.records) == 1


def test_the_command_and_the_dashboard_say_who_they_are(redis_url, cache_dir, tmp_path):
    env = cli_env(redis_url, cache_dir)
    spec = tmp_path / "specs" / "shop.md"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    assert run_cli("warm", str(spec.parent), env=env).returncode == 0
    out = run_cli("flush", "shop", "--yes", "--filesystem", env=env)
    assert out.returncode == 0, out.stderr
    shown = run_cli("audit", "--since", "1h", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    assert [(r["from"], r["action"]) for r in records] == [("cli warm", "warm"), ("cli warm", "warm"),
                                                          ("cli flush", "flush")]
    assert records[-1]["touched"] == {"redis": 1, "filesystem": 1, "foreign_kept": 0}
    text = run_cli("audit", env=env).stdout.splitlines()
    assert len(text) == 3 and "cli flush: flush spec shop from redis+filesystem: redis 1, filesystem 1" in text[-1]
    assert text[-1].endswith("→ ok")
    assert run_cli("audit", "--since", "2999-01-01T00:00:00", env=env).stdout.startswith("no actions recorded")
    bad = run_cli("audit", "--since", "yesterday", env=env)
    assert bad.returncode == 2 and "--since 'yesterday'" in bad.stderr
    from ircache_tui.settings import Settings

    services = build_services(Settings(redis_url=redis_url, cache_dir=cache_dir), [])
    assert services.cache.audit.origin == "dashboard"
