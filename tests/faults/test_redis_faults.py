"""Redis hung or killed under the cache: the filesystem answers, nothing is lost, and the
cache goes back to Redis by itself.

Bug 10: a hung (SIGSTOPped) Redis cost about 4.3 s per command (2 s timeout, retried).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import redis

from ircache_tui.cache.ircache import IRCache
from ircache_tui.settings import Settings
from tests.support.cli import ENTRY_POINT
from tests.support.generators import CountingGenerator
from tests.support.messages_api import MessagesAPI, message
from tests.support.redis_server import RedisServer

from .conftest import API_KEY, PASSWORD, assert_clean, cli_env
from .entries import spec_text


async def test_a_hung_redis_costs_one_timeout_then_the_filesystem_answers(tmp_path, ircache_logs):
    settings = Settings.from_env({}, cache_dir=str(tmp_path / "cache"))
    with RedisServer(password=PASSWORD) as server:
        async with IRCache(redis_url=server.url, settings=settings, generator=CountingGenerator()) as cache:
            for i in range(20):
                await cache.lookup(spec_text(i), f"spec-{i}.md")  # cached in both tiers
            server.process.send_signal(signal.SIGSTOP)
            try:
                start = time.monotonic()
                tiers = [(await cache.lookup(spec_text(i), f"spec-{i}.md")).tier for i in range(20)]
                elapsed = time.monotonic() - start
            finally:
                server.process.send_signal(signal.SIGCONT)
    assert tiers == ["filesystem"] * 20
    # the first read waits out one timeout (0.5 s, not retried); the rest skip Redis while it is down
    assert elapsed < settings.redis_timeout * 4, elapsed
    downs = [r.getMessage() for r in ircache_logs.records if "Redis unavailable" in r.getMessage()]
    assert len(downs) == 1 and "timed out" in downs[0], downs


def test_redis_killed_during_a_generation_keeps_the_entry_on_disk_and_says_where(tmp_path):
    """The generation that was paid for lands on disk; the log names only the tier that took it;
    once Redis is back the next `get` is a filesystem hit that warms it."""
    spec = tmp_path / "shop.md"
    spec.write_text(spec_text(3))
    ir = {"name": "Shop", "entities": [], "endpoints": [], "flows": [], "validation_rules": []}
    cache = tmp_path / "cache"
    with RedisServer(password=PASSWORD) as server, MessagesAPI(api_key=API_KEY) as api:
        api.script(message(json.dumps(ir), delay=3))
        env = cli_env(server.url, cache, ANTHROPIC_API_KEY=API_KEY, ANTHROPIC_BASE_URL=api.base_url,
                      IR_GENERATOR="anthropic")
        proc = subprocess.Popen([ENTRY_POINT, "-v", "get", str(spec)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while not api.requests and time.monotonic() < deadline:
                time.sleep(0.02)
            assert api.requests, "the generation never reached the API"
            server.process.send_signal(signal.SIGKILL)
            server.process.wait()
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert_clean(out, err)
        assert proc.returncode == 0, err
        key = out.split(":")[0]
        assert (cache / f"{key}.json").is_file()
        assert f"cached it as {key} (in the filesystem)" in err, err
        assert "in Redis" not in err.split("cached it as", 1)[1].splitlines()[0]

        server.start()  # back, empty
        again = subprocess.run([ENTRY_POINT, "get", str(spec)], env=env, capture_output=True, text=True, timeout=60)
        assert again.stdout.splitlines()[0] == f"{key}: from filesystem", again.stdout + again.stderr
        client = redis.Redis.from_url(server.url)
        assert client.exists(f"ir_cache:{key}")  # warmed by the hit
        client.close()
        assert len(api.requests) == 1
