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
            with redis.Redis.from_url(server.url).monitor() as monitor:
                first = await while_stopped(server, lookups(cache, [0]))
                first_sent = sent_while_stopped(server, monitor)
                rest = await while_stopped(server, lookups(cache, range(1, 20)))
                rest_sent = sent_while_stopped(server, monitor)
    assert [found.tier for found in first + rest] == ["filesystem"] * 20
    # What the cache sent the hung server, read once it ran again. The first lookup: its read, which
    # waited out its one timeout and was not retried (bug 10: a retry, a second timeout).
    assert len(first_sent) == 1 and first_sent[0].startswith("GET ir_cache:spec-0_"), first_sent
    # The rest skipped Redis while it was down, without a connection of their own (asking each: a
    # handshake or a read each, 19 and more); on a slow machine one past the backoff may probe.
    assert len(rest_sent) <= 2, rest_sent
    downs = [r.getMessage() for r in ircache_logs.records if "Redis unavailable" in r.getMessage()]
    assert len(downs) == 1 and "timed out" in downs[0], downs


async def lookups(cache: IRCache, numbers) -> list:
    """Look up spec_text(i) for each i of `numbers`, one after the other."""
    return [await cache.lookup(spec_text(i), f"spec-{i}.md") for i in numbers]


async def while_stopped(server: RedisServer, work):
    """Await `work` with the server SIGSTOPped (hung: it accepts connections, answers nothing)."""
    server.process.send_signal(signal.SIGSTOP)
    try:
        return await work
    finally:
        server.process.send_signal(signal.SIGCONT)


def sent_while_stopped(server: RedisServer, monitor) -> list[str]:
    """The commands MONITOR saw from TCP clients (the cache's) since the last call, up to a mark sent
    now over the unix socket (the server runs what it was sent while stopped first)."""
    mark = "end-of-the-hung-window"
    with redis.Redis.from_url(server.unix_url) as client:
        client.echo(mark)
    sent = []
    while (seen := monitor.next_command())["command"] != f"ECHO {mark}":
        if seen["client_type"] == "tcp":
            sent.append(seen["command"])
    return sent


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
